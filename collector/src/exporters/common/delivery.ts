/**
 * The delivery loop every batching exporter composes (Vector's
 * `batched → request_builder → driver(service)`, without a class hierarchy):
 *
 *   spool ─► Batcher (filter, encode, bound) ─► Sender.send ─► outcome per item
 *                                                  │  retryable: backoff with full jitter, ≥ Retry-After, same items again
 *                                                  │  permanent: dead letters with the reason
 *                                                  ▼
 *            spool.commitExport(cursor = last offset of the batch, dead letters)   — one synced LevelDB batch,
 *                                                  in order, while the next batch is sent
 *
 * The cursor moves only once every item of the batch was accepted or
 * dead-lettered, so a crash re-sends at most the batch in hand (at least once;
 * destinations that have an idempotency key get the event id). Retryable
 * failures are retried without end: the cursor waits, the spool keeps the data.
 *
 * A `Sender` answers for the items it was given: nothing (all accepted), or
 * `{retry, dead}` with indices into that list; or it throws a `SealtrailError`
 * that is `retryable` (the whole list again) or not (the whole list dead-lettered).
 *
 * Dead letters queued for replay (`sealtrail-collector deadletter replay`) are
 * delivered first when the exporter starts.
 */
import { SealtrailError } from '@sealtrail/errors';
import { rateLimited } from '@sealtrail/telemetry';
import type { DeadLetter, StoredDeadLetter } from '../../spool/spool.js';
import type { Exporter, ExporterSettings } from '../exporter.js';
import { backoffDelay, sleep } from './backoff.js';
import { type Batch, Batcher, deadLetter, type Encoded, type Encoder } from './batcher.js';
import type { CommonExporterConfig } from './config.js';
import { type BoundExporterMetrics, exporterMetrics } from './metrics.js';
import { compileFilter, eventIdOf, toExportRecord } from './record.js';

export interface Rejection {
  index: number;
  reason: string;
  code?: string;
}

export interface SendOutcome {
  /** Indices to send again (after a backoff). */
  retry?: number[];
  /** Indices refused for good. */
  dead?: Rejection[];
  /** The destination asked to wait this long before the retry. */
  retryAfterMs?: number;
  /** Retry at once: what is left was never looked at (Splunk stops at an invalid event). */
  retryNow?: boolean;
}

export interface Sender<T> {
  send(items: Encoded<T>[], signal: AbortSignal): Promise<SendOutcome | undefined>;
  close?(): Promise<void>;
}

export interface DeliverySpec<T> {
  settings: ExporterSettings;
  config: CommonExporterConfig;
  encode: Encoder<T>;
  sender: Sender<T>;
  /** How long `stop()` lets a request in flight finish before aborting it. */
  stopGraceMs?: number;
}

interface Cursor {
  offset: string;
}

export function cursorName(type: string, name: string): string {
  return `${type}:${name}`;
}

/** Wraps a delivery loop as an `Exporter` (start quick, stop idempotent). */
export function deliveryExporter<T>(spec: DeliverySpec<T>): Exporter & { readonly offset: bigint } {
  return new DeliveryLoop(spec);
}

class DeliveryLoop<T> implements Exporter {
  private readonly stopping = new AbortController();
  private readonly aborting = new AbortController();
  private running: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  offset = -1n;
  private readonly metrics: BoundExporterMetrics;
  private readonly batcher: Batcher<T>;
  private readonly logError;

  constructor(private readonly spec: DeliverySpec<T>) {
    const { settings, config } = spec;
    this.batcher = new Batcher(settings.spool, config, compileFilter(config.filter), spec.encode);
    this.metrics = exporterMetrics(settings.registry, config.name, config.type, {
      lagRecords: () => Number(this.lag()),
      lagSeconds: () => this.lagSeconds(),
    });
    this.logError = rateLimited(settings.log);
  }

  get name(): string {
    return this.spec.config.name;
  }

  private get cursorKey(): string {
    return cursorName(this.spec.config.type, this.spec.config.name);
  }

  lag(): bigint {
    const l = this.spec.settings.spool.headOffset - this.offset;
    return l > 0n ? l : 0n;
  }

  private async lagSeconds(): Promise<number> {
    const { spool } = this.spec.settings;
    if (!spool.isOpen || this.lag() === 0n) return 0;
    try {
      const [next] = await spool.readOffsets([this.offset + 1n]);
      return next ? Math.max(0, (Date.now() - next.receivedMs) / 1000) : 0;
    } catch {
      return 0;
    }
  }

