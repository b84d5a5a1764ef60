/**
 * Wires one running agent: identity → journal → sources → shipper, plus its HTTP listener.
 *
 * Hot reload (`reload()`, on SIGHUP and when the config file changes): the new file is
 * validated first; an invalid one leaves everything running as it was, logs why and
 * sets `sealtrail_agent_config_valid 0`. A valid one stops the sources that were removed
 * or changed (each drains: what it accepted is durable) and starts the added and changed
 * ones, which resume from their committed positions; unchanged sources are not touched.
 * Agent-wide `redact` rules apply to the next event sealed. Other sections (data_dir,
 * collector, http, journal, checkpoint) need a restart: a change there is logged and ignored.
 */
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
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
import { type AgentConfig, loadAgentConfig } from './config.js';
import { loadOrCreateIdentity } from './identity/identity.js';
import { Checkpointer, readAnchor } from './journal/checkpoint.js';
import { chainStartEvent, gapEvent, integrityEvent } from './journal/events.js';
import { Journal } from './journal/journal.js';
import { openWithRecovery } from './journal/recovery.js';
import { journalPaths } from './journal/verify.js';
import { transport } from './shipper/credentials.js';
import { Shipper } from './shipper/shipper.js';
import { counter, gauge } from './sources/common/metrics.js';
import { compileRedaction } from './sources/common/redact.js';
import { createSource, type SourceConfig } from './sources/index.js';
import type { Source, SourceSettings } from './sources/source.js';
import { diskUsage } from './status.js';
import { AGENT_VERSION } from './version.js';

interface Running {
  config: SourceConfig;
  source: Source;
  /** Why start() failed; the source then takes no part until the next reload changes it. */
  failed: string | null;
}

export interface AgentOptions {
  /** The file the config came from: reloaded on SIGHUP (`reload()`) and, with `agent.watch_config`, on change. */
  configPath?: string;
}

export interface ReloadResult {
  ok: boolean;
  error?: string;
  started: string[];
  stopped: string[];
  unchanged: string[];
  /** Sections that changed but need a restart. */
  ignored: string[];
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Sampling period of the agent's event-loop lag histogram (`sealtrail_nodejs_eventloop_lag_*`). */
export const AGENT_LAG_SAMPLE_MS = 100;
/** Acknowledged event bytes after which a drained backlog is compacted away. */
const COMPACT_AFTER_ACKED_BYTES = 16 * 1024 * 1024;

export class Agent {
  readonly log: Logger;
  readonly registry: Registry;
  private journal!: Journal;
  private shipper!: Shipper;
  private checkpointer!: Checkpointer;
  private readonly running = new Map<string, Running>();
  private http: HttpServer | null = null;
  private stopping: Promise<void> | null = null;
  private settings!: Omit<SourceSettings, 'log'>;
  private globalRedact: (e: AuditEvent) => AuditEvent;
  private reloading: Promise<ReloadResult> = Promise.resolve({
    ok: true,
    started: [],
    stopped: [],
    unchanged: [],
    ignored: [],
  });
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private readonly reloads;
  private readonly configValid;
  private readonly sourceUp;

  constructor(
    public config: AgentConfig,
    private readonly opts: AgentOptions = {},
  ) {
    this.log = createLogger('agent', config.agent.log_level);
    // An idle agent should cost next to nothing: lag sampled every 100 ms still catches any stall
    // worth alerting on, at a tenth of the wake-ups of prom-client's 10 ms default.
    this.registry = createRegistry('agent', { eventLoopMonitoringPrecisionMs: AGENT_LAG_SAMPLE_MS });
    this.globalRedact = compileRedaction(config.redact);
    this.reloads = counter(this.registry, {
      name: 'sealtrail_agent_config_reloads_total',
      help: 'Config reloads, by outcome (ok, invalid)',
      labelNames: ['outcome'],
    });
    this.configValid = gauge(this.registry, {
      name: 'sealtrail_agent_config_valid',
      help: '1 when the last config file read was valid, 0 when it was refused (the previous config keeps running)',
      labelNames: [],
    });
    this.configValid.set(1);
    this.sourceUp = gauge(this.registry, {
      name: 'sealtrail_source_up',
      help: '1 for a running source, 0 for one that failed to start',
      labelNames: ['source', 'type'],
    });
  }

