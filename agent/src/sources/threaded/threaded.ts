/**
 * Runs a source on its own worker thread (log_tail's `worker_thread: true`). A log_tail
 * source reading a backlog spends about 6 µs of every line's 8 on reading, parsing and
 * encoding, on the thread that also seals, ships and serves HTTP ingest. Here the source
 * (unchanged) reads, parses and encodes on the worker, and the main thread keeps what must
 * stay single: the journal (hash chain, LevelDB batch, fsync), the metrics registry and the
 * logger, which the worker reaches by messages (protocol.ts). It does not read faster on
 * its own (the main thread alone reads as fast, with less CPU in all): what it buys is a
 * main thread left free for the rest of the agent's work.
 *
 * What the worker sends is sealed in the order sent; a source's read position travels with
 * its events, as in-process. A worker that dies is started again after a backoff and resumes
 * from the last durable position (asked for only once every append it sent has settled),
 * so a crash loses nothing and seals nothing twice.
 */
import { Worker } from 'node:worker_threads';
import { forwardLogLine } from '@sealtrail/telemetry';
import { counter } from '../common/metrics.js';
import type { RedactRule } from '../common/redact.js';
import type { Source, SourceSettings } from '../source.js';
import {
  type CounterDelta,
  type FromWorker,
  fromWire,
  type ToWorker,
  toWire,
  unpackEvents,
  type WorkerStart,
} from './protocol.js';

export interface ThreadedOptions {
  /** First wait before a dead worker is started again; doubles up to `restartMaxMs`. */
  restartMinMs?: number;
  restartMaxMs?: number;
}

/** How often the high-water flag, the agent-wide redaction and the log level are re-checked. */
const SETTINGS_EVERY_MS = 250;
/** How long `stop` waits for the worker's source to stop before it terminates the thread. */
const STOP_WAIT_MS = 30_000;
/** A worker that ran this long before it died restarts after the shortest wait again. */
const STABLE_MS = 60_000;

/** The compiled worker entry: tests load this module from its TypeScript source, the worker runs the build. */
function workerUrl(): URL {
  const url = new URL('./worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return url;
  const i = url.href.lastIndexOf('/src/');
  return new URL(`${url.href.slice(0, i)}/dist/${url.href.slice(i + 5)}`);
}

/** This process's node flags without the test runner's `--conditions sealtrail-source`, which would load sources. */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if ((a === '--conditions' || a === '-C') && args[i + 1] === 'sealtrail-source') i++;
    else if (a !== '--conditions=sealtrail-source') out.push(a);
  }
  return out;
}

/** Young generation of the worker's heap: smaller than V8's default, at no cost in lines/s measured. */
const WORKER_YOUNG_MB = 16;

export class ThreadedSource implements Source {
  private worker: Worker | null = null;
  /** Appends the main thread has taken from a worker and not yet finished. */
  private readonly appends = new Set<Promise<unknown>>();
  private stopping: Promise<void> | null = null;
  private onStopped: (() => void) | null = null;
  private tick: NodeJS.Timeout | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private restartDelay: number;
  private startedAt = 0;
  private sent: { high: boolean; redact: readonly RedactRule[]; logLevel: string } | null = null;
  private readonly restarts;

  constructor(
    private readonly settings: SourceSettings,
    private readonly type: string,
    private readonly config: { name: string },
    private readonly opts: ThreadedOptions = {},
  ) {
    this.restartDelay = opts.restartMinMs ?? 1000;
    this.restarts = counter(settings.registry, {
      name: 'sealtrail_source_thread_restarts_total',
      help: 'Worker threads of sources started again after they died',
      labelNames: ['source'],
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** True while a worker thread runs the source (tests, status). */
  get running(): boolean {
    return this.worker !== null;
  }

  /** The worker's thread id, or null (tests). */
  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  async start(): Promise<void> {
    await this.spawn();
    this.tick = setInterval(() => this.pushSettings(), SETTINGS_EVERY_MS);
    this.tick.unref();
  }

  private current(): { high: boolean; redact: readonly RedactRule[]; logLevel: string } {
    return {
      high: this.settings.overHighWater(),
      redact: this.settings.redactRules(),
      logLevel: this.settings.log.level,
    };
  }

  /** Starts a worker; resolves once its source started, rejects with the reason it could not. */
  private spawn(): Promise<void> {
    const now = this.current();
    this.sent = now;
    const data: WorkerStart = {
      type: this.type,
      config: this.config,
      host: this.settings.host,
      maxEventBytes: this.settings.maxEventBytes,
      logLevel: now.logLevel,
      redact: now.redact,
      overHighWater: now.high,
    };
    const w = new Worker(workerUrl(), {
      workerData: data,
      execArgv: workerExecArgv(),
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_MB },
    });
    this.worker = w;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      let failure: Error | null = null;
      w.on('message', (m: FromWorker) => {
        if (m.t === 'started') {
          started = true;
          this.startedAt = Date.now();
          resolve();
        } else if (m.t === 'start_failed') {
          failure = fromWire(m.error);
          void w.terminate();
        } else this.handle(w, m);
      });
      w.on('error', (err) => {
        failure ??= err;
      });
      w.on('exit', (code) => {
        if (this.worker === w) this.worker = null;
        this.onStopped?.();
        if (!started) {
          reject(
            failure ??
              new Error(`${this.config.name}: worker thread exited (code ${code}) before the source started`),
          );
          return;
        }
        if (!this.stopping) this.died(failure, code);
      });
    });
  }

