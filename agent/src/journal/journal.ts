/**
 * The agent's sealed journal: hash chains of events in one LevelDB.
 *
 * Layout (binary keys, one-byte prefix; u32/u64 big-endian so keys sort by number):
 *   'r' u32(chain_no) u64(seq)  → 0x01 record_hash(32) event_bytes     a record
 *                               → 0x02 record_hash(32) event_hash(32)  a record whose payload was
 *                                                                      dropped (on_full: drop_oldest)
 *   'r' u32(chain_no) u64(seq) 0x00 → JSON head, counters and every    a head mark, written with each
 *                                     source's read position          batch right after its last
 *                                                                      record; the newest is the last
 *                                                                      key of the 'r' range (the head)
 *   'q' u32(chain_no) u64(seq)  → the record as it was found            quarantined (kept, never shipped)
 *   'c' u32(chain_no)           → JSON ChainMeta                        every chain: id, start, end
 *   'p' <source>                → JSON                                  a source's read position, in journals
 *                                                                      written before positions rode in
 *                                                                      head marks, or while there is no
 *                                                                      head (dropped at the next mark)
 *   's' <ns> 0x00 <key>         → JSON                                  state kept by sources (FIM baseline entries
 *                                                                      `fim/<source>`, inventory snapshots
 *                                                                      `inv/<source>/<table>`)
 *   'm' acked                   → JSON                                  the last acknowledged record
 *   'm' head                    → JSON                                  the head, in journals written before
 *                                                                      head marks (dropped at the next write)
 *   'm' format                  → decimal                               JOURNAL_FORMAT of the agent that last
 *                                                                      wrote (written once, with the first batch)
 *
 * Invariants:
 *   - within a chain, records are contiguous and record(n) chains to record(n-1)
 *     (record 0 is `agent.chain.start`, chained to 32 zero bytes); a later chain's
 *     record 0 names the end of the chain before it;
 *   - the kept records run contiguously from just after `acked` to `head`;
 *   - records, the head, and the positions/state given with them are written in one
 *     `sync: true` batch, and an append resolves only after it: a source's position
 *     is never ahead of its events, nor behind them;
 *   - nothing is a fixed key rewritten by every batch, neither the head nor a source's
 *     position: with one, every LevelDB table would overlap every other and compaction
 *     would rewrite them all again and again; head marks keep the tables of a growing
 *     backlog disjoint. Each mark carries the latest position of every source (not only
 *     those its batch moved), so the newest mark alone holds them all, and acks may
 *     delete every older mark; a position-only append rewrites the head's own mark;
 *   - a record is deleted only after the collector acknowledged it (`ack`), with the
 *     head marks before it;
 *   - a record leaves through `read` only once it was verified, chained from the
 *     acked record (or from record 0 of its chain).
 *
 * Verification timing. Start-up (`verifyOnOpen`) checks the newest `verifyOnOpen`
 * records (default 20,000: the head region, where a crash or a recent edit would
 * be), chained from the stored hash of the record just before them, and that they
 * end at the recorded head: bounded work, however long the backlog. When the tail
 * is no longer than that, or the region shows damage, it checks the whole tail
 * instead, so the fault it names is the first one. The older records are checked by
 * `read`, chained from the acked record, before it hands them to the shipper (a
 * reader that resumes further on gets the records in between checked first; an
 * ack past them ends their check). Damage found there is recovered inside the
 * journal in one durable batch: the records from the fault on are removed, those
 * that were there at open are quarantined, a new chain starts naming the last good
 * record, an `integrity` event is sealed in it (and emitted), and the events this
 * process accepted since start-up are sealed again after it, so no accepted event
 * is lost (its own checkpoints and other agent events name the old chain: they are
 * quarantined with it). `verifyTail` (the `verify` command) checks the whole tail, a long
 * one on two threads (a worker checks the newer half, see rowcheck.ts).
 *
 * Appends are group-committed: callers that arrive within the commit window, or
 * while a batch is being written, are sealed together into one batch. Group
 * commits, acks and recovery never interleave (`exclusive`).
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, renameSync } from 'node:fs';
import { resolve } from 'node:path';
import { eventHash, HASH_BYTES, RecordHasher, recordHashPrefix } from '@sealtrail/chain';
import { SealtrailError } from '@sealtrail/errors';
import { ClassicLevel } from 'classic-level';
import {
  decodeRecordValue,
  type Head,
  headMarkKey,
  isHeadMark,
  type JournalRecord,
  KIND_ERASED,
  type Position,
  payloadSize,
  RECORD_KEY_BYTES,
  recordKey,
  VALUE_HEADER,
} from './layout.js';
import { checkRowsInWorker } from './rowcheck.js';
import { Sealer } from './seal.js';
import { ShippedLedger } from './shipped.js';
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
  /**
   * The events name this chain (by number), as a checkpoint names the head it signed: if
   * another chain is current when they would be sealed (damage found by `read` started one
   * meanwhile), nothing of this append is written and it rejects with ST_JOURNAL_CHAIN_MOVED.
   */
  forChain?: number;
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
  /** Builds the sealed `integrity` event for damage found while reading (see `read`). */
  integrity?(finding: IntegrityFinding): Buffer;
}

/** Damage the journal found, and what it did about it (sealed as an `integrity` event). */
export interface IntegrityFinding {
  kind: 'corruption' | 'rollback' | 'unreadable';
  detail: string;
  attributes: Record<string, unknown>;
}

