/**
 * The agent's sealed journal: a hash chain of events in one LevelDB.
 *
 * Layout (binary keys, one-byte prefix):
 *   'r' u64be(seq)   → record_hash(32) || event_bytes        one record of the current chain
 *   'm' <name>       → JSON                                   meta: identity, chain, head, acked
 *   'p' <source>     → JSON                                   a source's read position
 *   's' <ns> 0x00 <key> → JSON                                state kept by sources (FIM baseline
 *                                                            entries `fim/<source>`, inventory
 *                                                            snapshots `inv/<source>/<table>`)
 *
 * Invariants:
 *   - records are contiguous from acked+1 to head; record(n) chains to record(n-1)
 *     (record 0 is `agent.chain.start` and chains to 32 zero bytes);
 *   - the head, the records and the positions and state entries given with them are
 *     written in one `sync: true` batch, so a position (or a baseline entry) is never
 *     ahead of its events (nor behind);
 *   - an append resolves only after that batch is durable;
 *   - a record is deleted only after the collector acknowledged it (`ack`).
 *
 * Appends are group-committed: callers that arrive while a batch is being written
 * are sealed together into the next one, so fsyncs per second stay bounded.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { HASH_BYTES, RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import { SealtrailError } from '@sealtrail/errors';
import { ClassicLevel } from 'classic-level';

export interface JournalRecord {
  seq: bigint;
  recordHash: Buffer;
  eventBytes: Buffer;
}

export interface ChainMeta {
  chainId: string;
  startedAt: string;
}

export interface Head {
  seq: bigint;
  hash: Buffer;
}

export interface JournalStats {
  chainId: string | null;
  head: bigint | null;
  acked: bigint | null;
  backlogRecords: number;
}

/** One entry of a source's keyed state; `value: null` deletes it. */
export interface StateWrite {
  ns: string;
  key: string;
  value: unknown;
}

/** What a caller appends: canonical event bytes, plus read positions and state committed with them. */
export interface AppendRequest {
  events: Buffer[];
  positions?: Record<string, unknown>;
  /** Keyed state (FIM baseline, inventory snapshot) written in the same batch as the events. */
  state?: StateWrite[];
}

interface InternalAppend extends AppendRequest {
  /** Journal metadata written in the same batch (a new chain's meta with its record 0). */
  meta?: Record<string, unknown>;
}

type Batch = Array<{ type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }>;

const R = 0x72; // 'r'
const META_CHAIN = Buffer.from('mchain');
const META_HEAD = Buffer.from('mhead');
const META_ACKED = Buffer.from('macked');
const META_PREFIX = 'm';

function recordKey(seq: bigint): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = R;
  k.writeBigUInt64BE(seq, 1);
  return k;
}

function positionKey(source: string): Buffer {
  return Buffer.from(`p${source}`, 'utf8');
}

/** `ns` never holds NUL (appends with one are refused), so a namespace is one key range. */
function stateKey(ns: string, key: string): Buffer {
  return Buffer.from(`s${ns}\0${key}`, 'utf8');
}

interface Pending {
  req: InternalAppend;
  resolve: (range: { first: bigint; last: bigint }) => void;
  reject: (err: unknown) => void;
}

export interface JournalOptions {
  dir: string;
  agentId: string;
  /** Builds record 0 of a new chain: the canonical bytes of its `agent.chain.start` event. */
  chainStartEvent: (chainId: string) => Buffer;
}

export class Journal extends EventEmitter<{ appended: [bigint] }> {
  private readonly db: ClassicLevel<Buffer, Buffer>;
  private chain: ChainMeta | null = null;
  private hasher: RecordHasher | null = null;
  private headPos: Head | null = null;
  private ackedPos: Head | null = null;
  private queue: Pending[] = [];
  private writing = false;
  private closed = false;
  /** Set when a write fails: the journal refuses appends until reopened. */
  private failure: Error | null = null;

