/** Wires one running collector: spool → receiver → exporters, plus its HTTP listener. */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '@sealtrail/errors';
import {
  createLogger,
  createRegistry,
  Gauge,
  type HttpServer,
  type Logger,
  listen,
  type Registry,
} from '@sealtrail/telemetry';
import { loadApiKeyHashes } from './api/auth.js';
import { collectorApp } from './api/http.js';
import { type CollectorConfig, pkiDir } from './config.js';
import type { Exporter } from './exporters/exporter.js';
import { exporterTypes } from './exporters/index.js';
import { type PkiPaths, pkiPaths } from './pki/pki.js';
import { readTokenSecret } from './pki/tokens.js';
import type { TlsFiles } from './receiver/receiver.js';
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
  /** Re-reads the API key file (SIGHUP). */
  reloadApiKeys: () => void = () => undefined;

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
    // TLS problems (a missing certificate) are config errors: fail before opening the spool or
    // starting exporters, so nothing is left running or locked.
    const pki = pkiPaths(pkiDir(cfg));
    const tls = cfg.grpc.insecure ? null : loadTls(cfg, pki);
    this.spool = new Spool(join(cfg.collector.data_dir, 'spool'), cfg.collector.dedupe_window);
    await this.spool.open();
    const spool = this.spool;
    if (spool.migrated > 0)
      this.log.info(
        { keys: spool.migrated },
        'spool moved to the layout with per-commit keys after the records',
      );
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
    const tokenSecret = () => (existsSync(pki.tokenSecret) ? readTokenSecret(pki.tokenSecret) : null);
    this.receiver = new Receiver({
      listen: cfg.grpc.listen,
      tls,
      tokenSecret,
      spool,
      log: this.log.child({ component: 'receiver' }),
      registry: this.registry,
      maxMessageBytes: cfg.grpc.max_message_bytes,
    });
    await this.receiver.start();
    let apiKeys = loadApiKeyHashes(pki.apiKeys);
    this.reloadApiKeys = () => {
      apiKeys = loadApiKeyHashes(pki.apiKeys);
    };
    this.http = await listen(
      collectorApp({
        registry: this.registry,
        spool,
        receiver: this.receiver,
        apiKeyHashes: () => apiKeys,
        tokenSecret,
        tokenTtlMs: cfg.enrollment.token_ttl,
      }),
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

/** The TLS material the config names, or the files `init` made; a clear error when missing. */
function loadTls(cfg: CollectorConfig, pki: PkiPaths): TlsFiles {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch {
      throw new ConfigError(
        `grpc.tls: cannot read the ${what} ${file}; run \`sealtrail-collector init --config FILE\` or set grpc.insecure: true for loopback development`,
      );
    }
  };
  const t = cfg.grpc.tls;
  return {
    cert: read(t.cert_file ?? pki.serverCert, 'server certificate'),
    key: read(t.key_file ?? pki.serverKey, 'server key'),
    ...(t.client_ca_file ? { clientCa: read(t.client_ca_file, 'client CA') } : {}),
  };
}