export interface JournalOptions {
  dir: string;
  agentId: string;
  hooks: JournalHooks;
  limits?: Partial<JournalLimits>;
  /** How long the first append of a group waits for others to join it. */
  commitWindowMs?: number;
  /**
   * Records `verifyOnOpen` checks before the agent runs (the newest ones); older unshipped
   * records are checked as `read` reaches them. Default 20,000 (20 checkpoints at the default interval).
   */
  verifyOnOpen?: number;
  /**
   * A tail at least this long is verified on two threads (see `verifyTail`). Default 100,000:
   * below that, starting a worker costs more than it saves.
   */
  parallelVerifyMin?: number;
  /**
   * LevelDB's memtable size, in bytes. Default 4 MiB, LevelDB's own. 8 MiB halved the
   * compactions when every batch still rewrote a position key (log_tail into the journal:
   * ~2 µs less CPU per line, no more lines/s) but raised the FIM 100k restart's peak RSS past
   * 150 MB (151–152 MB); with positions in head marks there is nothing left for it to halve.
   */
  writeBufferSize?: number;
}

/** See `JournalOptions.writeBufferSize`. */
export const DEFAULT_WRITE_BUFFER_SIZE = 4 * 1024 * 1024;

/** Journal directories open in this process (LevelDB's own lock is per process). */
const openHere = new Set<string>();

type ScanRange = { gt?: Buffer; gte?: Buffer; lt?: Buffer; lte?: Buffer };

function sameHead(a: Head, b: Head): boolean {
  return a.chain === b.chain && a.seq === b.seq && a.hash.equals(b.hash);
}

function joinSeq(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };
type Batch = ReturnType<ClassicLevel<Buffer, Buffer>['batch']>;

const META_HEAD = Buffer.from('mhead');
/** How the agent's own events read in canonical JSON (keys sorted, so this is exact). */
const AGENT_SOURCE = Buffer.from('"source":{"kind":"agent"');
const META_ACKED = Buffer.from('macked');
const META_FORMAT = Buffer.from('mformat');
/**
 * The on-disk layout this agent writes (1: 'mhead' and 'p' keys; 2: head marks; 3: positions in
 * head marks). A journal with a higher number is refused rather than misread: an older agent
 * would find no head or positions in it and start over.
 */
export const JOURNAL_FORMAT = 3;

/**
 * Deletes the keys of `count` records of `chain` from seq `first` on, built in one buffer
 * (seq as two u32 halves: no BigInt per record).
 */
function deleteRecordKeys(
  batch: { del(key: Buffer): unknown },
  chain: number,
  first: bigint,
  count: number,
): void {
  const keys = Buffer.allocUnsafe(RECORD_KEY_BYTES * count);
  let hi = Number(first >> 32n);
  let lo = Number(first & 0xffff_ffffn);
  for (let i = 0, o = 0; i < count; i++, o += RECORD_KEY_BYTES) {
    keys[o] = 0x72; // 'r'
    keys.writeUInt32BE(chain, o + 1);
    keys.writeUInt32BE(hi, o + 5);
    keys.writeUInt32BE(lo, o + 9);
    batch.del(keys.subarray(o, o + RECORD_KEY_BYTES));
    if (++lo === 2 ** 32) {
      lo = 0;
      hi++;
    }
  }
}

function chainKey(no: number): Buffer {
  const k = Buffer.allocUnsafe(5);
  k[0] = 0x63; // 'c'
  k.writeUInt32BE(no, 1);
  return k;
}

/** The key of the record after a record key or head mark (same chain, seq + 1); else null. */
function successorKey(key: Buffer): Buffer | null {
  if ((key.length !== 13 && !isHeadMark(key)) || key[0] !== 0x72) return null;
  return recordKey(key.readUInt32BE(1), key.readBigUInt64BE(5) + 1n);
}

/**
 * A head mark's value: the newest record, the cumulative counters and `positions`, the JSON
 * object of every source's latest position (see `positionsJson`). A mark without `positions`
 * was written before positions moved into marks: those are then the 'p' keys.
 */
function headMeta(h: Head, counts: Counters, positions: string): Buffer {
  return Buffer.from(
    `{"chain":${h.chain},"seq":"${h.seq}","hash":"${h.hash.toString('hex')}",` +
      `"bytes":${counts.bytes},"records":${counts.records},"positions":${positions}}`,
  );
}