  /** Sources by name, with the error of those that failed to start. */
  sourceStatus(): Record<string, { type: string; failed: string | null }> {
    const out: Record<string, { type: string; failed: string | null }> = {};
    for (const [name, r] of this.running) out[name] = { type: r.config.type, failed: r.failed };
    return out;
  }

  /** The running source instance of that name (tests). */
  source(name: string): Source | undefined {
    return this.running.get(name)?.source;
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
      help: 'Damage found in the journal (on open or before shipping) and quarantined, by kind',
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
            integrity: (finding) => integrityEvent(host, finding),
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
    // Damage in older records, found as they are read for shipping (sealed by the journal itself).
    journal.on('integrity', (f) => {
      quarantines.inc({ kind: f.kind });
      this.log.error({ kind: f.kind, ...f.attributes }, f.detail);
    });
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
    this.settings = {
      journal,
      host,
      registry: this.registry,
      maxEventBytes: cfg.journal.max_event_bytes,
      overHighWater: () => journal.fill >= cfg.journal.high_water,
      redact: (e) => this.globalRedact(e),
    };

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
        {
          name: 'sources',
          check: () => {
            const failed = [...this.running.entries()].filter(([, r]) => r.failed);
            return failed.length === 0 ? null : failed.map(([n, r]) => `${n}: ${r.failed}`).join('; ');
          },
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
        // Older unshipped records found at start-up are verified as they are shipped.
        backlog_verifying: journal.verifying,
        disk_bytes: await diskUsage(paths.journal),
        connected: this.shipper.connected,
        last_ack_time: this.shipper.lastAckAt?.toISOString() ?? null,
        sources: this.sourceStatus(),
      }),
    );
    // Source routes are looked up per request, so a reload can add or remove them.
    app.all('*', async (c) => {
      for (const r of this.running.values()) {
        if (!r.source.routes || r.failed) continue;
        const res = await r.source.routes.fetch(c.req.raw);
        if (res.status !== 404) return res;
      }
      return c.json({ error: 'not found' }, 404);
    });
    this.http = await listen(app, cfg.http.listen);

    if (!t.tls) {
      this.log.warn(
        { collector: cfg.collector.address },
        'streaming to the collector without TLS (insecure: true)',
      );
    }
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
    for (const s of cfg.sources) await this.startSource(s);
    this.checkpointer.start();
    this.shipper.start();
    // Reclaim the disk space of acknowledged records when the backlog drains after enough of them.
    // Not after every ack: an idle agent's checkpoint is acked each minute, and a compaction
    // rewrites every table it touches (FIM baseline and inventory state included); LevelDB's own
    // compactions drop a trickle of deletions as it writes anyway.
    let backlogBytes = journal.backlogBytes;
    let ackedSinceCompaction = 0;
    journal.on('appended', () => {
      backlogBytes = journal.backlogBytes;
    });
    journal.on('acked', () => {
      ackedSinceCompaction += Math.max(0, backlogBytes - journal.backlogBytes);
      backlogBytes = journal.backlogBytes;
      if (journal.backlogRecords === 0 && ackedSinceCompaction >= COMPACT_AFTER_ACKED_BYTES) {
        ackedSinceCompaction = 0;
        journal.compact().catch((err) => this.log.warn({ err }, 'journal compaction failed'));
      }
    });
    this.watchConfig();
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

  private async startSource(config: SourceConfig): Promise<void> {
    const source = createSource({ ...this.settings, log: this.log.child({ source: config.name }) }, config);
    const r: Running = { config, source, failed: null };
    this.running.set(config.name, r);
    try {
      await source.start();
      this.sourceUp.set({ source: config.name, type: config.type }, 1);
    } catch (err) {
      // One source that cannot run (journalctl missing, socket in use) does not stop the others.
      r.failed = (err as Error).message;
      this.sourceUp.set({ source: config.name, type: config.type }, 0);
      this.log.error({ err, source: config.name }, 'source failed to start');
      await source.stop().catch(() => {});
    }
  }

