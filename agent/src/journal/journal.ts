/**
 * The agent's sealed journal: hash chains of events in one LevelDB.
 *
 * Layout (binary keys, one-byte prefix; u32/u64 big-endian so keys sort by number):
 *   'r' u32(chain_no) u64(seq)  → 0x01 record_hash(32) event_bytes     a record
 *                               → 0x02 record_hash(32) event_hash(32)  a record whose payload was
 *                                                                      dropped (on_full: drop_oldest)
 *   'q' u32(chain_no) u64(seq)  → the record as it was found            quarantined on open (kept, never shipped)
 *   'c' u32(chain_no)           → JSON ChainMeta                        every chain: id, start, end
 *   'p' <source>                → JSON                                  a source's read position
 *   's' <ns> 0x00 <key>         → JSON                                  state kept by sources (FIM baseline entries
 *                                                                      `fim/<source>`, inventory snapshots
 *                                                                      `inv/<source>/<table>`)
 *   'm' head | acked            → JSON                                  the newest record; the last acknowledged one
 *
 * Invariants:
 *   - within a chain, records are contiguous and record(n) chains to record(n-1)
 *     (record 0 is `agent.chain.start`, chained to 32 zero bytes); a later chain's
 *     record 0 names the end of the chain before it;
 *   - the kept records run contiguously from just after `acked` to `head`;
 *   - records, the head, and the positions/state given with them are written in one
 *     `sync: true` batch, and an append resolves only after it: a source's position
 *     is never ahead of its events, nor behind them;
 *   - a record is deleted only after the collector acknowledged it (`ack`).
 *
 * Appends are group-committed: callers that arrive within the commit window, or
 * while a batch is being written, are sealed together into one batch.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, renameSync } from 'node:fs';
import { ChainVerifier, eventHash, HASH_BYTES, RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import { SealtrailError } from '@sealtrail/errors';
import { ClassicLevel } from 'classic-level';
import {
  decodeRecordValue,
  type Head,
  type JournalRecord,
  KIND_ERASED,
  KIND_FULL,
  type Position,
  payloadSize,
  recordKey,
  VALUE_HEADER,
} from './layout.js';
import { Sealer } from './seal.js';
import { type TailFault, TailVerifier } from './tail.js';

export type { Head, JournalRecord, Position } from './layout.js';
export { decodeRecordValue, recordKey } from './layout.js';

export interface ChainMeta {
  no: number;
  chainId: string;
  startedAt: string;
  reason: string;
  /** The previous chain's end, as record 0 names it. */
  previous: { chain_id: string; last_seq: string; last_hash: string } | null;
  /** Set when a newer chain started after this one. */
  end?: { seq: string; hash: string } | null;
}

export interface JournalStats {
  chainId: string | null;
  head: string | null;
  acked: string | null;
  backlogRecords: number;
  backlogBytes: number;
}

/** One entry of a source's keyed state; `value: null` deletes it. */
export interface StateWrite {
  ns: string;
  key: string;
  value: unknown;
}

export interface AppendRequest {
  /** Canonical event bytes, sealed in order. */
  events: Buffer[];
  /** Read positions committed with the events, by source name. */
  positions?: Record<string, unknown>;
  /** Keyed state (FIM baseline, inventory snapshot) written in the same batch as the events. */
  state?: StateWrite[];
}

/** What the journal does when it is full (`max_bytes` / `max_records`). */
export type OnFull = 'block' | 'drop_oldest';

export interface JournalLimits {
  maxBytes: number;
  maxRecords: number;
  onFull: OnFull;
}

export interface StartEvent {
  chainId: string;
  previous: ChainMeta['previous'];
  reason: string;
}

export interface JournalHooks {
  /** Builds record 0 of a new chain: the canonical bytes of its `agent.chain.start` event. */
  chainStart(start: StartEvent): Buffer;
  /** Builds the sealed event that names records whose payload was dropped. */
  gap?(info: { chainId: string; fromSeq: bigint; toSeq: bigint; records: number; bytes: number }): Buffer;
  /** Observes each append's time from call to durable, in seconds. */
  appendLatency?(seconds: number): void;
  /** Called before every write batch; tests throw from it to inject ENOSPC and the like. */
  beforeWrite?(): void;
}

