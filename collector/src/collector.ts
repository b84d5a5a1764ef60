/** Wires one running collector: spool → receiver → exporters, plus its HTTP listener. */
import { join } from 'node:path';
import {
  createLogger,
  createRegistry,
  Gauge,
  type HttpServer,
  type Logger,
  listen,
  type Registry,
} from '@sealtrail/telemetry';
import { collectorApp } from './api/http.js';
import type { CollectorConfig } from './config.js';
import type { Exporter } from './exporters/exporter.js';
import { exporterTypes } from './exporters/index.js';
import { Receiver } from './receiver/receiver.js';
import { Spool } from './spool/spool.js';

const PRUNE_EVERY_MS = 3_600_000;

export class Collector {
  readonly log: Logger;
  readonly registry: Registry;
  private spool!: Spool;
  private receiver!: Receiver;
  private exporters: Exporter[] = [];
  private http: HttpServer | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;

  constructor(readonly config: CollectorConfig) {
    this.log = createLogger('collector', config.collector.log_level);
    this.registry = createRegistry('collector');
  }

  get grpcAddress(): string {
    return this.receiver.boundAddress;
  }

  get httpAddress(): string | undefined {
    return this.http?.address;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    this.spool = new Spool(join(cfg.collector.data_dir, 'spool'), cfg.collector.dedupe_window);
    await this.spool.open();
    const spool = this.spool;
    new Gauge({
      name: 'sealtrail_spool_head_offset',
      help: 'Offset of the newest record in the spool',
      registers: [this.registry],
      collect() {
        this.set(Number(spool.headOffset));
      },
    });
    const settings = { spool, log: this.log, registry: this.registry };
    this.exporters = cfg.exporters.map((e) =>
      exporterTypes[e.type].create({ ...settings, log: this.log.child({ exporter: e.name }) }, e),
    );
    for (const e of this.exporters) await e.start();
    this.receiver = new Receiver({
      listen: cfg.grpc.listen,
      spool,
      log: this.log.child({ component: 'receiver' }),
      registry: this.registry,
      maxMessageBytes: cfg.grpc.max_message_bytes,
    });
    await this.receiver.start();
    this.http = await listen(
      collectorApp({ registry: this.registry, spool, receiver: this.receiver }),
      cfg.http.listen,
    );
    this.pruneTimer = setInterval(() => {
      spool.pruneEventIds().then(
        (n) => n > 0 && this.log.info({ pruned: n }, 'forgot event ids past the dedupe window'),
        (err) => this.log.error({ err }, 'event id pruning failed'),
      );
    }, PRUNE_EVERY_MS).unref();
    this.log.info(
      { grpc: this.receiver.boundAddress, http: this.http.address, data_dir: cfg.collector.data_dir },
      'collector started',
    );
  }

  /** Idempotent: stop taking streams, finish durable writes and acks, stop exporters, close the spool. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.pruneTimer) clearInterval(this.pruneTimer);
      await this.receiver?.stop();
      await this.http?.close();
      await Promise.allSettled(this.exporters.map((e) => e.stop()));
      await this.spool?.close();
      this.log.info('collector stopped');
    })();
    return this.stopping;
  }
}