  private async stopSource(name: string): Promise<void> {
    const r = this.running.get(name);
    if (!r) return;
    this.running.delete(name);
    await r.source.stop();
    this.sourceUp.remove({ source: name, type: r.config.type });
  }

  private watchConfig(): void {
    const file = this.opts.configPath;
    if (!file || !this.config.agent.watch_config) return;
    try {
      // The directory, not the file: editors and config managers replace files by rename.
      this.watcher = watch(dirname(file), (_event, name) => {
        if (name !== null && name !== basename(file)) return;
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => {
          this.debounce = null;
          void this.reload();
        }, 300);
      });
      this.watcher.on('error', (err) => this.log.warn({ err }, 'config file watch failed'));
    } catch (err) {
      this.log.warn({ err, file }, 'cannot watch the config file; SIGHUP still reloads it');
    }
  }

  /** Reads the config file again (or takes `next`) and applies it; serialized with other reloads. */
  reload(next?: AgentConfig): Promise<ReloadResult> {
    this.reloading = this.reloading.then(() => this.applyReload(next));
    return this.reloading;
  }

  private async applyReload(next?: AgentConfig): Promise<ReloadResult> {
    const result: ReloadResult = { ok: true, started: [], stopped: [], unchanged: [], ignored: [] };
    if (this.stopping) return { ...result, ok: false, error: 'agent is stopping' };
    let cfg: AgentConfig;
    try {
      if (next) cfg = next;
      else if (this.opts.configPath) cfg = loadAgentConfig(this.opts.configPath);
      else return { ...result, ok: false, error: 'no config file to reload' };
    } catch (err) {
      this.reloads.inc({ outcome: 'invalid' });
      this.configValid.set(0);
      this.log.error(
        { err: (err as Error).message },
        'config reload refused; the running config stays in place',
      );
      return { ...result, ok: false, error: (err as Error).message };
    }
    const old = this.config;
    for (const section of ['collector', 'http', 'journal', 'checkpoint'] as const) {
      if (!sameJson(old[section], cfg[section])) result.ignored.push(section);
    }
    if (old.agent.data_dir !== cfg.agent.data_dir || old.agent.name !== cfg.agent.name)
      result.ignored.push('agent');
    if (result.ignored.length > 0) {
      this.log.warn(
        { sections: result.ignored },
        'config sections changed that need a restart; kept as they were',
      );
    }
    if (cfg.agent.log_level !== old.agent.log_level) this.log.level = cfg.agent.log_level;
    this.globalRedact = compileRedaction(cfg.redact);

    const wanted = new Map(cfg.sources.map((s) => [s.name, s]));
    const toStop: string[] = [];
    for (const [name, r] of this.running) {
      const w = wanted.get(name);
      if (!w || !sameJson(w, r.config)) toStop.push(name);
    }
    await Promise.all(toStop.map((n) => this.stopSource(n)));
    result.stopped = toStop;
    for (const s of cfg.sources) {
      if (this.running.has(s.name)) {
        result.unchanged.push(s.name);
        continue;
      }
      await this.startSource(s);
      result.started.push(s.name);
    }
    this.config = {
      ...cfg,
      collector: old.collector,
      http: old.http,
      journal: old.journal,
      checkpoint: old.checkpoint,
      agent: { ...cfg.agent, data_dir: old.agent.data_dir, name: old.agent.name },
    };
    this.reloads.inc({ outcome: 'ok' });
    this.configValid.set(1);
    this.log.info(
      { started: result.started, stopped: result.stopped, unchanged: result.unchanged.length },
      'config reloaded',
    );
    return result;
  }

  /** Idempotent: stop taking input, let accepted events become durable, checkpoint, close the stream and the journal. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.watcher?.close();
      if (this.debounce) clearTimeout(this.debounce);
      await this.reloading.catch(() => {});
      await Promise.allSettled([...this.running.values()].map((r) => r.source.stop()));
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
