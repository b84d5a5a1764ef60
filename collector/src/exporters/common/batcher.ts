/**
 * The batcher: reads the spool after a cursor, skips duplicate ids, erased
 * payloads and what the filter rejects, encodes the rest, and closes the batch at `batch_max_records`
 * records, `batch_max_bytes` encoded bytes, or `batch_timeout` after it opened.
 * A record that cannot be encoded (too large for the destination, say) becomes
 * a dead letter here, before anything is sent.
 */
import { once } from 'node:events';
import type { SealtrailError } from '@sealtrail/errors';
import type { AuditEvent } from '@sealtrail/event';
import { type DeadLetter, isExportable, type Spool, type StoredRecord } from '../../spool/spool.js';
import type { CommonExporterConfig } from './config.js';
import { type ExportRecord, eventIdOf, toExportRecord } from './record.js';

export interface Encoded<T> {
  x: ExportRecord;
  payload: T;
  /** Encoded size, counted against `batch_max_bytes`. */
  bytes: number;
}

export type Encoder<T> = (x: ExportRecord) => Encoded<T>;

export interface Batch<T> {
  items: Encoded<T>[];
  /** Records the cursor passes over without sending (filtered, duplicate ids). */
  skipped: number;
  /** Records that could not be encoded. */
  rejected: DeadLetter[];
  /** Offset the cursor moves to once this batch is settled. */
  lastOffset: bigint;
  /** Receive time of the batch's first record. */
  firstReceivedMs: number;
}

export function deadLetter(
  exporter: string,
  r: StoredRecord,
  eventId: string | undefined,
  err: unknown,
): DeadLetter {
  const e = err as Partial<SealtrailError>;
  return {
    exporter,
    offset: r.offset.toString(),
    event_id: eventId,
    reason: (err as Error)?.message ?? String(err),
    code: e.code,
    time: new Date().toISOString(),
  };
}

/** Waits for the spool to commit something, at most `ms`; false when `signal` aborted. */
export async function waitForCommit(spool: Spool, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  const timeout = AbortSignal.timeout(Math.max(1, ms));
  try {
    await once(spool, 'committed', { signal: AbortSignal.any([signal, timeout]) });
  } catch {}
  return !signal.aborted;
}

export class Batcher<T> {
  constructor(
    private readonly spool: Spool,
    private readonly cfg: CommonExporterConfig,
    /** Undefined: everything passes (and the event need not be parsed for it). */
    private readonly filter: ((e: AuditEvent) => boolean) | undefined,
    private readonly encode: Encoder<T>,
    /** Longest wait for the first record before `next` returns null (the caller's loop checks its timers). */
    private readonly idleMs = 1000,
  ) {}

  /** The next batch after `offset`, or null when nothing arrived within the idle wait or `signal` aborted. */
  async next(offset: bigint, signal: AbortSignal): Promise<Batch<T> | null> {
    const { spool, cfg } = this;
    let records = await spool.read(offset, cfg.batch_max_records);
    if (records.length === 0) {
      await waitForCommit(spool, this.idleMs, signal);
      return null;
    }
    const deadline = Date.now() + cfg.batch_timeout;
    while (records.length < cfg.batch_max_records && !signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      if (!(await waitForCommit(spool, left, signal))) break;
      const more = await spool.read(
        records[records.length - 1]!.offset,
        cfg.batch_max_records - records.length,
      );
      records = records.concat(more);
    }
    return this.build(records);
  }

  build(records: StoredRecord[]): Batch<T> {
    const items: Encoded<T>[] = [];
    const rejected: DeadLetter[] = [];
    let skipped = 0;
    let bytes = 0;
    let lastOffset = records[0]!.offset - 1n;
    for (const r of records) {
      if (!isExportable(r)) {
        // a re-posted event id, or a payload the agent erased
        skipped++;
        lastOffset = r.offset;
        continue;
      }
      const x = toExportRecord(r);
      if (this.filter) {
        let pass: boolean;
        try {
          pass = this.filter(x.event);
        } catch (err) {
          // the stored bytes do not parse
          rejected.push(deadLetter(this.cfg.name, r, undefined, err));
          lastOffset = r.offset;
          continue;
        }
        if (!pass) {
          skipped++;
          lastOffset = r.offset;
          continue;
        }
      }
      let enc: Encoded<T>;
      try {
        enc = this.encode(x);
      } catch (err) {
        rejected.push(deadLetter(this.cfg.name, r, eventIdOf(x), err));
        lastOffset = r.offset;
        continue;
      }
      if (items.length > 0 && bytes + enc.bytes > this.cfg.batch_max_bytes) break;
      items.push(enc);
      bytes += enc.bytes;
      lastOffset = r.offset;
    }
    return { items, skipped, rejected, lastOffset, firstReceivedMs: records[0]!.receivedMs };
  }
}
