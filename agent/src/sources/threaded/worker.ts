/**
 * Worker-thread entry of a threaded source (see threaded.ts). The source runs here
 * unchanged, against settings whose journal, logger and metrics are the main thread's,
 * reached by messages: reading, parsing and encoding happen on this thread, sealing and
 * the LevelDB write on the main one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditEvent } from '@sealtrail/event';
import { Counter, createLineLogger, Registry } from '@sealtrail/telemetry';
import type { Journal } from '../../journal/journal.js';
import { compileRedaction } from '../common/redact.js';
import { logTailSource } from '../log_tail/log_tail.js';
import type { SourceFactory, SourceSettings } from '../source.js';
import {
  type CounterDelta,
  type FromWorker,
  fromWire,
  packEvents,
  type ToWorker,
  toWire,
  type WorkerStart,
} from './protocol.js';

/** The source types that can run on a worker thread. */
const FACTORIES: Record<string, SourceFactory<unknown>> = {
  log_tail: logTailSource as SourceFactory<unknown>,
};

/** How often counters are reported when no batch carries them. */
const METRICS_EVERY_MS = 1000;

const port = parentPort!;
const start = workerData as WorkerStart;
const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);

let high = start.overHighWater;
let redact = compileRedaction(start.redact);
const log = createLineLogger(start.logLevel, (line) => post({ t: 'log', line }));
const registry = new Registry();

let nextId = 1;
const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
function call<T>(m: FromWorker, transfer?: ArrayBuffer[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    calls.set((m as { id: number }).id, { resolve: resolve as (v: unknown) => void, reject });
    post(m, transfer);
  });
}

const journal = {
  position: (source: string) => call({ t: 'position', id: nextId++, source }),
  async append(req: { events: Buffer[]; positions?: Record<string, unknown> }) {
    const { bytes, ends } = packEvents(req.events);
    const r = await call<{ first: string; last: string }>(
      { t: 'append', id: nextId++, bytes, ends, positions: req.positions },
      [bytes.buffer as ArrayBuffer, ends.buffer as ArrayBuffer],
    );
    void reportMetrics();
    return { first: BigInt(r.first), last: BigInt(r.last) };
  },
};

const settings: SourceSettings = {
  // The two methods a source calls; the rest of the journal stays on the main thread.
  journal: journal as unknown as Journal,
  host: start.host as AuditEvent['host'],
  log,
  registry,
  maxEventBytes: start.maxEventBytes,
  overHighWater: () => high,
  redact: (e) => redact(e),
  redactRules: () => [],
};

/** What each counter series stood at when last reported. */
const reported = new Map<string, number>();
let reporting: Promise<void> | null = null;

/** Metrics of other kinds, which are not reported (named once in the log). */
const unreported = new Set<string>();

/** Posts how much each counter grew since the last report (one report at a time); never rejects. */
function reportMetrics(): Promise<void> {
  reporting ??= (async () => {
    const deltas: CounterDelta[] = [];
    for (const m of registry.getMetricsAsArray()) {
      if (!(m instanceof Counter)) {
        const name = (m as { name: string }).name;
        if (!unreported.has(name))
          log.warn({ metric: name }, 'only counters are reported from a worker thread');
        unreported.add(name);
        continue;
      }
      const { name, help, values } = await m.get();
      for (const v of values) {
        const key = `${name}\0${JSON.stringify(v.labels)}`;
        const delta = v.value - (reported.get(key) ?? 0);
        if (delta <= 0) continue;
        reported.set(key, v.value);
        deltas.push({ name, help, labels: v.labels as CounterDelta['labels'], value: delta });
      }
    }
    if (deltas.length > 0) post({ t: 'metrics', deltas });
  })()
    .catch((err) => log.warn({ err }, 'metrics report from the worker thread failed'))
    .finally(() => {
      reporting = null;
    });
  return reporting;
}

const factory = FACTORIES[start.type];
if (!factory) throw new Error(`a ${start.type} source cannot run on a worker thread`);
const source = factory.create(settings, start.config);
const timer = setInterval(() => void reportMetrics(), METRICS_EVERY_MS);
timer.unref();

port.on('message', (m: ToWorker) => {
  if (m.t === 'reply') {
    high = m.high;
    const c = calls.get(m.id);
    calls.delete(m.id);
    if (m.error) c?.reject(fromWire(m.error));
    else c?.resolve(m.value);
  } else if (m.t === 'settings') {
    if (m.high !== undefined) high = m.high;
    if (m.redact) redact = compileRedaction(m.redact);
    if (m.logLevel) log.level = m.logLevel;
  } else if (m.t === 'stop') {
    void source
      .stop()
      .catch((err) => log.error({ err }, 'source stop failed'))
      // After a report in flight (it may predate the last counts), one more with everything.
      .then(() => reporting)
      .then(() => reportMetrics())
      .finally(() => {
        clearInterval(timer);
        post({ t: 'stopped' });
      });
  }
});

source.start().then(
  () => post({ t: 'started' }),
  (err) => post({ t: 'start_failed', error: toWire(err) }),
);