  async start(): Promise<void> {
    const cursor = await this.spec.settings.spool.getCursor<Cursor>(this.cursorKey);
    if (cursor) this.offset = BigInt(cursor.offset);
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    const { settings } = this.spec;
    const signal = this.stopping.signal;
    try {
      await this.replayQueued();
    } catch (err) {
      if (!signal.aborted) settings.log.error({ err }, 'replaying dead letters failed; they stay queued');
    }
    // Three stages overlap: the next batch is read and encoded, this one is
    // sent, and the previous one's cursor is synced to the spool. Cursors are
    // committed in order, each only after its batch was settled.
    let prefetch: Promise<Batch<T> | null> | null = null;
    let committing: Promise<void> | null = null;
    while (!signal.aborted) {
      try {
        if (!prefetch && committing) {
          // reading from the cursor: it must be current
          const c = committing;
          committing = null;
          await c;
        }
        const batch = await (prefetch ?? this.batcher.next(this.offset, signal));
        prefetch = null;
        if (!batch || signal.aborted) continue;
        prefetch = this.batcher.next(batch.lastOffset, signal);
        prefetch.catch(() => undefined);
        this.metrics.filtered(batch.skipped);
        const dead = [...batch.rejected];
        if (batch.items.length > 0) dead.push(...(await this.deliver(batch.items)));
        const previous = committing;
        committing = null;
        await previous;
        committing = this.commit(batch.lastOffset, dead);
        committing.catch(() => undefined);
      } catch (err) {
        // read again from the last cursor synced, once no commit is in flight
        prefetch = null;
        const c = committing;
        committing = null;
        await c?.catch(() => undefined);
        if (signal.aborted) break;
        this.logError('loop', { err }, 'export loop failed; retrying in 1 s');
        await sleep(1000, signal).catch(() => undefined);
      }
    }
    await committing?.catch(() => undefined);
  }

  /** The cursor past a settled batch, with the batch's dead letters, in one synced write. */
  private async commit(lastOffset: bigint, dead: DeadLetter[]): Promise<void> {
    await this.spec.settings.spool.commitExport({
      exporter: this.name,
      cursorKey: this.cursorKey,
      cursor: { offset: lastOffset.toString() },
      deadLetters: dead,
    });
    this.offset = lastOffset;
    this.noteDead(dead);
  }

  private noteDead(dead: DeadLetter[]): void {
    if (dead.length === 0) return;
    this.metrics.deadLettered(dead.length);
    this.spec.settings.log.warn(
      { dead_letters: dead.length, first: dead[0]!.reason },
      'destination refused events for good; kept as dead letters',
    );
  }

  /** Sends until every item is accepted or dead-lettered; throws only when stopping. */
  private async deliver(items: Encoded<T>[]): Promise<DeadLetter[]> {
    const { sender, config } = this.spec;
    const stop = this.stopping.signal;
    const backoff = { initialMs: config.retry_initial_backoff, maxMs: config.retry_max_backoff };
    const dead: DeadLetter[] = [];
    let pending = items;
    let attempt = 0;
    while (pending.length > 0) {
      if (stop.aborted) throw stop.reason;
      const t0 = performance.now();
      let outcome: SendOutcome;
      try {
        outcome = (await sender.send(pending, this.aborting.signal)) ?? {};
        this.metrics.observe((performance.now() - t0) / 1000);
      } catch (err) {
        this.metrics.observe((performance.now() - t0) / 1000);
        if (this.aborting.signal.aborted) throw err;
        const retryable = err instanceof SealtrailError ? err.retryable : true;
        this.metrics.failed(pending.length);
        if (!retryable) {
          for (const it of pending) dead.push(deadLetter(config.name, it.x.record, eventIdOf(it.x), err));
          return dead;
        }
        const wait = backoffDelay(backoff, attempt++, (err as SealtrailError).retryAfterMs);
        this.logError(
          'send',
          { err: (err as Error).message, events: pending.length, retry_in_ms: wait },
          'delivery failed; will retry',
        );
        await sleep(wait, stop);
        this.metrics.retried(pending.length);
        continue;
      }
      const retry = outcome.retry ?? [];
      const refused = outcome.dead ?? [];
      for (const r of refused) {
        const it = pending[r.index]!;
        dead.push(deadLetter(config.name, it.x.record, eventIdOf(it.x), { message: r.reason, code: r.code }));
      }
      this.metrics.sent(pending.length - retry.length - refused.length);
      if (retry.length === 0) break;
      this.metrics.failed(retry.length);
      const wait = outcome.retryNow ? 0 : backoffDelay(backoff, attempt++, outcome.retryAfterMs);
      if (wait > 0)
        this.logError(
          'partial',
          { events: retry.length, retry_in_ms: wait },
          'destination asked to retry some events; will retry',
        );
      await sleep(wait, stop);
      this.metrics.retried(retry.length);
      pending = retry.map((i) => pending[i]!);
    }
    return dead;
  }

