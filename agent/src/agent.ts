/** Wires one running agent: identity → journal → sources → shipper, plus its HTTP listener. */
import type { AuditEvent } from '@sealtrail/event';
import {
  Counter,
  createLogger,
  createRegistry,
  Gauge,
  Histogram,
  type HttpServer,
  healthRoutes,
  type Logger,
  listen,
  type Registry,
} from '@sealtrail/telemetry';
import { Hono } from 'hono';
import type { AgentConfig } from './config.js';
import { loadOrCreateIdentity } from './identity/identity.js';
import { Checkpointer, readAnchor } from './journal/checkpoint.js';
import { chainStartEvent, gapEvent, integrityEvent } from './journal/events.js';
import { Journal } from './journal/journal.js';
import { openWithRecovery } from './journal/recovery.js';
import { journalPaths } from './journal/verify.js';
import { transport } from './shipper/credentials.js';
import { Shipper } from './shipper/shipper.js';
import { sourceTypes } from './sources/index.js';
import type { Source } from './sources/source.js';
import { diskUsage } from './status.js';
import { AGENT_VERSION } from './version.js';

export class Agent {
  readonly log: Logger;
  readonly registry: Registry;
  private journal!: Journal;
  private shipper!: Shipper;
  private checkpointer!: Checkpointer;
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
    // Transport problems (a missing CA file) are config errors: fail before touching the journal.
    const t = transport(cfg);
    const identity = loadOrCreateIdentity(cfg.agent.data_dir);
    const host: AuditEvent['host'] = { id: identity.agentId, name: cfg.agent.name, os: process.platform };
    const paths = journalPaths(cfg.agent.data_dir);
    const registers = [this.registry];
    const fsyncs = new Counter({
      name: 'sealtrail_journal_fsyncs_total',
      help: 'Durable journal write batches',
      registers,
    });
    const drops = new Counter({
      name: 'sealtrail_journal_dropped_records_total',
      help: 'Records whose payload the journal dropped, by reason',
      labelNames: ['reason'],
      registers,
    });
    const quarantines = new Counter({
      name: 'sealtrail_journal_quarantines_total',
      help: 'Damage found on open and quarantined, by kind',
      labelNames: ['kind'],
      registers,
    });
    const appendLatency = new Histogram({
      name: 'sealtrail_journal_append_seconds',
      help: 'Time from append to durable',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });

    const { journal, findings } = await openWithRecovery(
      () =>
        new Journal({
          dir: paths.journal,
          agentId: identity.agentId,
          hooks: {
            chainStart: (start) => chainStartEvent(host, identity.publicKey, start),
            gap: (info) => gapEvent(host, info),
            appendLatency: (seconds) => appendLatency.observe(seconds),
          },
          limits: {
            maxBytes: cfg.journal.max_bytes,
            maxRecords: cfg.journal.max_records,
            onFull: cfg.journal.on_full,
          },
          commitWindowMs: cfg.journal.commit_window,
        }),
      readAnchor(paths.anchor),
    );
    this.journal = journal;
    for (const f of findings) {
      quarantines.inc({ kind: f.kind });
      this.log.error({ kind: f.kind, ...f.attributes }, f.detail);
      await journal.append({ events: [integrityEvent(host, f)] });
    }
    journal.on('dropped', (n) => drops.inc({ reason: 'journal_full' }, n));
    let lastFsyncs = journal.fsyncs;
    journal.on('appended', () => {
      fsyncs.inc(journal.fsyncs - lastFsyncs);
      lastFsyncs = journal.fsyncs;
    });
    new Gauge({
      name: 'sealtrail_journal_backlog_records',
      help: 'Records in the journal not yet acknowledged by the collector',
      registers,
      collect() {
        this.set(journal.backlogRecords);
      },
    });
    new Gauge({
      name: 'sealtrail_journal_backlog_bytes',
      help: 'Event bytes in the journal not yet acknowledged by the collector',
      registers,
      collect() {
        this.set(journal.backlogBytes);
      },
    });
    const settings = {
      journal,
      host,
      log: this.log,
      registry: this.registry,
      maxEventBytes: cfg.journal.max_event_bytes,
      overHighWater: () => journal.fill >= cfg.journal.high_water,
    };
    this.sources = cfg.sources.map((s) =>
      sourceTypes[s.type].create({ ...settings, log: this.log.child({ source: s.name }) }, s),
    );

    this.checkpointer = new Checkpointer({
      journal,
      identity,
      host,
      anchorFile: paths.anchor,
      everyEvents: cfg.checkpoint.every_events,
      everyMs: cfg.checkpoint.every_seconds * 1000,
      idleMs: cfg.checkpoint.idle_seconds * 1000,
      log: this.log.child({ component: 'checkpoint' }),
    });
    if (!t.tls)
      this.log.warn(
        { collector: cfg.collector.address },
        'streaming to the collector without TLS (insecure: true)',
      );
    this.shipper = new Shipper({
      address: cfg.collector.address,
      credentials: t.credentials,
      channelOptions: t.options,
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
      onChallenge: (nonce) => void this.checkpointer.checkpoint('challenge', nonce),
    });

    const app = new Hono();
    app.route(
      '/',
      healthRoutes(this.registry, () => [
        { name: 'journal', check: () => (journal.hasChain ? null : 'journal not open') },
        {
          name: 'journal_space',
          check: () =>
            journal.fill < 1
              ? null
              : `journal full (${journal.backlogRecords} records, ${journal.backlogBytes} bytes)`,
        },
        {
          name: 'collector_stream',
          check: () =>
            this.shipper.connected
              ? null
              : `not connected to the collector${this.shipper.lastRefusal ? ` (refused: ${this.shipper.lastRefusal})` : ''}`,
        },
      ]),
    );
    app.get('/v1/status', async (c) =>
      c.json({
        agent_id: identity.agentId,
        version: AGENT_VERSION,
        chain_id: journal.chainId,
        head_seq: journal.head ? String(journal.head.seq) : null,
        acked_seq: journal.acked ? String(journal.acked.seq) : null,
        backlog_records: journal.backlogRecords,
        backlog_bytes: journal.backlogBytes,
        disk_bytes: await diskUsage(paths.journal),
        connected: this.shipper.connected,
        last_ack_time: this.shipper.lastAckAt?.toISOString() ?? null,
      }),
    );
    for (const s of this.sources) if (s.routes) app.route('/', s.routes);
    this.http = await listen(app, cfg.http.listen);

    for (const s of this.sources) await s.start();
    this.checkpointer.start();
    this.shipper.start();
    // Reclaim the disk space of acknowledged records whenever the backlog drains.
    journal.on('acked', () => {
      if (journal.backlogRecords === 0)
        journal.compact().catch((err) => this.log.warn({ err }, 'journal compaction failed'));
    });
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

  /** Idempotent: stop taking input, let accepted events become durable, checkpoint, close the stream and the journal. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.allSettled(this.sources.map((s) => s.stop()));
      await this.http?.close();
      await this.checkpointer?.stop();
      // Give the final checkpoint a moment to reach the collector before the stream closes.
      await this.shipper?.drain(2000);
      await this.shipper?.stop();
      await this.journal?.close();
      this.log.info('agent stopped');
    })();
    return this.stopping;
  }
}