/** The `positions` object of a head mark, from each source's position as JSON text. */
function positionsJson(positions: Map<string, string>): string {
  let out = '';
  for (const [source, json] of positions) out += `${out ? ',' : ''}${JSON.stringify(source)}:${json}`;
  return `{${out}}`;
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

/**
 * Unshipped records that were in the journal at open and not verified then: `read` checks
 * them before it hands them out. `last` is the key of the last row checked (or the start),
 * `through` the key of the last row of the region.
 */
interface LazyCheck {
  verifier: TailVerifier;
  last: Buffer;
  through: Buffer;
}

export class Journal extends EventEmitter<{
  appended: [Head];
  acked: [Position];
  dropped: [number];
  integrity: [IntegrityFinding];
}> {
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
  /** Serializes the writers that must not interleave: group commits, acks, recovery. */
  private lock: Promise<unknown> = Promise.resolve();
  private lazy: LazyCheck | null = null;
  /** What `read` handed out after the acked record: acks delete it without reading it back. */
  private readonly shipped = new ShippedLedger();
  /** Bumped by whatever rewrites records (drop_oldest, recovery): a read begun before it keeps nothing. */
  private rewrites = 0;
  /** An 'mhead' key from before head marks is still there (deleted with the next head mark). */
  private legacyHead = false;
  /** 'mformat' holds JOURNAL_FORMAT already; otherwise the next batch writes it. */
  private formatWritten = false;
  /** Every source's latest durable position, as JSON text (what the newest head mark carries). */
  private positions = new Map<string, string>();
  /** `positionsJson(this.positions)`, kept so that a batch that moves no position does not rebuild it. */
  private positionsText = '{}';
  /** Sources whose 'p' key is still on disk (an older journal, or no head yet): deleted with the next mark. */
  private legacyPositions = new Set<string>();
  /** Key of the head at open: a record with a larger key was sealed by this process. */
  private openedHead: Buffer | null = null;
  /** Counted for metrics. */
  fsyncs = 0;
  /** Acks that deleted from what `read` handed out, without scanning (for tests). */
  acksWithoutScan = 0;

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
    const location = resolve(this.opts.dir);
    try {
      // multithreading: verifyTail's worker thread shares this LevelDB handle. LevelDB's lock
      // still keeps other processes out; a second journal in this process is kept out here.
      if (openHere.has(location)) throw new Error('open', { cause: new Error('lock held by this process') });
      await this.db.open({
        multithreading: true,
        writeBufferSize: this.opts.writeBufferSize ?? DEFAULT_WRITE_BUFFER_SIZE,
      });
      openHere.add(location);
      this.location = location;
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
    await this.checkFormat();
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from('c'), lt: Buffer.from('d') })) {
      const meta = JSON.parse(v.toString()) as ChainMeta;
      this.chains.set(k.readUInt32BE(1), meta);
    }
    const last = [...this.chains.keys()].sort((a, b) => a - b).pop();
    if (last !== undefined) this.setCurrent(this.chains.get(last)!);
    // The newest head mark is the last key of the 'r' range; journals written before head
    // marks keep their head under 'mhead' until the next write.
    const [lastRow] = await this.db
      .iterator({ gte: Buffer.from('r'), lt: Buffer.from('s'), reverse: true, limit: 1 })
      .all();
    const legacy = await this.db.get(META_HEAD);
    this.legacyHead = legacy !== undefined;
    const head = lastRow && isHeadMark(lastRow[0]) ? lastRow[1] : legacy;
    // Positions: the 'p' keys of an older journal (or of appends made while there was no head),
    // then those of the newest mark, which is newer than any 'p' key still there.
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from('p'), lt: Buffer.from('q') })) {
      const source = k.subarray(1).toString('utf8');
      this.positions.set(source, v.toString('utf8'));
      this.legacyPositions.add(source);
    }
    if (head) {
      const h = JSON.parse(head.toString());
      this.headPos = { chain: h.chain, seq: BigInt(h.seq), hash: Buffer.from(h.hash, 'hex') };
      this.appended = { bytes: h.bytes, records: h.records };
      for (const [source, p] of Object.entries(h.positions ?? {}))
        this.positions.set(source, JSON.stringify(p));
    }
    this.positionsText = positionsJson(this.positions);
    const acked = await this.db.get(META_ACKED);
    if (acked) {
      const a = JSON.parse(acked.toString());
      this.ackedPos = { chain: a.chain, seq: BigInt(a.seq), hash: Buffer.from(a.hash, 'hex') };
      this.ackedCount = { bytes: a.bytes, records: a.records };
    }
    if (!this.current && startChain) await this.startChain({ previous: null, reason: 'first_start' });
  }

  /** Refuses a journal written by a newer agent before anything reads (or rewrites) it. */
  private async checkFormat(): Promise<void> {
    const stored = await this.db.get(META_FORMAT);
    const format = stored === undefined ? null : Number(stored.toString());
    if (format !== null && !(format <= JOURNAL_FORMAT)) {
      await this.close();
      throw new SealtrailError(
        'ST_JOURNAL_FORMAT',
        `journal ${this.opts.dir} was written by a newer Sealtrail (journal format ${stored!.toString()}; this agent reads formats up to ${JOURNAL_FORMAT}): downgrading is not supported, run the newer version again`,
      );
    }
    this.formatWritten = format === JOURNAL_FORMAT;
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
        await this.exclusive(() => this.writeGroup(group));
      }
    } finally {
      this.writing = false;
    }
  }

  /**
   * Writes `head` with the counters and every position (`positions`: their JSON object) as a
   * head mark, and drops what older layouts kept elsewhere (a pre-head-mark 'mhead', 'p' keys).
   * The caller clears `legacyHead` and `legacyPositions` once the batch is written.
   */
  private putHead(batch: Batch, head: Head, counts: Counters, positions = this.positionsText): void {
    batch.put(headMarkKey(head.chain, head.seq), headMeta(head, counts, positions));
    if (this.legacyHead) batch.del(META_HEAD);
    for (const source of this.legacyPositions) batch.del(positionKey(source));
  }

  /** After a batch with a head mark was written: nothing is left under the old layouts' keys. */
  private markWritten(): void {
    this.legacyHead = false;
    this.legacyPositions.clear();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async writeGroup(all: Pending[]): Promise<void> {
    // A chain start is written alone, as record 0 of its chain, chained from zero.
    const starting = all[0]!.req.chain;
    const chainNo = starting ? starting.no : this.current!.no;
    const stale = (p: Pending) => p.req.forChain !== undefined && p.req.forChain !== chainNo;
    const group = all.some(stale) ? all.filter((p) => !stale(p)) : all;
    for (const p of all) {
      if (!stale(p)) continue;
      p.reject(
        new SealtrailError(
          'ST_JOURNAL_CHAIN_MOVED',
          `events for chain ${p.req.forChain} not written: chain ${chainNo} is current`,
          { retryable: true },
        ),
      );
    }
    if (group.length === 0) return;
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
    // The positions as they stand after this batch; applied to `this.positions` once it is durable.
    let positions: Map<string, string> | null = null;
    for (const p of group) {
      const first = sealer.nextSeq;
      for (const ev of p.req.events) {
        const [key, value] = sealer.full(ev);
        batch.put(key, value);
        bytes += ev.length;
      }
      records += p.req.events.length;
      for (const [source, pos] of Object.entries(p.req.positions ?? {})) {
        if (pos === undefined) continue; // no JSON for it: nothing to store
        positions ??= new Map(this.positions);
        positions.set(source, JSON.stringify(pos));
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
    const positionsText = positions ? positionsJson(positions) : this.positionsText;
    // The head and the positions go in a head mark right after the batch's records, not under
    // fixed keys: a key rewritten by every batch would make every LevelDB table overlap every
    // other, and compaction then rewrites them all again and again (3x the write CPU in a
    // backlog). A batch of positions alone rewrites the head's mark: the newest key, so the
    // overlap is one key with the newest table.
    const mark = head !== null && (records > 0 || positions !== null);
    if (!this.formatWritten) batch.put(META_FORMAT, Buffer.from(String(JOURNAL_FORMAT)));
    if (mark) this.putHead(batch, head, appended, positionsText);
    else if (positions) {
      // No head to mark (a journal without a chain yet): the old layout's key per source.
      for (const [source, json] of positions) batch.put(positionKey(source), Buffer.from(json));
    }
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
    this.formatWritten = true;
    if (mark) this.markWritten();
    else if (positions) for (const source of positions.keys()) this.legacyPositions.add(source);
    if (positions) {
      this.positions = positions;
      this.positionsText = positionsText;
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
    const gte = after ? recordKey(after.chain, after.seq + 1n) : Buffer.from('r');
    for (;;) {
      const rewrites = this.rewrites;
      // One native round trip for the whole batch: the default 16 KiB read-ahead would make a
      // 1000-record batch wait ~27 times for a busy event loop.
      const rows = await this.db
        .iterator({
          gte,
          lt: Buffer.from('s'),
          // Head marks are read too (one per write batch): room for some, so batches stay full.
          limit: maxRecords + Math.ceil(maxRecords / 4),
          highWaterMarkBytes: maxBytes + 64 * 1024,
        })
        .all();
      const lazy = this.lazy;
      const fault = lazy ? await this.checkLazily(lazy, gte, rows) : null;
      if (fault) {
        // Never hand out what does not verify: quarantine it, start a new chain, read again.
        await this.exclusive(async () => {
          if (this.lazy === lazy) await this.recover(fault);
        });
        continue;
      }
      const out: JournalRecord[] = [];
      const sizes: number[] = [];
      const marks: Buffer[] = [];
      let bytes = 0;
      for (const [key, value] of rows) {
        if (isHeadMark(key)) {
          if (out.length > 0 || !after) marks.push(key);
          continue;
        }
        const chain = key.readUInt32BE(1);
        if (out.length > 0 && chain !== out[0]!.chain) break;
        const size = payloadSize(value);
        if (out.length >= maxRecords || (out.length > 0 && bytes + size > maxBytes)) break;
        out.push(decodeRecordValue(chain, key.readBigUInt64BE(5), value));
        sizes.push(size);
        bytes += size;
      }
      if (out.length > 0 && rewrites === this.rewrites) {
        const last = out[out.length - 1]!;
        this.shipped.extend(last.chain, out[0]!.seq, last.seq, sizes, marks, !after);
      }
      return out;
    }
  }

  /** Rows [gte, ...) about to be read: the first fault among those not yet verified, or null. */
  private async checkLazily(
    lazy: LazyCheck,
    gte: Buffer,
    rows: [Buffer, Buffer][],
  ): Promise<TailFault | null> {
    if (rows.length === 0 || Buffer.compare(rows[rows.length - 1]![0], lazy.last) <= 0) return null;
    const next = successorKey(lazy.last);
    if (Buffer.compare(gte, lazy.last) > 0 && !(next && gte.equals(next))) {
      // The reader skipped ahead of what was checked (a resume): check the rows in between first.
      let fault: TailFault | null = null;
      await this.scan({ gt: lazy.last, lt: gte }, (between) => {
        fault = this.feedLazy(lazy, between);
        return fault === null && this.lazy === lazy;
      });
      if (fault || this.lazy !== lazy) return fault;
    }
    return this.feedLazy(lazy, rows);
  }

  /** Checks the rows of `rows` after `lazy.last` and up to `lazy.through`; ends the check there. */
  private feedLazy(lazy: LazyCheck, rows: [Buffer, Buffer][]): TailFault | null {
    let i = 0;
    while (i < rows.length && Buffer.compare(rows[i]![0], lazy.last) <= 0) i++;
    let j = i;
    while (j < rows.length && Buffer.compare(rows[j]![0], lazy.through) <= 0) j++;
    if (j > i) {
      const fault = lazy.verifier.push(rows.slice(i, j));
      if (fault) return fault;
      lazy.last = rows[j - 1]![0];
    }
    // What follows `through` was verified at open, chained from it.
    if (Buffer.compare(lazy.last, lazy.through) >= 0 && this.lazy === lazy) this.lazy = null;
    return null;
  }

  /**
   * Damage found by `read`: the records from the fault on are removed, those that were in
   * the journal at open are quarantined ('q' keys, never shipped), and a new chain starts
   * naming the last good record, with an `integrity` event, then the events this process
   * sealed after the fault (other than its own agent events) sealed again, all in one
   * durable batch. The same as open does on damage, less the events accepted since.
   */
  private async recover(fault: TailFault): Promise<void> {
    this.rewrites++;
    this.shipped.reset();
    const batch = this.db.batch();
    const again: Buffer[] = [];
    const from = recordKey(fault.position.chain, fault.position.seq);
    // Counted from what is kept, as open does: the damage may be records that are gone.
    let keptBytes = 0;
    let kept = 0;
    await this.scan({ gte: Buffer.from('r'), lt: from }, (rows) => {
      for (const [key, value] of rows) {
        if (isHeadMark(key)) continue;
        keptBytes += payloadSize(value);
        kept++;
      }
      return true;
    });
    let quarantined = 0;
    await this.scan({ gte: from, lt: Buffer.from('s') }, (rows) => {
      for (const [key, value] of rows) {
        batch.del(key);
        if (isHeadMark(key)) continue;
        const ours = this.openedHead !== null && Buffer.compare(key, this.openedHead) > 0;
        if (ours && !value.includes(AGENT_SOURCE)) again.push(value);
        else {
          const q = Buffer.from(key);
          q[0] = 0x71; // 'q'
          batch.put(q, value);
          quarantined++;
        }
      }
      return true;
    });
    const prevMeta = this.current!;
    const last = fault.lastGood ?? this.ackedPos;
    const endsHere = last && last.chain === prevMeta.no ? last : null;
    const previous = endsHere
      ? {
          chain_id: prevMeta.chainId,
          last_seq: String(endsHere.seq),
          last_hash: endsHere.hash.toString('hex'),
        }
      : null;
    const ended: ChainMeta = {
      ...prevMeta,
      end: endsHere ? { seq: String(endsHere.seq), hash: endsHere.hash.toString('hex') } : null,
    };
    const meta: ChainMeta = {
      no: prevMeta.no + 1,
      chainId: crypto.randomUUID(),
      startedAt: new Date().toISOString(),
      reason: 'corruption',
      previous,
    };
    batch.put(chainKey(ended.no), Buffer.from(JSON.stringify(ended)));
    batch.put(chainKey(meta.no), Buffer.from(JSON.stringify(meta)));
    const badChain = this.chains.get(fault.position.chain)?.chainId ?? null;
    const finding: IntegrityFinding = {
      kind: 'corruption',
      detail:
        `journal damaged at seq ${fault.position.seq} of chain ${badChain}: ${fault.fault} (${fault.detail}); ` +
        `found while reading for shipping; ${quarantined} records quarantined, a new chain started` +
        (again.length > 0
          ? `, and the ${again.length} events accepted since start-up sealed again in it`
          : ''),
      attributes: {
        chain_id: badChain,
        first_bad_seq: String(fault.position.seq),
        fault: fault.fault,
        quarantined_records: quarantined,
        resealed_records: again.length,
      },
    };
    const sealer = new Sealer(
      new RecordHasher({ agentId: this.opts.agentId, chainId: meta.chainId }),
      meta.no,
      null,
    );
    let bytes = 0;
    const put = ([key, value]: [Buffer, Buffer]) => {
      batch.put(key, value);
      bytes += payloadSize(value);
    };
    put(sealer.full(this.opts.hooks.chainStart({ chainId: meta.chainId, previous, reason: 'corruption' })));
    const event = this.opts.hooks.integrity?.(finding);
    if (event) put(sealer.full(event));
    for (const v of again) {
      put(
        v[0] === KIND_ERASED
          ? sealer.erased(v.subarray(VALUE_HEADER))
          : sealer.full(v.subarray(VALUE_HEADER)),
      );
    }
    const head = sealer.head!;
    const added = Number(sealer.nextSeq);
    const appended = {
      bytes: this.ackedCount.bytes + keptBytes + bytes,
      records: this.ackedCount.records + kept + added,
    };
    this.putHead(batch, head, appended);
    try {
      this.opts.hooks.beforeWrite?.();
      await batch.write({ sync: true });
    } catch (err) {
      await batch.close().catch(() => undefined);
      throw err;
    } finally {
      // A read that began while this was written may have seen the rows before it.
      this.rewrites++;
      this.shipped.reset();
    }
    this.fsyncs++;
    this.markWritten();
    this.chains.set(ended.no, ended);
    this.chains.set(meta.no, meta);
    this.setCurrent(meta);
    this.headPos = head;
    this.appended = appended;
    this.lazy = null;
    this.emit('integrity', finding);
    this.emit('appended', head);
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
          if (!isHeadMark(key)) yield decodeRecordValue(key.readUInt32BE(1), key.readBigUInt64BE(5), value);
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
    if (await this.exclusive(() => this.deleteThrough(through))) {
      this.emit('acked', through);
      this.wakeSpaceWaiters();
    }
  }

  /** Deletes the records through `through`; false when they were already acknowledged. */
  private async deleteThrough(through: Position): Promise<boolean> {
    const a = this.ackedPos;
    if (a && (through.chain < a.chain || (through.chain === a.chain && through.seq <= a.seq))) return false;
    const hash = await this.recordHashAt(through.chain, through.seq);
    if (!hash) {
      throw new SealtrailError(
        'ST_JOURNAL_ACK_MISSING',
        `record ${through.chain}:${through.seq} is not in the journal`,
      );
    }
    let bytes = 0;
    let records = 0;
    // From the acked record's own head mark on; through's mark stays (it may be the head's).
    const gte = a ? headMarkKey(a.chain, a.seq) : Buffer.from('r');
    const lte = recordKey(through.chain, through.seq);
    // Read in chunks of 2,000 (an ack is usually one batch: one native call) into a chained
    // batch: iterating entry by entry into an array of op objects cost ~2 µs per record (profile).
    const batch = this.db.batch();
    let counts: { bytes: number; records: number };
    const covered = this.shipped.cover(a, through);
    try {
      if (covered) {
        // What `read` handed out: keys built here, nothing read back (see shipped.ts).
        if (a) batch.del(gte);
        deleteRecordKeys(batch, through.chain, through.seq - BigInt(covered.records - 1), covered.records);
        for (const key of covered.marks) batch.del(key);
        bytes = covered.bytes;
        records = covered.records;
      } else {
        await this.scan({ gte, lte }, (rows) => {
          for (const [key, value] of rows) {
            batch.del(key);
            if (isHeadMark(key)) continue;
            bytes += payloadSize(value);
            records++;
          }
          return true;
        });
      }
      counts = { bytes: this.ackedCount.bytes + bytes, records: this.ackedCount.records + records };
      const value = {
        chain: through.chain,
        seq: through.seq.toString(),
        hash: hash.toString('hex'),
        ...counts,
      };
      batch.put(META_ACKED, Buffer.from(JSON.stringify(value)));
      // Not synced: losing this on a crash only means the collector sees (and drops) duplicates.
      await batch.write();
    } catch (err) {
      await batch.close().catch(() => undefined);
      throw err;
    }
    this.ackedPos = { chain: through.chain, seq: through.seq, hash };
    this.ackedCount = counts;
    this.shipped.trim(through);
    if (covered) this.acksWithoutScan++;
    // The collector has what the lazy check had not reached yet: it starts again from there.
    const lazy = this.lazy;
    if (lazy && Buffer.compare(lte, lazy.last) > 0) {
      this.lazy =
        Buffer.compare(lte, lazy.through) >= 0
          ? null
          : {
              verifier: new TailVerifier(
                this.opts.agentId,
                (no) => this.chains.get(no)?.chainId,
                this.ackedPos,
              ),
              last: lte,
              through: lazy.through,
            };
    }
    return true;
  }

  /**
   * on_full: drop_oldest. Replaces the payloads of the oldest unshipped records
   * with their event hashes (the chain still verifies), then seals an
   * `agent.journal.gap` event naming the range. Returns the bytes freed.
   */
  private dropOldest(needed: number): Promise<number> {
    // Exclusive: a recovery must not see its removed records put back.
    return this.exclusive(() => this.dropOldestNow(needed));
  }

  private async dropOldestNow(needed: number): Promise<number> {
    // Payloads are about to shrink: what `read` recorded of their sizes no longer holds.
    this.rewrites++;
    this.shipped.reset();
    const ops: Op[] = [];
    let freed = 0;
    let records = 0;
    let from: JournalRecord | null = null;
    let to: JournalRecord | null = null;
    const target = Math.max(needed, Math.floor(this.limits.maxBytes * 0.1));
    for await (const [key, value] of this.db.iterator({ gte: Buffer.from('r'), lt: Buffer.from('s') })) {
      // The agent's own records (chain starts, checkpoints, gap and integrity events) are the
      // evidence of what happened: they are small and never dropped.
      if (isHeadMark(key) || value[0] === KIND_ERASED || value.includes(AGENT_SOURCE)) continue;
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
    // A read that began while this was written may have seen the payloads before it.
    this.rewrites++;
    this.shipped.reset();
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

  /** The source's latest durable position (kept in memory: the newest mark holds them all). */
  async position<T>(source: string): Promise<T | undefined> {
    const json = this.positions.get(source);
    return json === undefined ? undefined : (JSON.parse(json) as T);
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
   * The keys of one namespace's state entries, in byte order, without reading or parsing the
   * values: a FIM start-up merge needs only which paths the baseline has (each check reads its
   * own entry), and parsing 100,000 entries' JSON there was promoted garbage. Keys come as
   * strings made by the binding (no Buffer object each), a few at a time: a reader that takes
   * one key per file checked holds LevelDB's read-ahead for a long while, and 16 KiB of keys
   * (the default, ~270 paths) lived through scavenges into V8's old space.
   */
  async *stateKeys(ns: string): AsyncGenerator<string> {
    const gte = `s${ns}\0`;
    const keys = this.db.keys<string>({
      gte,
      lt: `s${ns}\x01`,
      keyEncoding: 'utf8',
      highWaterMarkBytes: 2048,
    });
    const skip = gte.length;
    for await (const key of keys) yield key.slice(skip);
  }

  /**
   * Moves the records from `from` to the head into quarantine ('q' keys), kept for
   * inspection and never shipped. Used on open when the unshipped tail fails verification.
   */
  async quarantineFrom(from: Position): Promise<number> {
    const ops: Op[] = [];
    let moved = 0;
    for await (const [key, value] of this.db.iterator({
      gte: recordKey(from.chain, from.seq),
      lt: Buffer.from('s'),
    })) {
      ops.push({ type: 'del', key });
      if (isHeadMark(key)) continue; // resetHead writes the head again
      const q = Buffer.from(key);
      q[0] = 0x71; // 'q'
      ops.push({ type: 'put', key: q, value });
      moved++;
    }
    if (ops.length === 0) return 0;
    await this.db.batch(ops, { sync: true });
    return moved;
  }

  /**
   * After quarantine: the head moves back to the last good record so the next
   * chain names it. Counters are recomputed from what is kept.
   */
  async resetHead(to: Head | null): Promise<void> {
    let bytes = 0;
    let records = 0;
    for await (const [key, v] of this.db.iterator({ gte: Buffer.from('r'), lt: Buffer.from('s') })) {
      if (isHeadMark(key)) continue;
      bytes += payloadSize(v);
      records++;
    }
    this.appended = { bytes: this.ackedCount.bytes + bytes, records: this.ackedCount.records + records };
    this.headPos = to ?? this.ackedPos;
    const h = this.headPos;
    const batch = this.db.batch();
    if (h) this.putHead(batch, h, this.appended);
    else {
      if (this.legacyHead) batch.del(META_HEAD);
      // No record left to carry a mark: the positions survive under the old layout's keys.
      for (const [source, json] of this.positions) batch.put(positionKey(source), Buffer.from(json));
    }
    await batch.write({ sync: true });
    if (h) this.markWritten();
    else {
      this.legacyHead = false;
      for (const source of this.positions.keys()) this.legacyPositions.add(source);
    }
  }

  /** The resolved directory while this journal holds it open. */
  private location: string | null = null;
  /** Records the worker thread checked in the last `verifyTail` (0 when it ran in one pass). */
  workerVerified = 0;

  /**
   * Verifies the kept records from the acked position to the head; the first fault, or null.
   * `onProgress` is called with the number of records verified so far, and last with the
   * number that verified before the fault (or all of them).
   *
   * A tail of `parallelVerifyMin` records or more is checked on two threads: the main thread
   * verifies up to and including a record in the middle (the split), while a worker
   * (rowcheck.ts) checks the rows after it, chained from the split's stored hash, as far as
   * they are plainly good. Once the main thread has verified the split record itself, the
   * worker's last good record is as trusted as if the main thread had got there, and a
   * TailVerifier started from it goes on to the end (over nothing but the last head mark,
   * unless the worker stopped at a doubtful row). Every fault is decided by a TailVerifier,
   * in key order, so the result is the same as one pass from the start.
   * It must run while nothing writes (open, the offline `verify`): the two threads read
   * through separate iterators.
   */
  async verifyTail(onProgress?: (records: number) => void): Promise<TailFault | null> {
    this.workerVerified = 0;
    const chainIdOf = (no: number) => this.chains.get(no)?.chainId;
    const main = new TailVerifier(this.opts.agentId, chainIdOf, this.ackedPos);
    const end = Buffer.from('s');
    let others = () => 0;
    let reported = 0;
    const tick = () => {
      const n = main.count + others();
      if (n - reported >= 10_000) {
        reported = n;
        onProgress?.(n);
      }
    };
    const split = await this.splitPoint();
    if (!split) {
      const fault = await this.verifyRange(main, { gte: Buffer.from('r'), lt: end }, tick);
      onProgress?.(main.count);
      return fault ?? this.endsAtHead(main.lastGood);
    }
    const run = checkRowsInWorker(
      this.db.location,
      { key: split.key, hash: split.head.hash.toString('latin1'), prefix: split.prefix },
      end,
    );
    others = run.progress;
    let fault = await this.verifyRange(main, { gte: Buffer.from('r'), lte: split.key }, tick);
    const good = main.lastGood;
    const handOver = !fault && good !== null && sameHead(good, split.head);
    if (!handOver) run.stop();
    const side = await run.result;
    if (!handOver) {
      // Only when the split record is not what the main thread verified (damage there).
      if (!fault) fault = await this.verifyRange(main, { gt: split.key, lt: end }, tick);
      onProgress?.(main.count);
      return fault ?? this.endsAtHead(main.lastGood);
    }
    const checked = side?.count ?? 0;
    this.workerVerified = checked;
    const from: Head = side
      ? { chain: split.head.chain, seq: joinSeq(side.hi, side.lo), hash: Buffer.from(side.hash, 'latin1') }
      : split.head;
    const rest = new TailVerifier(this.opts.agentId, chainIdOf, from);
    others = () => checked + rest.count;
    fault = await this.verifyRange(rest, { gt: recordKey(from.chain, from.seq), lt: end }, tick);
    onProgress?.(main.count + checked + rest.count);
    return fault ?? this.endsAtHead(rest.lastGood);
  }

  /**
   * Where verifyTail splits a long tail: the first record at or after the middle of the
   * head's chain part of the tail, with its stored hash. Null when the tail is short or
   * the rows there are not a plain record (the whole tail is then verified in one pass).
   */
  private async splitPoint(): Promise<{ key: Buffer; head: Head; prefix: Buffer } | null> {
    const h = this.headPos;
    const a = this.ackedPos;
    if (!h || this.backlogRecords < (this.opts.parallelVerifyMin ?? 100_000)) return null;
    // The split must lie after the acked record (a journal where it does not is left to one pass).
    if (a && a.chain > h.chain) return null;
    const from = a && a.chain === h.chain ? a.seq + 1n : 0n;
    if (h.seq - from < 2n) return null;
    const chainId = this.chains.get(h.chain)?.chainId;
    if (!chainId) return null;
    const mid = from + (h.seq - from) / 2n;
    const [row] = await this.db
      .iterator({ gte: recordKey(h.chain, mid), lt: Buffer.from('s'), limit: 1 })
      .all();
    if (!row) return null;
    const [key, value] = row;
    if (key.length !== 13 || key.readUInt32BE(1) !== h.chain || value.length < VALUE_HEADER) return null;
    const head: Head = {
      chain: h.chain,
      seq: key.readBigUInt64BE(5),
      hash: Buffer.from(value.subarray(1, VALUE_HEADER)),
    };
    return { key, head, prefix: recordHashPrefix({ agentId: this.opts.agentId, chainId }) };
  }

  /** Feeds the rows of `range` to `verifier`; its first fault, or null. */
  private async verifyRange(
    verifier: TailVerifier,
    range: ScanRange,
    tick: () => void,
  ): Promise<TailFault | null> {
    let fault: TailFault | null = null;
    await this.scan(range, (rows) => {
      fault = verifier.push(rows);
      tick();
      return fault === null;
    });
    return fault;
  }

  /**
   * What start-up verifies: the newest `verifyOnOpen` records (the head region, where a crash
   * or a recent edit would be), chained from the stored hash of the record before them, and
   * that they end at the recorded head. The older unshipped records are left to `read`, which
   * verifies them, chained from the acked record, before it hands them out. When the tail is
   * no longer than the region, or the region shows damage, this is `verifyTail`: the whole
   * tail, so the fault named is the first one.
   */
  async verifyOnOpen(): Promise<TailFault | null> {
    this.lazy = null;
    const h = this.headPos;
    this.openedHead = h ? recordKey(h.chain, h.seq) : null;
    const limit = Math.max(1, this.opts.verifyOnOpen ?? 20_000);
    const a = this.ackedPos;
    const gte = a ? recordKey(a.chain, a.seq + 1n) : Buffer.from('r');
    // At most one head mark per record: twice the rows hold the region and the record before it.
    const rows = (
      await this.db.iterator({ gte, lt: Buffer.from('s'), reverse: true, limit: 2 * (limit + 1) }).all()
    ).filter(([key]) => !isHeadMark(key));
    if (rows.length <= limit) return this.verifyTail();
    rows.length = limit + 1;
    rows.reverse();
    const [startKey, startValue] = rows[0]!;
    if (startKey.length !== 13 || startValue.length < VALUE_HEADER) return this.verifyTail();
    const start: Head = {
      chain: startKey.readUInt32BE(1),
      seq: startKey.readBigUInt64BE(5),
      hash: Buffer.from(startValue.subarray(1, VALUE_HEADER)),
    };
    const chainIdOf = (no: number) => this.chains.get(no)?.chainId;
    const region = new TailVerifier(this.opts.agentId, chainIdOf, start);
    if (region.push(rows.slice(1)) || this.endsAtHead(region.lastGood)) return this.verifyTail();
    this.lazy = {
      verifier: new TailVerifier(this.opts.agentId, chainIdOf, a),
      last: a ? recordKey(a.chain, a.seq) : Buffer.from('r'),
      through: startKey,
    };
    return null;
  }

  /** True while older records found at open are still to be verified (by `read`). */
  get verifying(): boolean {
    return this.lazy !== null;
  }

  /** A `truncated` fault when the verified records do not end at the recorded head. */
  private endsAtHead(lastGood: Head | null): TailFault | null {
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
   * Feeds the rows of `range` to `fn` in chunks, in key order, until it returns false.
   * The next chunk is read (on LevelDB's thread) while `fn` works on this one.
   */
  private async scan(
    range: ScanRange,
    fn: (rows: [Buffer, Buffer][]) => boolean,
    chunk = 2000,
  ): Promise<void> {
    const it = this.db.iterator({ ...range, highWaterMarkBytes: 4 * 1024 * 1024 });
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
    await this.lock;
    await this.db.close();
    if (this.location) openHere.delete(this.location);
  }
}

/** Moves an unreadable journal directory aside (kept for inspection) so a fresh one can start. */
export function quarantineDirectory(dir: string): string {
  const aside = `${dir}.unreadable-${new Date().toISOString().replaceAll(':', '')}`;
  renameSync(dir, aside);
  return aside;
}