  constructor(private readonly opts: JournalOptions) {
    super();
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.db = new ClassicLevel<Buffer, Buffer>(opts.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  }

  /** `startChain: false` opens an existing journal without writing anything (offline verification). */
  async open({ startChain = true } = {}): Promise<void> {
    try {
      await this.db.open();
    } catch (cause) {
      const locked = String((cause as Error & { cause?: Error }).cause?.message ?? '').includes('lock');
      throw new SealtrailError(
        'ST_JOURNAL_OPEN',
        locked
          ? `journal ${this.opts.dir} is in use by another process (is an agent already running?)`
          : `cannot open journal ${this.opts.dir}: ${(cause as Error).message}`,
        { cause },
      );
    }
    const chain = await this.db.get(META_CHAIN);
    const head = await this.db.get(META_HEAD);
    const acked = await this.db.get(META_ACKED);
    if (chain) this.setChain(JSON.parse(chain.toString()) as ChainMeta);
    if (head) {
      const h = JSON.parse(head.toString()) as { seq: string; hash: string };
      this.headPos = { seq: BigInt(h.seq), hash: Buffer.from(h.hash, 'hex') };
    }
    if (acked) {
      const a = JSON.parse(acked.toString()) as { seq: string; hash: string };
      this.ackedPos = { seq: BigInt(a.seq), hash: Buffer.from(a.hash, 'hex') };
    }
    if (!this.chain && startChain) await this.startChain();
  }

  private setChain(meta: ChainMeta): void {
    this.chain = meta;
    this.hasher = new RecordHasher({ agentId: this.opts.agentId, chainId: meta.chainId });
  }

  /** Starts a new chain whose record 0 is the `agent.chain.start` event. */
  private async startChain(): Promise<void> {
    const chainId = crypto.randomUUID();
    const meta: ChainMeta = { chainId, startedAt: new Date().toISOString() };
    this.setChain(meta);
    // The chain's meta and its record 0 land in one batch: neither exists without the other.
    await this.enqueue({ events: [this.opts.chainStartEvent(chainId)], meta: { chain: meta } });
  }

  get chainId(): string {
    if (!this.chain) throw new SealtrailError('ST_JOURNAL_CLOSED', 'journal is not open');
    return this.chain.chainId;
  }

  get head(): Head | null {
    return this.headPos;
  }

  get acked(): bigint | null {
    return this.ackedPos?.seq ?? null;
  }

  /** The last acknowledged record's position: where the kept records chain from. */
  get ackedHead(): Head | null {
    return this.ackedPos;
  }

  /** Records written but not yet acknowledged by the collector. */
  get backlog(): number {
    if (!this.headPos) return 0;
    const from = this.ackedPos === null ? 0n : this.ackedPos.seq + 1n;
    return Number(this.headPos.seq - from + 1n);
  }

  stats(): JournalStats {
    return {
      chainId: this.chain?.chainId ?? null,
      head: this.headPos?.seq ?? null,
      acked: this.acked,
      backlogRecords: this.backlog,
    };
  }

  /** Seals `events` into the chain; resolves with their seq range once durable. */
  append(req: AppendRequest): Promise<{ first: bigint; last: bigint }> {
    return this.enqueue(req);
  }

  private enqueue(req: InternalAppend): Promise<{ first: bigint; last: bigint }> {
    if (this.closed) return Promise.reject(new SealtrailError('ST_JOURNAL_CLOSED', 'journal is closed'));
    if (this.failure) {
      return Promise.reject(
        new SealtrailError('ST_JOURNAL_FAILED', `journal write failed earlier: ${this.failure.message}`, {
          cause: this.failure,
          retryable: true,
        }),
      );
    }
    const badNs = req.state?.find((w) => w.ns.includes('\0'));
    if (badNs) {
      return Promise.reject(
        new SealtrailError('ST_JOURNAL_STATE_NS', `state namespace "${badNs.ns}" contains NUL`),
      );
    }
    if (req.events.length === 0 && !req.positions && !req.state?.length) {
      return Promise.resolve({ first: this.nextSeq(), last: this.nextSeq() - 1n });
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.writing) void this.flush();
    });
  }

  private nextSeq(): bigint {
    return this.headPos ? this.headPos.seq + 1n : 0n;
  }

  private async flush(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0 && !this.failure) {
        const group = this.queue;
        this.queue = [];
        await this.writeGroup(group);
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeGroup(group: Pending[]): Promise<void> {
    const hasher = this.hasher!;
    let head = this.headPos;
    const ops: Batch = [];
    const ranges: { first: bigint; last: bigint }[] = [];
    for (const p of group) {
      const first = head ? head.seq + 1n : 0n;
      for (const bytes of p.req.events) {
        const seq = head ? head.seq + 1n : 0n;
        const hash = hasher.seal(seq, head ? head.hash : ZERO_HASH, bytes);
        ops.push({ type: 'put', key: recordKey(seq), value: Buffer.concat([hash, bytes]) });
        head = { seq, hash };
      }
      for (const [source, pos] of Object.entries(p.req.positions ?? {})) {
        ops.push({ type: 'put', key: positionKey(source), value: Buffer.from(JSON.stringify(pos)) });
      }
      for (const w of p.req.state ?? []) {
        const key = stateKey(w.ns, w.key);
        if (w.value === null || w.value === undefined) ops.push({ type: 'del', key });
        else ops.push({ type: 'put', key, value: Buffer.from(JSON.stringify(w.value)) });
      }
      for (const [name, value] of Object.entries(p.req.meta ?? {})) {
        ops.push({
          type: 'put',
          key: Buffer.from(META_PREFIX + name),
          value: Buffer.from(JSON.stringify(value)),
        });
      }
      ranges.push({ first, last: head ? head.seq : -1n });
    }
    if (head) {
      ops.push({
        type: 'put',
        key: META_HEAD,
        value: Buffer.from(JSON.stringify({ seq: head.seq.toString(), hash: head.hash.toString('hex') })),
      });
    }
    try {
      await this.db.batch(ops, { sync: true });
    } catch (cause) {
      this.failure = cause as Error;
      const err = new SealtrailError(
        'ST_JOURNAL_WRITE',
        `journal write failed: ${(cause as Error).message}`,
        {
          cause,
          retryable: true,
        },
      );
      for (const p of [...group, ...this.queue.splice(0)]) p.reject(err);
      return;
    }
    this.headPos = head;
    for (const [i, p] of group.entries()) p.resolve(ranges[i]!);
    if (head) this.emit('appended', head.seq);
  }

  /** Up to `maxRecords` / `maxBytes` records after `afterSeq` (null: from the oldest kept). */
  async read(afterSeq: bigint | null, maxRecords: number, maxBytes: number): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    let bytes = 0;
    const gte = recordKey(afterSeq === null ? 0n : afterSeq + 1n);
    for await (const [key, value] of this.db.iterator({ gte, lt: Buffer.from([R + 1]), limit: maxRecords })) {
      const size = value.length - HASH_BYTES;
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push({
        seq: key.readBigUInt64BE(1),
        recordHash: value.subarray(0, HASH_BYTES),
        eventBytes: value.subarray(HASH_BYTES),
      });
      bytes += size;
    }
    return out;
  }

  /** Every kept record in order (offline verification). */
  async *records(): AsyncGenerator<JournalRecord> {
    for await (const [key, value] of this.db.iterator({ gte: recordKey(0n), lt: Buffer.from([R + 1]) })) {
      yield {
        seq: key.readBigUInt64BE(1),
        recordHash: value.subarray(0, HASH_BYTES),
        eventBytes: value.subarray(HASH_BYTES),
      };
    }
  }

  async recordHashAt(seq: bigint): Promise<Buffer | undefined> {
    const v = await this.db.get(recordKey(seq));
    return v?.subarray(0, HASH_BYTES);
  }

  /** The collector has `throughSeq` durably: drop what it acknowledged. */
  async ack(throughSeq: bigint): Promise<void> {
    if (!this.headPos || throughSeq > this.headPos.seq) {
      throw new SealtrailError(
        'ST_JOURNAL_ACK_AHEAD',
        `ack through ${throughSeq} is beyond the journal head`,
      );
    }
    const from = this.ackedPos === null ? 0n : this.ackedPos.seq + 1n;
    if (throughSeq < from) return;
    const hash = await this.recordHashAt(throughSeq);
    if (!hash)
      throw new SealtrailError('ST_JOURNAL_ACK_MISSING', `record ${throughSeq} is not in the journal`);
    const ops: Batch = [];
    for (let s = from; s <= throughSeq; s++) ops.push({ type: 'del', key: recordKey(s) });
    const value = JSON.stringify({ seq: throughSeq.toString(), hash: hash.toString('hex') });
    ops.push({ type: 'put', key: META_ACKED, value: Buffer.from(value) });
    // Not synced: losing this on a crash only means the collector sees (and drops) duplicates.
    await this.db.batch(ops);
    this.ackedPos = { seq: throughSeq, hash: Buffer.from(hash) };
  }

  async position<T>(source: string): Promise<T | undefined> {
    const v = await this.db.get(positionKey(source));
    return v ? (JSON.parse(v.toString()) as T) : undefined;
  }

  /** One entry of a source's keyed state, or undefined. */
  async getState<T>(ns: string, key: string): Promise<T | undefined> {
    const v = await this.db.get(stateKey(ns, key));
    return v ? (JSON.parse(v.toString()) as T) : undefined;
  }

  /** Every entry of a namespace, in key order (streamed: a 100,000-entry baseline is never one value). */
  async *stateEntries<T>(ns: string): AsyncGenerator<[string, T]> {
    const gte = stateKey(ns, '');
    const lt = Buffer.from(`s${ns}\x01`, 'utf8');
    const skip = gte.length;
    for await (const [key, value] of this.db.iterator({ gte, lt })) {
      yield [key.subarray(skip).toString('utf8'), JSON.parse(value.toString()) as T];
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing) await new Promise((r) => setTimeout(r, 1));
    await this.db.close();
  }
}
