/** Wires one running agent: identity → journal → sources → shipper, plus its HTTP listener. */
import { join } from 'node:path';
import type { AuditEvent } from '@sealtrail/event';
import {
  createLogger,
  createRegistry,
  Gauge,
  type HttpServer,
  healthRoutes,
  type Logger,
  listen,
  type Registry,
} from '@sealtrail/telemetry';
import { Hono } from 'hono';
import { chainStartEvent } from './chain_start.js';
import type { AgentConfig } from './config.js';
import { loadOrCreateIdentity } from './identity/identity.js';
import { Journal } from './journal/journal.js';
import { Shipper } from './shipper/shipper.js';
import { sourceTypes } from './sources/index.js';
import type { Source } from './sources/source.js';
import { AGENT_VERSION } from './version.js';

export class Agent {
  readonly log: Logger;
  readonly registry: Registry;
  private journal!: Journal;
  private shipper!: Shipper;
  private sources: Source[] = [];
  private http: HttpServer | null = null;
  private stopping: Promise<void> | null = null;

  constructor(readonly config: AgentConfig) {
    this.log = createLogger('agent', config.agent.log_level);
    this.registry = createRegistry('agent');
  }

  get httpAddress(): string | undefined {
    return this.http?.address;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const identity = loadOrCreateIdentity(cfg.agent.data_dir);
    const host: AuditEvent['host'] = { id: identity.agentId, name: cfg.agent.name, os: process.platform };
    this.journal = new Journal({
      dir: join(cfg.agent.data_dir, 'journal'),
      agentId: identity.agentId,
      chainStartEvent: (chainId) =>
        chainStartEvent({
          host,
          chainId,
          publicKey: identity.publicKey,
          previous: null,
          reason: 'first_start',
        }),
    });
    await this.journal.open();
    const journal = this.journal;
    new Gauge({
      name: 'sealtrail_journal_backlog_records',
      help: 'Records in the journal not yet acknowledged by the collector',
      registers: [this.registry],
      collect() {
        this.set(journal.backlog);
      },
    });

    const settings = {
      journal,
      host,
      log: this.log,
      registry: this.registry,
      maxEventBytes: cfg.journal.max_event_bytes,
      overHighWater: () => journal.backlog >= cfg.journal.high_water_records,
    };
    this.sources = cfg.sources.map((s) =>
      sourceTypes[s.type].create({ ...settings, log: this.log.child({ source: s.name }) }, s),
    );

    const app = new Hono();
    app.route(
      '/',
      healthRoutes(this.registry, () => [
        { name: 'journal', check: () => (journal.stats().chainId ? null : 'journal not open') },
        {
          name: 'collector_stream',
          check: () => (this.shipper.connected ? null : 'not connected to the collector'),
        },
      ]),
    );
    for (const s of this.sources) if (s.routes) app.route('/', s.routes);
    this.http = await listen(app, cfg.http.listen);

    this.shipper = new Shipper({
      address: cfg.collector.address,
      identity,
      journal,
      agentVersion: AGENT_VERSION,
      hostname: cfg.agent.name,
      batchMaxRecords: cfg.collector.batch_max_records,
      batchMaxBytes: cfg.collector.batch_max_bytes,
      maxInflightBatches: cfg.collector.max_inflight_batches,
      reconnectInitialMs: cfg.collector.reconnect_initial,
      reconnectMaxMs: cfg.collector.reconnect_max,
      reconnectMultiplier: cfg.collector.reconnect_multiplier,
      log: this.log.child({ component: 'shipper' }),
      registry: this.registry,
    });
    for (const s of this.sources) await s.start();
    this.shipper.start();
    this.log.info(
      {
        agent_id: identity.agentId,
        chain_id: journal.chainId,
        http: this.http.address,
        collector: cfg.collector.address,
      },
      'agent started',
    );
  }

  /** Idempotent: stop taking input, let accepted events become durable, close the stream and the journal. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.allSettled(this.sources.map((s) => s.stop()));
      await this.http?.close();
      await this.shipper?.stop();
      await this.journal?.close();
      this.log.info('agent stopped');
    })();
    return this.stopping;
  }
}