  private handle(w: Worker, m: FromWorker): void {
    const reply = (id: number, r: { value?: unknown; error?: unknown }) => {
      const msg: ToWorker = {
        t: 'reply',
        id,
        high: this.settings.overHighWater(),
        ...(r.error !== undefined ? { error: toWire(r.error) } : { value: r.value }),
      };
      // A worker that died meanwhile has nobody left to answer.
      if (this.worker === w) w.postMessage(msg);
    };
    switch (m.t) {
      case 'append': {
        // From a worker already gone (delivered after its exit): its successor reads these lines again.
        if (this.worker !== w) break;
        const p = this.settings.journal.append({
          events: unpackEvents(m.bytes, m.ends),
          positions: m.positions,
        });
        this.appends.add(p);
        p.then(
          (r) => reply(m.id, { value: { first: String(r.first), last: String(r.last) } }),
          (err) => reply(m.id, { error: err }),
        ).finally(() => this.appends.delete(p));
        break;
      }
      case 'position':
        // After every append already taken: a restarted worker must not read a position its
        // predecessor's last batch is about to move (it would read those lines again).
        void Promise.allSettled([...this.appends])
          .then(() => this.settings.journal.position(m.source))
          .then(
            (value) => reply(m.id, { value }),
            (err) => reply(m.id, { error: err }),
          );
        break;
      case 'log':
        forwardLogLine(this.settings.log, m.line);
        break;
      case 'metrics':
        this.applyMetrics(m.deltas);
        break;
      case 'stopped':
        this.onStopped?.();
        break;
    }
  }

  private applyMetrics(deltas: CounterDelta[]): void {
    for (const d of deltas) {
      counter(this.settings.registry, { name: d.name, help: d.help, labelNames: Object.keys(d.labels) }).inc(
        d.labels,
        d.value,
      );
    }
  }

  /** Tells the worker what changed on the main thread since it last heard. */
  private pushSettings(): void {
    const w = this.worker;
    if (!w || !this.sent) return;
    const now = this.current();
    const m: Extract<ToWorker, { t: 'settings' }> = { t: 'settings' };
    if (now.high !== this.sent.high) m.high = now.high;
    if (now.redact !== this.sent.redact) m.redact = now.redact;
    if (now.logLevel !== this.sent.logLevel) m.logLevel = now.logLevel;
    if (Object.keys(m).length === 1) return;
    this.sent = now;
    w.postMessage(m);
  }

  private died(err: Error | null, code: number): void {
    if (this.stopping) return;
    if (Date.now() - this.startedAt >= STABLE_MS) this.restartDelay = this.opts.restartMinMs ?? 1000;
    const delay = this.restartDelay;
    this.restartDelay = Math.min(delay * 2, this.opts.restartMaxMs ?? 30_000);
    this.restarts.inc({ source: this.config.name });
    this.settings.log.error(
      { err, exit_code: code, restart_in_ms: delay },
      'source worker thread died; starting it again from the last durable position',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      // `new Worker` can throw (out of threads): a rejection like any other failed start.
      Promise.resolve()
        .then(() => this.spawn())
        .catch((e) => this.died(e as Error, -1));
    }, delay);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.tick) clearInterval(this.tick);
      if (this.restartTimer) clearTimeout(this.restartTimer);
      const w = this.worker;
      if (w) {
        // The worker's source stops taking input and waits for its appends, which we answer. One
        // that does not stop in time is terminated: what it had not made durable is read again.
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.onStopped = resolve;
          timer = setTimeout(() => {
            this.settings.log.warn(
              { waited_ms: STOP_WAIT_MS },
              'source worker thread did not stop; terminating it',
            );
            resolve();
          }, STOP_WAIT_MS);
          w.postMessage({ t: 'stop' } satisfies ToWorker);
        });
        clearTimeout(timer);
        await w.terminate();
      }
      await Promise.allSettled([...this.appends]);
    })();
    return this.stopping;
  }
}