  /** Delivers the dead letters an operator queued for replay; what is refused again goes back to the dead letters. */
  private async replayQueued(): Promise<void> {
    const { spool, log } = this.spec.settings;
    const signal = this.stopping.signal;
    for (;;) {
      const queued: StoredDeadLetter[] = [];
      for await (const d of spool.deadLetters(this.name, true)) {
        queued.push(d);
        if (queued.length >= this.spec.config.batch_max_records) break;
      }
      if (queued.length === 0 || signal.aborted) return;
      const records = await spool.readOffsets(queued.map((q) => BigInt(q.offset)));
      const items: Encoded<T>[] = [];
      const dead: DeadLetter[] = [];
      for (const r of records) {
        if (!r) continue;
        try {
          items.push(this.spec.encode(toExportRecord(r)));
        } catch (err) {
          dead.push(deadLetter(this.name, r, undefined, err));
        }
      }
      if (items.length > 0) dead.push(...(await this.deliver(items)));
      await spool.commitExport({ exporter: this.name, deadLetters: dead, replayed: queued.map((q) => q.n) });
      this.noteDead(dead);
      log.info(
        { replayed: queued.length - dead.length, refused_again: dead.length },
        'replayed dead letters',
      );
    }
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping.abort(new SealtrailError('ST_EXPORT_STOPPED', 'exporter stopped'));
      const grace = setTimeout(
        () => this.aborting.abort(new SealtrailError('ST_EXPORT_STOPPED', 'exporter stopped')),
        this.spec.stopGraceMs ?? 5000,
      );
      await this.running?.catch(() => undefined);
      clearTimeout(grace);
      await this.spec.sender.close?.();
      this.metrics.release();
    })();
    return this.stopped;
  }
}

/**
 * For destinations that answer 413 to a body too large: sends halves (in order)
 * until each part fits; a single item still refused is dead-lettered.
 */
export async function sendSplittingOn413<T>(
  items: Encoded<T>[],
  sendOnce: (items: Encoded<T>[]) => Promise<SendOutcome | undefined>,
  isTooLarge: (err: unknown) => boolean,
): Promise<SendOutcome | undefined> {
  try {
    return await sendOnce(items);
  } catch (err) {
    if (!isTooLarge(err)) throw err;
    if (items.length === 1)
      return { dead: [{ index: 0, reason: (err as Error).message, code: 'ST_EXPORT_TOO_LARGE' }] };
    const mid = Math.ceil(items.length / 2);
    const out: Required<Pick<SendOutcome, 'retry' | 'dead'>> & SendOutcome = { retry: [], dead: [] };
    for (const [start, part] of [
      [0, items.slice(0, mid)],
      [mid, items.slice(mid)],
    ] as const) {
      let r: SendOutcome | undefined;
      try {
        r = await sendSplittingOn413(part, sendOnce, isTooLarge);
      } catch (e) {
        // This part failed as a whole; the other part's fate is its own.
        if (e instanceof SealtrailError && !e.retryable) {
          out.dead.push(...part.map((_, i) => ({ index: start + i, reason: e.message, code: e.code })));
        } else {
          out.retry.push(...part.map((_, i) => start + i));
          if (e instanceof SealtrailError && e.retryAfterMs !== undefined) out.retryAfterMs = e.retryAfterMs;
        }
        continue;
      }
      for (const i of r?.retry ?? []) out.retry.push(start + i);
      for (const d of r?.dead ?? []) out.dead.push({ ...d, index: start + d.index });
      if (r?.retryAfterMs !== undefined) out.retryAfterMs = r.retryAfterMs;
    }
    return out;
  }
}