export interface JournalOptions {
  dir: string;
  agentId: string;
  hooks: JournalHooks;
  limits?: Partial<JournalLimits>;
  /** How long the first append of a group waits for others to join it. */
  commitWindowMs?: number;
}

type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

const META_HEAD = Buffer.from('mhead');
/** How the agent's own events read in canonical JSON (keys sorted, so this is exact). */
const AGENT_SOURCE = Buffer.from('"source":{"kind":"agent"');
const META_ACKED = Buffer.from('macked');

function chainKey(no: number): Buffer {
  const k = Buffer.allocUnsafe(5);
  k[0] = 0x63; // 'c'
  k.writeUInt32BE(no, 1);
  return k;
}

/** The 'm' head value: the newest record and the cumulative counters. */
function headMeta(h: Head, counts: Counters): Buffer {
  return Buffer.from(
    JSON.stringify({ chain: h.chain, seq: h.seq.toString(), hash: h.hash.toString('hex'), ...counts }),
  );
}

const positionKey = (source: string) => Buffer.from(`p${source}`, 'utf8');
/** `ns` never holds NUL (appends with one are refused), so a namespace is one key range. */
const stateKey = (ns: string, key: string) => Buffer.from(`s${ns}\0${key}`, 'utf8');

interface Pending {
  /** `chain`: this append is record 0 of that new chain, written with `meta` ops. */
  req: AppendRequest & { meta?: Op[]; chain?: ChainMeta };
  size: number;
  at: number;
  resolve: (range: { first: bigint; last: bigint }) => void;
  reject: (err: unknown) => void;
}

interface Counters {
  /** Cumulative bytes and records ever appended / acknowledged; the backlog is the difference. */
  bytes: number;
  records: number;
}

export class Journal extends EventEmitter<{ appended: [Head]; acked: [Position]; dropped: [number] }> {
  readonly db: ClassicLevel<Buffer, Buffer>;
  private readonly limits: JournalLimits;
  private chains = new Map<number, ChainMeta>();
  private current: ChainMeta | null = null;
  private hasher: RecordHasher | null = null;
  private headPos: Head | null = null;
  private ackedPos: Head | null = null;
  private appended: Counters = { bytes: 0, records: 0 };
  private ackedCount: Counters = { bytes: 0, records: 0 };
  private queue: Pending[] = [];
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private spaceWaiters: (() => void)[] = [];
  private closed = false;
  /** Counted for metrics. */
  fsyncs = 0;

