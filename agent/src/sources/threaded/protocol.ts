/**
 * Messages between a source running on a worker thread and the agent's main thread, which
 * owns the journal, the metrics registry and the logger. Everything here is structured-clone
 * data; a batch's events travel as one transferred buffer, not one message part per event.
 */
import { SealtrailError } from '@sealtrail/errors';
import type { RedactRule } from '../common/redact.js';

/** What the worker needs to build the source's settings (`workerData`). */
export interface WorkerStart {
  type: string;
  config: { name: string };
  host: unknown;
  maxEventBytes: number;
  logLevel: string;
  redact: readonly RedactRule[];
  overHighWater: boolean;
}

/** Main → worker. */
export type ToWorker =
  | { t: 'reply'; id: number; value?: unknown; error?: WireError; high: boolean }
  | { t: 'settings'; high?: boolean; redact?: readonly RedactRule[]; logLevel?: string }
  | { t: 'stop' };

/** Worker → main. */
export type FromWorker =
  | { t: 'started' }
  | { t: 'start_failed'; error: WireError }
  | { t: 'position'; id: number; source: string }
  | {
      t: 'append';
      id: number;
      /** The events back to back; `ends[i]` is where event i ends. */
      bytes: Uint8Array;
      ends: Uint32Array;
      positions?: Record<string, unknown>;
    }
  | { t: 'log'; line: string }
  | { t: 'metrics'; deltas: CounterDelta[] }
  | { t: 'stopped' };

/** How much a counter series grew on the worker since the last report. */
export interface CounterDelta {
  name: string;
  help: string;
  labels: Record<string, string | number>;
  value: number;
}

export interface WireError {
  name: string;
  message: string;
  code?: string;
  retryable?: boolean;
  retryAfterMs?: number;
}

export function toWire(err: unknown): WireError {
  const e = err instanceof Error ? err : new Error(String(err));
  const s = e as Partial<SealtrailError>;
  return {
    name: e.name,
    message: e.message,
    code: s.code,
    retryable: s.retryable,
    retryAfterMs: s.retryAfterMs,
  };
}

/** The error again, a SealtrailError when it was one (callers look at `code` and `retryable`). */
export function fromWire(w: WireError): Error {
  if (w.code !== undefined) {
    return new SealtrailError(w.code, w.message, { retryable: w.retryable, retryAfterMs: w.retryAfterMs });
  }
  const e = new Error(w.message);
  e.name = w.name;
  return e;
}

/**
 * Packs encoded events into one buffer of its own (not from Buffer's shared pool, so it can be
 * transferred) and their end offsets.
 */
export function packEvents(events: readonly Buffer[]): { bytes: Uint8Array; ends: Uint32Array } {
  let total = 0;
  for (const e of events) total += e.length;
  const bytes = total > 0 ? Buffer.allocUnsafeSlow(total) : new Uint8Array(0);
  const ends = new Uint32Array(events.length);
  let o = 0;
  for (let i = 0; i < events.length; i++) {
    o += events[i]!.copy(bytes, o);
    ends[i] = o;
  }
  return { bytes, ends };
}

/** The events of `packEvents` as Buffers over the same memory (no copy). */
export function unpackEvents(bytes: Uint8Array, ends: Uint32Array): Buffer[] {
  const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Buffer[] = new Array(ends.length);
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    out[i] = all.subarray(start, ends[i]);
    start = ends[i]!;
  }
  return out;
}