  constructor(private readonly opts: JournalOptions) {
    super();
    this.limits = {
      maxBytes: opts.limits?.maxBytes ?? 1024 ** 3,
      maxRecords: opts.limits?.maxRecords ?? Number.MAX_SAFE_INTEGER,
      onFull: opts.limits?.onFull ?? 'block',
    };
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.db = new ClassicLevel<Buffer, Buffer>(opts.dir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
  }

  /**
   * Opens the journal. With `startChain` (the default) a journal without a chain
   * gets one; offline tools pass false and write nothing.
   */
  async open({ startChain = true } = {}): Promise<void> {
    try {
      await this.db.open();
    } catch (cause) {
      const inner = String((cause as Error & { cause?: Error }).cause?.message ?? '');
      throw new SealtrailError(
        inner.includes('lock') ? 'ST_JOURNAL_LOCKED' : 'ST_JOURNAL_OPEN',
        inner.includes('lock')
          ? `journal ${this.opts.dir} is in use by another process (is an agent already running?)`
          : `cannot open journal ${this.opts.dir}: ${(cause as Error).message}${inner ? ` (${inner})` : ''}`,
        { cause },
      );
    }
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from('c'), lt: Buffer.from('d') })) {
      const meta = JSON.parse(v.toString()) as ChainMeta;
      this.chains.set(k.readUInt32BE(1), meta);
    }
    const last = [...this.chains.keys()].sort((a, b) => a - b).pop();
    if (last !== undefined) this.setCurrent(this.chains.get(last)!);
    const head = await this.db.get(META_HEAD);
    if (head) {
      const h = JSON.parse(head.toString());
      this.headPos = { chain: h.chain, seq: BigInt(h.seq), hash: Buffer.from(h.hash, 'hex') };
      this.appended = { bytes: h.bytes, records: h.records };
    }
    const acked = await this.db.get(META_ACKED);
    if (acked) {
      const a = JSON.parse(acked.toString());
      this.ackedPos = { chain: a.chain, seq: BigInt(a.seq), hash: Buffer.from(a.hash, 'hex') };
      this.ackedCount = { bytes: a.bytes, records: a.records };
    }
    if (!this.current && startChain) await this.startChain({ previous: null, reason: 'first_start' });
  }

  private setCurrent(meta: ChainMeta): void {
    this.current = meta;
    this.hasher = new RecordHasher({ agentId: this.opts.agentId, chainId: meta.chainId });
  }

  /**
   * Starts a new chain. Its meta, the previous chain's end and its record 0 land
   * in one batch: none exists without the others.
   */
  async startChain(opts: { previous?: ChainMeta['previous']; reason: string }): Promise<string> {
    const chainId = crypto.randomUUID();
    const prevMeta = this.current;
    const head = this.headPos;
    const previous =
      opts.previous !== undefined
        ? opts.previous
        : prevMeta && head && head.chain === prevMeta.no
          ? { chain_id: prevMeta.chainId, last_seq: String(head.seq), last_hash: head.hash.toString('hex') }
          : null;
    const no = prevMeta ? prevMeta.no + 1 : 0;
    const meta: ChainMeta = {
      no,
      chainId,
      startedAt: new Date().toISOString(),
      reason: opts.reason,
      previous,
    };
    const ops: Op[] = [];
    if (prevMeta) {
      const ended: ChainMeta = {
        ...prevMeta,
        end:
          head && head.chain === prevMeta.no
            ? { seq: String(head.seq), hash: head.hash.toString('hex') }
            : null,
      };
      this.chains.set(prevMeta.no, ended);
      ops.push({ type: 'put', key: chainKey(prevMeta.no), value: Buffer.from(JSON.stringify(ended)) });
    }
    ops.push({ type: 'put', key: chainKey(no), value: Buffer.from(JSON.stringify(meta)) });
    const start = this.opts.hooks.chainStart({ chainId, previous, reason: opts.reason });
    // The new chain takes effect (in writeGroup) for every append queued after this one.
    await this.enqueue({ events: [start], meta: ops, chain: meta });
    return chainId;
  }

  get hasChain(): boolean {
    return this.current !== null;
  }

  get chainId(): string {
    if (!this.current) throw new SealtrailError('ST_JOURNAL_CLOSED', 'journal is not open');
    return this.current.chainId;
  }

  chainMeta(no: number): ChainMeta | undefined {
    return this.chains.get(no);
  }

  chainNo(chainId: string): number | undefined {
    for (const [no, m] of this.chains) if (m.chainId === chainId) return no;
    return undefined;
  }

  get head(): Head | null {
    return this.headPos;
  }

  /** The last acknowledged record: where the kept records chain from. */
  get acked(): Head | null {
    return this.ackedPos;
  }

  get backlogRecords(): number {
    return this.appended.records - this.ackedCount.records;
  }

  get backlogBytes(): number {
    return this.appended.bytes - this.ackedCount.bytes;
  }

  /** Fraction of the journal's bound in use (the larger of bytes and records). */
  get fill(): number {
    return Math.max(this.backlogBytes / this.limits.maxBytes, this.backlogRecords / this.limits.maxRecords);
  }

  stats(): JournalStats {
    return {
      chainId: this.current?.chainId ?? null,
      head: this.headPos ? `${this.chains.get(this.headPos.chain)?.chainId}:${this.headPos.seq}` : null,
      acked: this.ackedPos ? `${this.chains.get(this.ackedPos.chain)?.chainId}:${this.ackedPos.seq}` : null,
      backlogRecords: this.backlogRecords,
      backlogBytes: this.backlogBytes,
    };
  }

  /** Seals `events` into the current chain; resolves with their seq range once durable. */
  append(req: AppendRequest): Promise<{ first: bigint; last: bigint }> {
    return this.enqueue(req);
  }

  private async enqueue(req: Pending['req']): Promise<{ first: bigint; last: bigint }> {
    if (this.closed) throw new SealtrailError('ST_JOURNAL_CLOSED', 'journal is closed');
    const badNs = req.state?.find((w) => w.ns.includes('\0'));
    if (badNs) throw new SealtrailError('ST_JOURNAL_STATE_NS', `state namespace "${badNs.ns}" contains NUL`);
    const size = req.events.reduce((n, b) => n + b.length, 0);
    if (req.events.length > 0 && !req.meta) await this.makeRoom(size, req.events.length);
    return new Promise<{ first: bigint; last: bigint }>((resolve, reject) => {
      this.queue.push({ req, size, at: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  private wouldOverflow(bytes: number, records: number): boolean {
    return (
      this.backlogRecords > 0 &&
      (this.backlogBytes + bytes > this.limits.maxBytes ||
        this.backlogRecords + records > this.limits.maxRecords)
    );
  }

  /** Holds the producer back (block) or drops the oldest payloads (drop_oldest) until the append fits. */
  private async makeRoom(bytes: number, records: number): Promise<void> {
    while (this.wouldOverflow(bytes, records)) {
      if (this.closed) throw new SealtrailError('ST_JOURNAL_CLOSED', 'journal is closed');
      if (this.limits.onFull === 'drop_oldest') {
        const freed = await this.dropOldest(bytes);
        if (freed > 0) continue;
      }
      await new Promise<void>((r) => this.spaceWaiters.push(r));
    }
  }

  private wakeSpaceWaiters(): void {
    for (const w of this.spaceWaiters.splice(0)) w();
  }

  private schedule(): void {
    if (this.writing || this.timer) return;
    const window = this.opts.commitWindowMs ?? 0;
    if (window <= 0) void this.flush();
    else this.timer = setTimeout(() => void this.flush(), window);
  }

  private async flush(): Promise<void> {
    this.timer = null;
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        // A chain start must be written alone: what follows it belongs to the new chain.
        const first = this.queue[0]!;
        const n = first.req.chain ? 1 : this.queue.findIndex((p) => p.req.chain);
        const group = this.queue.splice(0, n === -1 ? this.queue.length : Math.max(n, 1));
        await this.writeGroup(group);
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeGroup(group: Pending[]): Promise<void> {
    // A chain start is written alone, as record 0 of its chain, chained from zero.
    const starting = group[0]!.req.chain;
    const chainNo = starting ? starting.no : this.current!.no;
    const hasher = starting
      ? new RecordHasher({ agentId: this.opts.agentId, chainId: starting.chainId })
      : this.hasher!;
    const after = starting ? null : this.headPos && this.headPos.chain === chainNo ? this.headPos : null;
    const sealer = new Sealer(hasher, chainNo, after);
    // A chained batch: one native call per put, where an array of op objects costs property lookups.
    const batch = this.db.batch();
    const ranges: { first: bigint; last: bigint }[] = [];
    let bytes = 0;
    let records = 0;
    for (const p of group) {
      const first = sealer.nextSeq;
      for (const ev of p.req.events) {
        const [key, value] = sealer.full(ev);
        batch.put(key, value);
        bytes += ev.length;
      }
      records += p.req.events.length;
      for (const [source, pos] of Object.entries(p.req.positions ?? {})) {
        batch.put(positionKey(source), Buffer.from(JSON.stringify(pos)));
      }
      for (const w of p.req.state ?? []) {
        if (w.value === null) batch.del(stateKey(w.ns, w.key));
        else batch.put(stateKey(w.ns, w.key), Buffer.from(JSON.stringify(w.value)));
      }
      for (const op of p.req.meta ?? []) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      ranges.push({ first, last: sealer.nextSeq - 1n });
    }
    const head = sealer.head;
    const appended = { bytes: this.appended.bytes + bytes, records: this.appended.records + records };
    if (head) batch.put(META_HEAD, headMeta(head, appended));
    try {
      this.opts.hooks.beforeWrite?.();
      await batch.write({ sync: true });
      this.fsyncs++;
    } catch (cause) {
      // Nothing of this group was written; the journal stays usable, so producers can retry.
      await batch.close().catch(() => undefined);
      const code = (cause as NodeJS.ErrnoException).code;
      const err = new SealtrailError(
        'ST_JOURNAL_WRITE',
        `journal write failed${code ? ` (${code})` : ''}: ${(cause as Error).message}`,
        { cause, retryable: true, retryAfterMs: 1000 },
      );
      for (const p of group) p.reject(err);
      return;
    }
    if (head) this.headPos = head;
    this.appended = appended;
    if (starting) {
      this.chains.set(starting.no, starting);
      this.setCurrent(starting);
    }
    const done = performance.now();
    for (const [i, p] of group.entries()) {
      this.opts.hooks.appendLatency?.((done - p.at) / 1000);
      p.resolve(ranges[i]!);
    }
    if (head) this.emit('appended', head);
  }

  /**
   * Up to `maxRecords` / `maxBytes` records after `after` (null: from the oldest
   * kept), all from one chain: a batch never spans a chain boundary.
   */
  async read(after: Position | null, maxRecords: number, maxBytes: number): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    let bytes = 0;
    const gte = after ? recordKey(after.chain, after.seq + 1n) : Buffer.from('r');
    // One native round trip for the whole batch: the default 16 KiB read-ahead would make a
    // 1000-record batch wait ~27 times for a busy event loop.
    const rows = await this.db
      .iterator({ gte, lt: Buffer.from('s'), limit: maxRecords, highWaterMarkBytes: maxBytes + 64 * 1024 })
      .all();
    for (const [key, value] of rows) {
      const chain = key.readUInt32BE(1);
      if (out.length > 0 && chain !== out[0]!.chain) break;
      const size = payloadSize(value);
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push(decodeRecordValue(chain, key.readBigUInt64BE(5), value));
      bytes += size;
    }
    return out;
  }

  /** Every kept record in order (offline verification). */
  async *records(prefix = 'r'): AsyncGenerator<JournalRecord> {
    const lt = Buffer.from([prefix.charCodeAt(0) + 1]);
    const it = this.db.iterator({ gte: Buffer.from(prefix), lt, highWaterMarkBytes: 4 * 1024 * 1024 });
    try {
      // nextv reads entries in chunks: one native call per thousand records, not per record.
      for (;;) {
        const entries = await it.nextv(1000);
        if (entries.length === 0) break;
        for (const [key, value] of entries)
          yield decodeRecordValue(key.readUInt32BE(1), key.readBigUInt64BE(5), value);
      }
    } finally {
      await it.close();
    }
  }

  async recordHashAt(chain: number, seq: bigint): Promise<Buffer | undefined> {
    const v = await this.db.get(recordKey(chain, seq));
    return v ? Buffer.from(v.subarray(1, VALUE_HEADER)) : undefined;
  }

  /** The collector has everything through `through` durably: drop what it acknowledged. */
  async ack(through: Position): Promise<void> {
    if (
      !this.headPos ||
      through.chain > this.headPos.chain ||
      (through.chain === this.headPos.chain && through.seq > this.headPos.seq)
    ) {
      throw new SealtrailError(
        'ST_JOURNAL_ACK_AHEAD',
        `ack through ${through.chain}:${through.seq} is beyond the journal head`,
      );
    }
    const a = this.ackedPos;
    if (a && (through.chain < a.chain || (through.chain === a.chain && through.seq <= a.seq))) return;
    const hash = await this.recordHashAt(through.chain, through.seq);
    if (!hash) {
      throw new SealtrailError(
        'ST_JOURNAL_ACK_MISSING',
        `record ${through.chain}:${through.seq} is not in the journal`,
      );
    }
    const ops: Op[] = [];
    let bytes = 0;
    let records = 0;
    const gte = a ? recordKey(a.chain, a.seq + 1n) : Buffer.from('r');
    for await (const [key, value] of this.db.iterator({ gte, lte: recordKey(through.chain, through.seq) })) {
      ops.push({ type: 'del', key });
      bytes += payloadSize(value);
      records++;
    }
    const counts = { bytes: this.ackedCount.bytes + bytes, records: this.ackedCount.records + records };
    const value = {
      chain: through.chain,
      seq: through.seq.toString(),
      hash: hash.toString('hex'),
      ...counts,
    };
    ops.push({ type: 'put', key: META_ACKED, value: Buffer.from(JSON.stringify(value)) });
    // Not synced: losing this on a crash only means the collector sees (and drops) duplicates.
    await this.db.batch(ops);
    this.ackedPos = { chain: through.chain, seq: through.seq, hash };
    this.ackedCount = counts;
    this.emit('acked', through);
    this.wakeSpaceWaiters();
  }

  /**
   * on_full: drop_oldest. Replaces the payloads of the oldest unshipped records
   * with their event hashes (the chain still verifies), then seals an
   * `agent.journal.gap` event naming the range. Returns the bytes freed.
   */
  private async dropOldest(needed: number): Promise<number> {
    const ops: Op[] = [];
    let freed = 0;
    let records = 0;
    let from: JournalRecord | null = null;
    let to: JournalRecord | null = null;
    const target = Math.max(needed, Math.floor(this.limits.maxBytes * 0.1));
    for await (const [key, value] of this.db.iterator({ gte: Buffer.from('r'), lt: Buffer.from('s') })) {
      // The agent's own records (chain starts, checkpoints, gap and integrity events) are the
      // evidence of what happened: they are small and never dropped.
      if (value[0] === KIND_ERASED || value.includes(AGENT_SOURCE)) continue;
      const rec = decodeRecordValue(key.readUInt32BE(1), key.readBigUInt64BE(5), value);
      if (this.headPos && rec.chain === this.headPos.chain && rec.seq === this.headPos.seq) break;
      // One gap event names one range of one chain.
      if (from && rec.chain !== from.chain) break;
      const erased = Buffer.concat([Buffer.from([KIND_ERASED]), rec.recordHash, eventHash(rec.eventBytes!)]);
      ops.push({ type: 'put', key, value: erased });
      freed += payloadSize(value) - HASH_BYTES;
      records++;
      from ??= rec;
      to = rec;
      if (freed >= target) break;
    }
    if (!from || !to || freed <= 0) return 0;
    // Count the erased payloads as acknowledged bytes: they no longer occupy the journal.
    const counts = { bytes: this.ackedCount.bytes + freed, records: this.ackedCount.records };
    this.ackedCount = counts;
    const a = this.ackedPos;
    const ackedValue = a
      ? { chain: a.chain, seq: a.seq.toString(), hash: a.hash.toString('hex'), ...counts }
      : { chain: -1, seq: '0', hash: '', ...counts };
    ops.push({ type: 'put', key: META_ACKED, value: Buffer.from(JSON.stringify(ackedValue)) });
    this.opts.hooks.beforeWrite?.();
    await this.db.batch(ops, { sync: true });
    this.emit('dropped', records);
    const gap = this.opts.hooks.gap?.({
      chainId: this.chains.get(from.chain)!.chainId,
      fromSeq: from.seq,
      toSeq: to.seq,
      records,
      bytes: freed,
    });
    if (gap) void this.enqueue({ events: [gap] }).catch(() => undefined);
    return freed;
  }

  async position<T>(source: string): Promise<T | undefined> {
    const v = await this.db.get(positionKey(source));
    return v ? (JSON.parse(v.toString()) as T) : undefined;
  }

  async getState<T>(ns: string, key: string): Promise<T | undefined> {
    const v = await this.db.get(stateKey(ns, key));
    return v ? (JSON.parse(v.toString()) as T) : undefined;
  }

  /** Every state entry of one namespace (e.g. one FIM source's baseline), by key. */
  async *stateEntries<T>(ns: string): AsyncGenerator<[string, T]> {
    const gte = stateKey(ns, '');
    const lt = Buffer.from(`s${ns}\x01`, 'utf8');
    const skip = gte.length;
    for await (const [key, value] of this.db.iterator({ gte, lt })) {
      yield [key.subarray(skip).toString('utf8'), JSON.parse(value.toString()) as T];
    }
  }

  /**
   * Moves the records from `from` to the head into quarantine ('q' keys), kept for
   * inspection and never shipped. Used on open when the unshipped tail fails verification.
   */
  async quarantineFrom(from: Position): Promise<number> {
    const ops: Op[] = [];
    for await (const [key, value] of this.db.iterator({
      gte: recordKey(from.chain, from.seq),
      lt: Buffer.from('s'),
    })) {
      ops.push({ type: 'del', key });
      const q = Buffer.from(key);
      q[0] = 0x71; // 'q'
      ops.push({ type: 'put', key: q, value });
    }
    if (ops.length === 0) return 0;
    await this.db.batch(ops, { sync: true });
    return ops.length / 2;
  }

  /**
   * After quarantine: the head moves back to the last good record so the next
   * chain names it. Counters are recomputed from what is kept.
   */
  async resetHead(to: Head | null): Promise<void> {
    let bytes = 0;
    let records = 0;
    for await (const v of this.db.values({ gte: Buffer.from('r'), lt: Buffer.from('s') })) {
      bytes += payloadSize(v);
      records++;
    }
    this.appended = { bytes: this.ackedCount.bytes + bytes, records: this.ackedCount.records + records };
    this.headPos = to ?? this.ackedPos;
    const h = this.headPos;
    const ops: Op[] = h
      ? [
          {
            type: 'put',
            key: META_HEAD,
            value: Buffer.from(
              JSON.stringify({
                chain: h.chain,
                seq: h.seq.toString(),
                hash: h.hash.toString('hex'),
                ...this.appended,
              }),
            ),
          },
        ]
      : [{ type: 'del', key: META_HEAD }];
    await this.db.batch(ops, { sync: true });
  }

  /**
   * Verifies the kept records from the acked position to the head; the first fault, or null.
   * `onProgress` is called with the number of records verified so far, and last with the
   * number that verified before the fault (or all of them).
   */
  async verifyTail(onProgress?: (records: number) => void): Promise<TailFault | null> {
    const verifier = new TailVerifier(this.opts.agentId, (no) => this.chains.get(no)?.chainId, this.ackedPos);
    let fault: TailFault | null = null;
    let reported = 0;
    await this.scan(Buffer.from('r'), Buffer.from('s'), (rows) => {
      fault = verifier.push(rows);
      if (verifier.count - reported >= 10_000) {
        reported = verifier.count;
        onProgress?.(reported);
      }
      return fault === null;
    });
    onProgress?.(verifier.count);
    if (fault) return fault;
    const lastGood = verifier.lastGood;
    const h = this.headPos;
    if (
      h &&
      (!lastGood || lastGood.chain !== h.chain || lastGood.seq !== h.seq || !lastGood.hash.equals(h.hash))
    ) {
      const at = lastGood && lastGood.chain === h.chain ? lastGood.seq + 1n : 0n;
      return {
        position: { chain: h.chain, seq: at },
        fault: 'truncated',
        detail: `records end before the recorded head ${h.seq}`,
        lastGood,
      };
    }
    return null;
  }

  /**
   * Feeds the rows in [gte, lt) to `fn` in chunks, in key order, until it returns false.
   * The next chunk is read (on LevelDB's thread) while `fn` works on this one.
   */
  private async scan(
    gte: Buffer,
    lt: Buffer,
    fn: (rows: [Buffer, Buffer][]) => boolean,
    chunk = 2000,
  ): Promise<void> {
    const it = this.db.iterator({ gte, lt, highWaterMarkBytes: 4 * 1024 * 1024 });
    let pending = it.nextv(chunk);
    try {
      for (;;) {
        const rows = await pending;
        if (rows.length === 0) break;
        pending = it.nextv(chunk);
        if (!fn(rows)) break;
      }
    } finally {
      await pending.catch(() => undefined);
      await it.close();
    }
  }

  /** Reclaims the space of acknowledged (deleted) records. */
  async compact(): Promise<void> {
    await this.db.compactRange(Buffer.from('r'), Buffer.from('s'));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer);
      void this.flush();
    }
    this.wakeSpaceWaiters();
    while (this.writing) await new Promise((r) => setTimeout(r, 1));
    await this.db.close();
  }
}

/** Moves an unreadable journal directory aside (kept for inspection) so a fresh one can start. */
export function quarantineDirectory(dir: string): string {
  const aside = `${dir}.unreadable-${new Date().toISOString().replaceAll(':', '')}`;
  renameSync(dir, aside);
  return aside;
}
