/**
 * The collector's durable store: one LevelDB holding every verified record in
 * arrival order, each agent's chain state, event-id dedupe state, exporter
 * cursors and integrity evidence.
 *
 * Layout (binary keys, one-byte prefix):
 *   's' u64be(offset)                     → a block of the records from offset on (see encodeBlock),
 *                                           or, written before format 3, one record (encodeRecord)
 *                                           arrival order, feeds exporters
 *   '~a' agent(16)                        → JSON AgentState                 verified head per agent
 *   '~h' agent(16) chain(16) u64be(seq)   → u64be(offset) u64be(count)     (agent, chain, seq) → hash, by range:
 *                                                                         records seq … seq+count-1 sit at offsets
 *                                                                         offset … offset+count-1 (a batch is
 *                                                                         contiguous); spools written before this
 *                                                                         layout hold record_hash(32) per seq
 *   '~i' event_id(16)                     → u64be(offset) u64be(recv ms)    event-id dedupe
 *   'x' <exporter name>                   → JSON cursor
 *   'd' <exporter name> 0x00 u64be(n)     → JSON DeadLetter                 refused by the destination, with the reason
 *   'r' <exporter name> 0x00 u64be(n)     → JSON DeadLetter                 dead letters queued for replay
 *   'v' u64be(n)                          → JSON integrity violation (evidence)
 *   't' <token id>                        → JSON {agent_id, used}          used enrollment tokens
 *   'm' <name>                            → meta: 'mformat' u32be(format), 'mnext_violation'
 *   'mnext_offset'                        → 'st2': a tripwire (see "Format")
 * The next offset is the last 's' entry's first offset plus its record count (a reverse seek
 * on open).
 *
 * Blocks (format 3): a group commit stores its records as blocks of up to BLOCK_RECORDS
 * records (or BLOCK_BYTES), one LevelDB entry each, keyed by the first one's offset; the other
 * offsets are implied. A put per record cost about a microsecond of the event loop and a
 * memtable insert in LevelDB's; exporters, `verify` and the hash ranges still address single
 * offsets, and reads find the block holding one with a reverse seek. Records stored one per
 * key (formats 1 and 2) are read as they are, so an upgrade rewrites none.
 *
 * Format: 'mformat' names the layout (SPOOL_FORMAT) and is written in the batch that creates
 * or migrates a spool. A spool without it is format 1 (keys 'a', 'h', 'i' below the records,
 * an 8-byte 'mnext_offset') or, when none of those keys is there, format 2 from before the key
 * existed. A collector refuses a format newer than its own: an older one would find no agent
 * heads where it looks, or take a block's first offset for the newest record, and write over
 * stored records. Collectors of format 1 predate 'mformat' and read 'mnext_offset' as a u64
 * on open; later formats leave a 3-byte value there, so that read throws and they refuse to
 * start instead (a collector of format 2 from before the key would not notice).
 * Going from format 2 to 3 only rewrites the key. Read-only opens (`verify`, `deadletter
 * list`) never migrate: they read format 2 as it is, and refuse format 1 with a message to
 * start the collector once.
 *
 * Why '~': a commit writes its records (at the top of the 's' range) and, beside them, the
 * agents' heads, a hash range per batch and an event-id key per record. Every LevelDB table a
 * memtable flush writes spans from its smallest key to its largest, and compaction merges it
 * with every older table inside that span. With those keys below 's' (as 'a', 'h', 'i' and
 * 'm' were until this layout) every flush spanned all stored records, and LevelDB rewrote
 * them again and again; sorted after every record, a flush spans only the newest records and
 * the small per-commit keys (event ids, about 40 bytes a record), so older records are no
 * longer merged with each flush. The event ids are a second ascending stream, looked up by id,
 * so tables cannot be fully disjoint in one LevelDB (each record is still rewritten about once
 * per level on its way down); that is also why per-commit state is not kept as marks among the
 * records, which would gain nothing more. A spool in the older layout is moved to this one on
 * open (`migrateLayout`, see "Format").
 *
 * Invariants: a commit writes the records, their hash range, the agent's new head and
 * the dedupe keys in one `sync: true` batch, and the receiver acks only after it
 * resolved; so an acked record is on disk and an agent head never points past
 * stored records. Commits from all streams are grouped: one fsync serves many,
 * and the next group's event-id lookups run while the previous group is fsynced.
 * A range written at seq s supersedes every range of that chain at s or above
 * (an operator rewound the head after a fork): those are deleted in the same batch.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { HASH_BYTES, uuidBytes } from '@sealtrail/chain';
import { SealtrailError } from '@sealtrail/errors';
import { type ChainedBatch, ClassicLevel } from 'classic-level';

export interface ChainLink {
  chain_id: string;
  first_seen: string;
  /** The previous chain's head the agent named in record 0, as it named it. */
  previous: unknown;
}

export interface AgentState {
  agent_id: string;
  /** Raw Ed25519 public key, base64. */
  public_key: string;
  hostname: string;
  first_seen: string;
  last_seen: string;
  /** Current chain and its highest contiguous verified record. */
  chain_id: string | null;
  seq: string | null;
  hash: string | null;
  chains: ChainLink[];
  records: number;
  duplicates: number;
  /** Set when the agent enrolled with a token (absent: trusted on first use over plaintext). */
  enrolled_at?: string;
  /** A revoked agent's streams are refused. */
  revoked?: { at: string; reason: string } | null;
  /** After a fork its streams are refused until an operator accepts the agent's chain. */
  blocked?: { fault: string; chain_id: string; seq: string; since: string } | null;
}

/** The state of an agent seen for the first time: no chain yet, nothing stored. */
export function newAgentState(agentId: string, publicKey: string, hostname: string, now: string): AgentState {
  return {
    agent_id: agentId,
    public_key: publicKey,
    hostname,
    first_seen: now,
    last_seen: now,
    chain_id: null,
    seq: null,
    hash: null,
    chains: [],
    records: 0,
    duplicates: 0,
  };
}

export interface IncomingRecord {
  chainId: string;
  seq: bigint;
  recordHash: Uint8Array;
  /** Canonical event bytes; for an erased record (payload dropped by the agent), its 32-byte event hash. */
  eventBytes: Uint8Array;
  erased?: boolean;
  /** Empty for an erased record. */
  eventId: string;
}

export interface StoredRecord {
  offset: bigint;
  agentId: string;
  chainId: string;
  seq: bigint;
  recordHash: Buffer;
  receivedMs: number;
  /** An event id the collector had already stored: kept in the chain, not exported again. */
  duplicateId: boolean;
  /** The agent dropped this payload (journal full): `eventBytes` holds the event hash; not exported. */
  erased: boolean;
  eventBytes: Buffer;
}

/** Whether exporters deliver a record: not a re-posted event id, not an erased payload. */
export function isExportable(r: StoredRecord): boolean {
  return !r.duplicateId && !r.erased;
}

/** A record an exporter's destination refused for good (a permanent error), kept with the reason. */
export interface DeadLetter {
  exporter: string;
  /** Spool offset of the record (decimal string); the record itself stays in the spool. */
  offset: string;
  event_id?: string;
  reason: string;
  code?: string;
  time: string;
}

export interface StoredDeadLetter extends DeadLetter {
  /** Its number in the exporter's dead-letter list. */
  n: string;
}

type Op = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };
type Batch = ChainedBatch<ClassicLevel<Buffer, Buffer>, Buffer, Buffer>;

const HEADER = 1 + 1 + 16 + 16 + 8 + HASH_BYTES + 8;
const FLAG_DUPLICATE_ID = 1;
const FLAG_ERASED = 2;
const META_NEXT_VIOLATION = Buffer.from('mnext_violation');
const MAX_U64 = Buffer.alloc(8, 0xff);
/** Where a hash range key's seq starts: after '~h', agent(16) and chain(16). */
const RANGE_SEQ_AT = 34;
/** The older layout's prefixes and where they moved (see the header). */
const LEGACY_PREFIXES: [string, string][] = [
  ['a', '~a'],
  ['h', '~h'],
  ['i', '~i'],
];
/** The older layout's next offset, rewritten by every commit: now the newest record's plus one. */
const LEGACY_NEXT_OFFSET = Buffer.from('mnext_offset');
/** What format 2 leaves in 'mnext_offset': too short for a format-1 collector's u64 read. */
const TRIPWIRE = Buffer.from('st2');
/** The layout this collector writes (see "Format" in the header); it reads format 2 as well. */
export const SPOOL_FORMAT = 3;
/** A block holds up to this many records, or up to the first record past BLOCK_BYTES. */
const BLOCK_RECORDS = 1024;
const BLOCK_BYTES = 1024 * 1024;
const BLOCK_VERSION = 2;
const META_FORMAT = Buffer.from('mformat');

function key(prefix: string, ...parts: Uint8Array[]): Buffer {
  return Buffer.concat([Buffer.from(prefix), ...parts]);
}

function u64(n: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(n);
  return b;
}

function uuidString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** 's' u64be(offset), without the intermediate buffers of `key` (one per record). */
function recordKey(offset: bigint): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = 0x73;
  k.writeBigUInt64BE(offset, 1);
  return k;
}

/** u64be of a safe integer, without a BigInt (offsets while a group is built: one per record). */
function writeU64(b: Buffer, n: number, at: number): void {
  b.writeUInt32BE(Math.floor(n / 2 ** 32), at);
  b.writeUInt32BE(n >>> 0, at + 4);
}

function recordKeyAt(offset: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = 0x73;
  writeU64(k, offset, 1);
  return k;
}

/** Hex digit values by char code (-1: not a hex digit). */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}
/** Where each byte's two hex digits start in a UUID string. */
const UUID_PAIRS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * '~i' event_id(16), parsed straight into the key with a digit table (one per record: five
 * slices and hex writes cost a microsecond). A UUID's hex digits in either case name the same
 * id (RFC 9562); anything else goes to `uuidBytes`, which throws.
 */
export function eventIdKey(id: string): Buffer {
  if (
    id.length === 36 &&
    id.charCodeAt(8) === 0x2d &&
    id.charCodeAt(13) === 0x2d &&
    id.charCodeAt(18) === 0x2d &&
    id.charCodeAt(23) === 0x2d
  ) {
    const k = Buffer.allocUnsafe(18);
    k[0] = 0x7e;
    k[1] = 0x69;
    let bad = 0;
    for (let i = 0; i < 16; i++) {
      const p = UUID_PAIRS[i]!;
      const a = id.charCodeAt(p);
      const b = id.charCodeAt(p + 1);
      const hi = a < 128 ? HEX[a]! : -1;
      const lo = b < 128 ? HEX[b]! : -1;
      bad |= hi | lo; // negative once any digit is not hex
      k[i + 2] = (hi << 4) | lo;
    }
    if (bad >= 0) return k;
  }
  return key('~i', uuidBytes(id));
}

function agentKey(agentId: string): Buffer {
  return key('~a', uuidBytes(agentId));
}

function dlKey(prefix: string, exporter: string, n: bigint): Buffer {
  return key(prefix, Buffer.from(exporter), Buffer.from([0]), u64(n));
}

function dlRange(prefix: string, exporter: string): { gte: Buffer; lt: Buffer } {
  return {
    gte: key(prefix, Buffer.from(exporter), Buffer.from([0])),
    lt: key(prefix, Buffer.from(exporter), Buffer.from([1])),
  };
}

/**
 * `agent` and `chain` are the ids' 16 raw bytes (parsed once per batch, not per record),
 * `received` the receive time's u64be(unix ms) (once per group).
 */
export function encodeRecord(
  agent: Uint8Array,
  chain: Uint8Array,
  r: IncomingRecord,
  received: Uint8Array,
  duplicateId: boolean,
): Buffer {
  const out = Buffer.allocUnsafe(HEADER + r.eventBytes.length);
  encodeRecordAt(out, 0, agent, chain, r, received, duplicateId);
  return out;
}

function encodeRecordAt(
  out: Buffer,
  at: number,
  agent: Uint8Array,
  chain: Uint8Array,
  r: IncomingRecord,
  received: Uint8Array,
  duplicateId: boolean,
): void {
  out[at] = 1; // format version
  out[at + 1] = (duplicateId ? FLAG_DUPLICATE_ID : 0) | (r.erased ? FLAG_ERASED : 0);
  out.set(agent, at + 2);
  out.set(chain, at + 18);
  out.writeBigUInt64BE(r.seq, at + 34);
  out.set(r.recordHash, at + 42);
  out.set(received, at + 74);
  out.set(r.eventBytes, at + HEADER);
}

/** One record of a block, as the group builds it. */
interface BlockItem {
  agent: Uint8Array;
  chain: Uint8Array;
  r: IncomingRecord;
  duplicateId: boolean;
}

/**
 * A block: u8(2) u32be(count), then per record u32be(length) and the record as encodeRecord
 * writes it. One allocation for all of them, or none: written at the start of `scratch` when
 * it is large enough (the result is then a view of it, valid until `scratch` is written again).
 */
export function encodeBlock(items: BlockItem[], received: Uint8Array, scratch?: Buffer): Buffer {
  let size = 5;
  for (const it of items) size += 4 + HEADER + it.r.eventBytes.length;
  const out = scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
  out[0] = BLOCK_VERSION;
  out.writeUInt32BE(items.length, 1);
  let at = 5;
  for (const it of items) {
    const len = HEADER + it.r.eventBytes.length;
    out.writeUInt32BE(len, at);
    encodeRecordAt(out, at + 4, it.agent, it.chain, it.r, received, it.duplicateId);
    at += 4 + len;
  }
  return out;
}

/** How many records an 's' value holds: a block's count, or 1 for a record of format 1 or 2. */
function entryCount(v: Buffer): number {
  return v[0] === BLOCK_VERSION ? v.readUInt32BE(1) : 1;
}

/** The last few blocks read (first offset, value), the oldest dropped first. */
class RecentBlocks {
  private readonly blocks: [bigint, Buffer][] = [];

  constructor(private readonly max: number) {}

  holding(offset: bigint): [bigint, Buffer] | undefined {
    return this.blocks.find(([first, v]) => offset >= first && offset < first + BigInt(entryCount(v)));
  }

  add(first: bigint, v: Buffer): void {
    if (this.blocks.some(([f]) => f === first)) return;
    this.blocks.push([first, v]);
    if (this.blocks.length > this.max) this.blocks.shift();
  }
}

/**
 * The records of the 's' value at `first` whose offsets are ≥ `from`, at most `max`, into
 * `out`; returns how many it added. Records are subarrays of `v` (no copy).
 */
export function decodeEntry(
  first: bigint,
  v: Buffer,
  from: bigint,
  max: number,
  out: StoredRecord[],
): number {
  if (v[0] !== BLOCK_VERSION) {
    if (first < from || max < 1) return 0;
    out.push(decodeRecord(first, v));
    return 1;
  }
  const count = v.readUInt32BE(1);
  let at = 5;
  let added = 0;
  for (let i = 0; i < count && added < max; i++) {
    const len = v.readUInt32BE(at);
    const offset = first + BigInt(i);
    if (offset >= from) {
      out.push(decodeRecord(offset, v.subarray(at + 4, at + 4 + len)));
      added++;
    }
    at += 4 + len;
  }
  if (at > v.length || (added < max && at !== v.length))
    throw new SealtrailError('ST_SPOOL_FORMAT', `spool block at ${first} is malformed`);
  return added;
}

export function decodeRecord(offset: bigint, v: Buffer): StoredRecord {
  if (v[0] !== 1)
    throw new SealtrailError('ST_SPOOL_FORMAT', `spool record ${offset} has unknown format ${v[0]}`);
  return {
    offset,
    duplicateId: (v[1]! & FLAG_DUPLICATE_ID) !== 0,
    erased: (v[1]! & FLAG_ERASED) !== 0,
    agentId: uuidString(v.subarray(2, 18)),
    chainId: uuidString(v.subarray(18, 34)),
    seq: v.readBigUInt64BE(34),
    recordHash: v.subarray(42, 74),
    receivedMs: Number(v.readBigUInt64BE(74)),
    eventBytes: v.subarray(HEADER),
  };
}

/**
 * The event-id keys a group stores, for the in-memory duplicate checks. Kept as the key
 * buffers until a check asks (an id not above every stored one, rare with UUIDv7 ids); only
 * then are they turned into latin1 strings for a Set (0.5 µs a record when done for all).
 */
class KeySet {
  private keys: Buffer[] = [];
  private set: Set<string> | null = null;

  add(k: Buffer): void {
    if (this.set) this.set.add(k.toString('latin1'));
    else this.keys.push(k);
  }

  has(k: Buffer): boolean {
    if (!this.set) {
      this.set = new Set(this.keys.map((x) => x.toString('latin1')));
      this.keys = [];
    }
    return this.set.has(k.toString('latin1'));
  }
}

interface CommitRequest {
  agent: AgentState;
  records: IncomingRecord[];
  resolve: (r: { duplicateIds: number }) => void;
  reject: (e: unknown) => void;
}

export class Spool extends EventEmitter<{ committed: [bigint] }> {
  private readonly db: ClassicLevel<Buffer, Buffer>;
  /** Where blocks are encoded before their put copies them (a block is at most BLOCK_BYTES and one record). */
  private readonly blockScratch = Buffer.allocUnsafe(2 * BLOCK_BYTES);
  private nextOffset = 0n;
  /**
   * No stored event-id key sorts after this one (it is the greatest the spool held at open,
   * or that a group wrote since; a pruned or failed one only leaves it higher than needed).
   * UUIDv7 ids grow with time, so most new ids sort after it and need no lookup at all.
   */
  private topIdKey: Buffer = Buffer.alloc(0);
  private queue: CommitRequest[] = [];
  private writing = false;
  /** Set while `flush` waits for a write in flight: a new commit starts its id lookup at once. */
  private wake: (() => void) | null = null;
  private closed = false;
  fsyncs = 0;

  private violationChain: Promise<unknown> = Promise.resolve();

  /** `dedupeWindowMs`: how long an event id is remembered (design brief default: 7 days). */
  constructor(
    readonly dir: string,
    private readonly dedupeWindowMs = 7 * 86_400_000,
  ) {
    super();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = new ClassicLevel<Buffer, Buffer>(dir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      // A larger memtable means fewer level-0 flushes under sustained appends (LevelDB's 4 MiB default).
      writeBufferSize: 32 * 1024 * 1024,
      // 16 KiB blocks (LevelDB's default: 4 KiB) compress the JSON records better: in
      // bench/spool.mjs (600,000 records) compactions wrote 83 instead of 108 MiB, for 6.3–6.6
      // instead of 6.6–7.3 µs of CPU a record. Exporters read ranges, which larger blocks suit;
      // a point read (a re-sent event id, a hash range) decompresses 16 KiB instead of 4.
      // 64 KiB saved little more (77 MiB) for four times that.
      blockSize: 16 * 1024,
    });
  }

  /**
   * `readOnly`: write nothing to the spool (no migration, no format key); for the commands
   * that inspect a stopped collector's spool. The caller then only reads.
   */
  async open(opts: { readOnly?: boolean } = {}): Promise<void> {
    try {
      await this.db.open();
    } catch (cause) {
      const inner = String((cause as Error & { cause?: Error }).cause?.message ?? '');
      throw new SealtrailError(
        'ST_SPOOL_OPEN',
        inner.includes('lock')
          ? `spool ${this.dir} is in use by another process (is a collector already running?)`
          : `cannot open spool ${this.dir}: ${(cause as Error).message}`,
        { cause },
      );
    }
    try {
      this.readOnly = opts.readOnly === true;
      await this.checkFormat(this.readOnly);
    } catch (err) {
      await this.db.close();
      throw err;
    }
    const [last] = await this.db
      .iterator({ gte: Buffer.from('s'), lt: Buffer.from('t'), reverse: true, limit: 1 })
      .all();
    this.nextOffset = last ? last[0].readBigUInt64BE(1) + BigInt(entryCount(last[1])) : 0n;
    const [top] = await this.db
      .keys({ gte: Buffer.from('~i'), lt: Buffer.from('~j'), reverse: true, limit: 1 })
      .all();
    this.topIdKey = top ?? Buffer.alloc(0);
  }

  /** Keys `open` moved from the older layout (0 when the spool was in this one already). */
  migrated = 0;

  /** Opened with `readOnly`: the write methods refuse (a read-only command must not change a spool). */
  private readOnly = false;

  private readOnlyError(): SealtrailError {
    return new SealtrailError('ST_SPOOL_READ_ONLY', `spool ${this.dir} was opened read-only`);
  }

  private assertWritable(): void {
    if (this.readOnly) throw this.readOnlyError();
  }

  /** Refuses a newer format; brings an older one to this one unless `readOnly` (see the header). */
  private async checkFormat(readOnly: boolean): Promise<void> {
    const v = await this.db.get(META_FORMAT);
    if (v !== undefined) {
      const found = v.length === 4 ? v.readUInt32BE(0) : -1;
      if (found === SPOOL_FORMAT) return;
      if (found === 2) {
        // Format 3 only adds blocks, which format 2 did not write: the key is all that changes.
        if (!readOnly) await this.db.batch(this.formatOps(), { sync: true });
        return;
      }
      throw new SealtrailError(
        'ST_SPOOL_FORMAT',
        found > SPOOL_FORMAT
          ? `spool ${this.dir} is in format ${found}, this collector supports format ${SPOOL_FORMAT}: ` +
              'it was written by a newer Sealtrail; downgrade is not supported (run the newer version)'
          : `spool ${this.dir} has an unknown format key (${v.toString('hex')}); this collector supports format ${SPOOL_FORMAT}`,
      );
    }
    if (!(await this.hasLegacyKeys())) {
      // New, or format 2 from before the key: the same layout, so only the key is missing.
      if (!readOnly) await this.db.batch(this.formatOps(), { sync: true });
      return;
    }
    if (readOnly)
      throw new SealtrailError(
        'ST_SPOOL_FORMAT',
        `spool ${this.dir} is in format 1, this collector reads formats 2 and ${SPOOL_FORMAT}; ` +
          'start the collector once (`sealtrail-collector run`) to upgrade it in place, then run this again ' +
          '(this command does not change a spool)',
      );
    this.migrated = await this.migrateLayout();
  }

  /** The format key and the tripwire, in the batch that creates or finishes migrating a spool. */
  private formatOps(): Op[] {
    const f = Buffer.alloc(4);
    f.writeUInt32BE(SPOOL_FORMAT);
    return [
      { type: 'put', key: META_FORMAT, value: f },
      { type: 'put', key: LEGACY_NEXT_OFFSET, value: TRIPWIRE },
    ];
  }

  /** Whether any key of format 1 is left (a spool not yet moved, or one a crash left half moved). */
  private async hasLegacyKeys(): Promise<boolean> {
    for (const [from] of LEGACY_PREFIXES) {
      const lt = Buffer.from(String.fromCharCode(from.charCodeAt(0) + 1));
      const [k] = await this.db.keys({ gte: Buffer.from(from), lt, limit: 1 }).all();
      if (k) return true;
    }
    const next = await this.db.get(LEGACY_NEXT_OFFSET);
    return next !== undefined && next.length === 8;
  }

  /**
   * Moves a spool written in the older layout ('a', 'h', 'i', 'mnext_offset') to this one, in
   * synced batches that each put the new keys and delete the old ones: a crash in between
   * leaves every key in exactly one place, and the next open moves the rest. Records ('s')
   * stay where they are. Nothing else reads or writes the spool until it is done. The last
   * batch replaces 'mnext_offset' with the tripwire and writes the format key.
   */
  private async migrateLayout(): Promise<number> {
    let moved = 0;
    for (const [from, to] of LEGACY_PREFIXES) {
      const prefix = Buffer.from(to);
      let range: { gte?: Buffer; gt?: Buffer; lt: Buffer } = {
        gte: Buffer.from(from),
        lt: Buffer.from(String.fromCharCode(from.charCodeAt(0) + 1)),
      };
      for (;;) {
        const rows = await this.db.iterator({ ...range, limit: 10_000 }).all();
        if (rows.length === 0) break;
        const batch = this.db.batch();
        for (const [k, v] of rows) {
          batch.put(Buffer.concat([prefix, k.subarray(1)]), v);
          batch.del(k);
        }
        await batch.write({ sync: true });
        moved += rows.length;
        // Seek on from the last key moved, not over the deleted ones again.
        range = { gt: rows[rows.length - 1]![0], lt: range.lt };
      }
    }
    if ((await this.db.get(LEGACY_NEXT_OFFSET))?.length === 8) moved++;
    await this.db.batch(this.formatOps(), { sync: true });
    return moved;
  }

  get isOpen(): boolean {
    return this.db.status === 'open' && !this.closed;
  }

  /** Offset of the newest record, or -1 when empty. */
  get headOffset(): bigint {
    return this.nextOffset - 1n;
  }

  async getAgent(agentId: string): Promise<AgentState | undefined> {
    const v = await this.db.get(agentKey(agentId));
    return v ? (JSON.parse(v.toString()) as AgentState) : undefined;
  }

  async *agents(): AsyncGenerator<AgentState> {
    for await (const v of this.db.values({ gte: Buffer.from('~a'), lt: Buffer.from('~b') })) {
      yield JSON.parse(v.toString()) as AgentState;
    }
  }

  async putAgent(state: AgentState): Promise<void> {
    this.assertWritable();
    await this.db.put(agentKey(state.agent_id), Buffer.from(JSON.stringify(state)), {
      sync: true,
    });
  }

  async recordHashAt(agentId: string, chainId: string, seq: bigint): Promise<Buffer | undefined> {
    const prefix = key('~h', uuidBytes(agentId), uuidBytes(chainId));
    const [hit] = await this.db
      .iterator({ gte: prefix, lte: Buffer.concat([prefix, u64(seq)]), reverse: true, limit: 1 })
      .all();
    if (!hit) return undefined;
    const [k, v] = hit;
    const first = k.readBigUInt64BE(RANGE_SEQ_AT);
    // A spool from before the range layout: one key per seq, holding the hash itself.
    if (v.length === HASH_BYTES) return first === seq ? v : undefined;
    if (seq >= first + v.readBigUInt64BE(8)) return undefined;
    const [rec] = await this.readOffsets([v.readBigUInt64BE(0) + (seq - first)]);
    return rec ? Buffer.from(rec.recordHash) : undefined;
  }

  /** Highest range start stored per chain (key: agent(16) chain(16) as latin1), read once per chain. */
  private readonly rangeTop = new Map<string, bigint>();

  /** Keys of the ranges a range starting at `first` supersedes: none unless the head was rewound. */
  private async supersededRanges(agent: Buffer, chain: Buffer, first: bigint): Promise<Buffer[]> {
    const prefix = key('~h', agent, chain);
    const all = { gte: prefix, lte: Buffer.concat([prefix, MAX_U64]) };
    const id = prefix.toString('latin1');
    let top = this.rangeTop.get(id);
    if (top === undefined) {
      const [last] = await this.db.keys({ ...all, reverse: true, limit: 1 }).all();
      top = last ? last.readBigUInt64BE(RANGE_SEQ_AT) : -1n;
    }
    this.rangeTop.set(id, first);
    if (top < first) return [];
    return this.db.keys({ ...all, gte: Buffer.concat([prefix, u64(first)]) }).all();
  }

  /** Stores verified records and the agent's new head durably; resolves once synced. */
  commit(agent: AgentState, records: IncomingRecord[]): Promise<{ duplicateIds: number }> {
    if (this.readOnly) return Promise.reject(this.readOnlyError());
    if (this.closed)
      return Promise.reject(new SealtrailError('ST_SPOOL_CLOSED', 'spool is closed', { retryable: true }));
    return new Promise((resolve, reject) => {
      this.queue.push({ agent, records, resolve, reject });
      if (!this.writing) void this.flush();
      else this.wake?.();
    });
  }

  /**
   * Group commits, two deep: while one group's batch is being fsynced, the next group's
   * event ids are looked up. That lookup may miss ids of the group still being written,
   * so those are checked in memory too; and a group never writes before the previous one
   * is durable (offsets stay in order), nor after it failed.
   */
  private async flush(): Promise<void> {
    this.writing = true;
    let writing: Promise<boolean> | null = null;
    let writingIds = new KeySet();
    try {
      for (;;) {
        if (this.queue.length === 0) {
          if (!writing) break;
          // Wait for the write in flight or for the next commit, whichever comes first.
          const arrived = new Promise<false>((r) => {
            this.wake = () => r(false);
          });
          const done = await Promise.race([writing.then(() => true), arrived]);
          this.wake = null;
          if (done) writing = null;
          continue;
        }
        const group = this.queue;
        this.queue = [];
        const looked = await this.lookupIds(group);
        const previousOk = writing ? await writing : true;
        if (!looked.ok || !previousOk) {
          const err = looked.ok
            ? new SealtrailError('ST_SPOOL_WRITE', 'spool write failed: an earlier group commit failed', {
                retryable: true,
              })
            : looked.err;
          for (const g of group) g.reject(err);
          writing = null;
          writingIds = new KeySet();
          continue;
        }
        const built = await this.buildGroup(group, looked, writingIds).catch((err: unknown) => {
          this.rangeTop.clear();
          for (const g of group) g.reject(err);
          return null;
        });
        if (!built) continue;
        writingIds = built.ids;
        writing = this.writeGroup(group, built);
      }
    } finally {
      this.writing = false;
    }
  }

  private async lookupIds(
    group: CommitRequest[],
  ): Promise<{ ok: true; keys: Buffer[]; known: (Buffer | undefined)[] } | { ok: false; err: unknown }> {
    // Erased records have no event id to dedupe on.
    const keys: Buffer[] = [];
    try {
      for (const g of group) for (const r of g.records) if (!r.erased) keys.push(eventIdKey(r.eventId));
      // Only ids that may be stored are looked up: none sorts after the greatest stored one.
      const known: (Buffer | undefined)[] = new Array(keys.length).fill(undefined);
      const ask: number[] = [];
      for (let i = 0; i < keys.length; i++) if (keys[i]!.compare(this.topIdKey) <= 0) ask.push(i);
      if (ask.length > 0) {
        const found = await this.db.getMany(ask.map((i) => keys[i]!));
        for (let j = 0; j < ask.length; j++) known[ask[j]!] = found[j];
      }
      return { ok: true, keys, known };
    } catch (err) {
      return { ok: false, err };
    }
  }

  /**
   * The group's writes in a chained batch: one native call per put instead of an array of op
   * objects that classic-level converts entry by entry. Closed again when building fails.
   */
  private async buildGroup(
    group: CommitRequest[],
    ids: { keys: Buffer[]; known: (Buffer | undefined)[] },
    writingIds: KeySet,
  ): Promise<{ batch: Batch; offset: bigint; dupCounts: number[]; ids: KeySet }> {
    const batch = this.db.batch();
    try {
      return { batch, ...(await this.fillGroup(batch, group, ids, writingIds)) };
    } catch (err) {
      await batch.close();
      throw err;
    }
  }

  private async fillGroup(
    batch: Batch,
    group: CommitRequest[],
    ids: { keys: Buffer[]; known: (Buffer | undefined)[] },
    /** Ids the group being written right now stores; the lookup may not have seen them. */
    writingIds: KeySet,
  ): Promise<{ offset: bigint; dupCounts: number[]; ids: KeySet }> {
    const seenNow = new KeySet();
    // Offsets as numbers while the group is built: exact below 2^53, which no spool reaches.
    let offset = Number(this.nextOffset);
    let total = 0;
    for (const g of group) total += g.records.length;
    if (!Number.isSafeInteger(offset + total))
      throw new SealtrailError('ST_SPOOL_WRITE', `spool offset ${this.nextOffset} is past 2^53`);
    const now = Date.now();
    const nowBytes = u64(BigInt(now));
    const dupCounts: number[] = [];
    // A put copies its key and value into the batch (classic-level's batch_put; the spool
    // listens to no 'write' events and has no hooks, which would keep them): the blocks and
    // the event-id values are written into buffers reused from put to put, not allocated
    // per block (~1 MiB outside the heap, which V8 counts towards its next full GC) and per record.
    const idValue = Buffer.allocUnsafe(16);
    nowBytes.copy(idValue, 8);
    let k = 0;
    let block: BlockItem[] = [];
    let blockAt = offset;
    let blockBytes = 0;
    const endBlock = () => {
      if (block.length === 0) return;
      batch.put(recordKeyAt(blockAt), encodeBlock(block, nowBytes, this.blockScratch));
      block = [];
      blockAt = offset;
      blockBytes = 0;
    };
    for (const g of group) {
      const agentBytes = uuidBytes(g.agent.agent_id);
      let dups = 0;
      // One hash range per run of records of one chain (a batch is contiguous and of one chain).
      let run: {
        chain: Buffer;
        chainId: string;
        first: bigint;
        next: bigint;
        offset: number;
        count: number;
      } | null = null;
      const endRun = async () => {
        if (!run) return;
        for (const k of await this.supersededRanges(agentBytes, run.chain, run.first)) batch.del(k);
        const v = Buffer.allocUnsafe(16);
        writeU64(v, run.offset, 0);
        writeU64(v, run.count, 8);
        batch.put(key('~h', agentBytes, run.chain, u64(run.first)), v);
        run = null;
      };
      for (const r of g.records) {
        let duplicateId = false;
        if (!r.erased) {
          const idKey = ids.keys[k]!;
          const prior = ids.known[k];
          k++;
          // Above the greatest id key stored, written or in this group so far, an id is new
          // (and was not looked up): no set needs to be asked, which is the UUIDv7 case.
          const above = idKey.compare(this.topIdKey) > 0;
          duplicateId =
            !above &&
            ((prior !== undefined && Number(prior.readBigUInt64BE(8)) >= now - this.dedupeWindowMs) ||
              seenNow.has(idKey) ||
              writingIds.has(idKey));
          if (duplicateId) dups++;
          else {
            seenNow.add(idKey);
            writeU64(idValue, offset, 0);
            batch.put(idKey, idValue);
            if (above) this.topIdKey = idKey;
          }
        }
        if (!run || run.chainId !== r.chainId || r.seq !== run.next) {
          await endRun();
          run = {
            chain: uuidBytes(r.chainId),
            chainId: r.chainId,
            first: r.seq,
            next: r.seq,
            offset,
            count: 0,
          };
        }
        run.count++;
        run.next = r.seq + 1n;
        block.push({ agent: agentBytes, chain: run.chain, r, duplicateId });
        blockBytes += HEADER + r.eventBytes.length;
        offset++;
        if (block.length >= BLOCK_RECORDS || blockBytes >= BLOCK_BYTES) endBlock();
      }
      await endRun();
      g.agent.duplicates += dups;
      batch.put(key('~a', agentBytes), Buffer.from(JSON.stringify(g.agent)));
      dupCounts.push(dups);
    }
    endBlock();
    return { offset: BigInt(offset), dupCounts, ids: seenNow };
  }

  /** Resolves true once the group is durable (and its commits resolved), false when it failed. */
  private async writeGroup(
    group: CommitRequest[],
    built: { batch: Batch; offset: bigint; dupCounts: number[] },
  ): Promise<boolean> {
    try {
      await built.batch.write({ sync: true });
      this.fsyncs++;
    } catch (err) {
      // The ranges this group meant to write are not there: read them from disk again.
      this.rangeTop.clear();
      const e = new SealtrailError('ST_SPOOL_WRITE', `spool write failed: ${(err as Error).message}`, {
        cause: err,
        retryable: true,
      });
      for (const g of group) g.reject(e);
      return false;
    }
    this.nextOffset = built.offset;
    for (const [i, g] of group.entries()) g.resolve({ duplicateIds: built.dupCounts[i]! });
    this.emit('committed', built.offset - 1n);
    return true;
  }

  /** Up to `max` records after `afterOffset` (-1: from the start), in arrival order. */
  async read(afterOffset: bigint, max: number): Promise<StoredRecord[]> {
    const from = afterOffset + 1n;
    const out: StoredRecord[] = [];
    if (max < 1) return out;
    // An exporter's next read usually starts inside the block its last one ended in.
    let start: bigint;
    const recent = this.recentBlocks.holding(from);
    if (recent) {
      decodeEntry(recent[0], recent[1], from, max, out);
      start = recent[0] + BigInt(entryCount(recent[1]));
    } else {
      // The entry holding `from` starts at or before it (a block, or `from`'s own record):
      // a seek over keys, not values.
      const [k] = await this.db
        .keys({ gte: Buffer.from('s'), lte: recordKey(from), reverse: true, limit: 1 })
        .all();
      start = k ? k.readBigUInt64BE(1) : from;
    }
    if (out.length >= max) return out;
    const it = this.db.iterator({
      gte: recordKey(start),
      lt: Buffer.from('t'),
      highWaterMarkBytes: 4 * 1024 * 1024,
    });
    try {
      // One entry at a time while they are blocks (a chunk of them would copy blocks no one
      // asked for), as many as still wanted while they are records of formats 1 and 2.
      let want = 1;
      while (out.length < max) {
        const rows = await it.nextv(want);
        if (rows.length === 0) break;
        for (const [k, v] of rows) {
          if (out.length >= max) break;
          const first = k.readBigUInt64BE(1);
          decodeEntry(first, v, from, max - out.length, out);
          if (v[0] === BLOCK_VERSION) this.recentBlocks.add(first, v);
        }
        want = rows[rows.length - 1]![1][0] === BLOCK_VERSION ? 1 : max - out.length;
      }
    } finally {
      await it.close();
    }
    return out;
  }

  /**
   * The blocks `read` decoded last: blocks never change once written, so they stay valid. A
   * few, not one: exporters at different points of the spool (one catching up after an
   * outage, one at the head) would otherwise fetch each other's block again on every read.
   */
  private readonly recentBlocks = new RecentBlocks(8);

  /** The 's' entry whose records include `offset`, if any: its first offset and value. */
  private async entryAt(offset: bigint): Promise<[bigint, Buffer] | undefined> {
    const [hit] = await this.db
      .iterator({ gte: Buffer.from('s'), lte: recordKey(offset), reverse: true, limit: 1 })
      .all();
    if (!hit) return undefined;
    const first = hit[0].readBigUInt64BE(1);
    return offset < first + BigInt(entryCount(hit[1])) ? [first, hit[1]] : undefined;
  }

  /** Up to one record per offset asked, `undefined` where none is stored. */
  async readOffsets(offsets: bigint[]): Promise<(StoredRecord | undefined)[]> {
    const out: (StoredRecord | undefined)[] = [];
    // Offsets asked together are often in one block (a dead-letter replay): reuse the last one;
    // an exporter's lag check asks for the record after its cursor, often in `read`'s last block.
    let entry: [bigint, Buffer] | undefined;
    for (const o of offsets) {
      if (!entry || o < entry[0] || o >= entry[0] + BigInt(entryCount(entry[1])))
        entry = this.recentBlocks.holding(o) ?? (await this.entryAt(o));
      const one: StoredRecord[] = [];
      if (entry) decodeEntry(entry[0], entry[1], o, 1, one);
      out.push(one[0]);
    }
    return out;
  }

  private readonly deadLetterNext = new Map<string, bigint>();

  private async nextDeadLetterNumber(exporter: string): Promise<bigint> {
    let n = this.deadLetterNext.get(exporter);
    if (n === undefined) {
      n = 0n;
      for (const prefix of ['d', 'r']) {
        const range = dlRange(prefix, exporter);
        for await (const k of this.db.keys({ ...range, reverse: true, limit: 1 })) {
          const last = k.readBigUInt64BE(k.length - 8) + 1n;
          if (last > n) n = last;
        }
      }
    }
    return n;
  }

  /**
   * An exporter's progress in one synced batch: its cursor, the records it
   * dead-lettered on the way, and the replayed dead letters it has now delivered
   * (or dead-lettered again). A crash leaves either all of it or none.
   */
  async commitExport(p: {
    /** The exporter's name: dead letters are kept under it. */
    exporter: string;
    /** Cursor key and value; the cursor stays as it is when absent. */
    cursorKey?: string;
    cursor?: unknown;
    deadLetters?: DeadLetter[];
    /** Numbers of replayed dead letters now settled. */
    replayed?: string[];
  }): Promise<void> {
    this.assertWritable();
    const ops: Op[] = [];
    const dead = p.deadLetters ?? [];
    if (p.cursorKey !== undefined && p.cursor !== undefined) {
      ops.push({
        type: 'put',
        key: key('x', Buffer.from(p.cursorKey)),
        value: Buffer.from(JSON.stringify(p.cursor)),
      });
    }
    let n = dead.length > 0 ? await this.nextDeadLetterNumber(p.exporter) : 0n;
    for (const d of dead) {
      ops.push({ type: 'put', key: dlKey('d', p.exporter, n), value: Buffer.from(JSON.stringify(d)) });
      n++;
    }
    for (const r of p.replayed ?? []) ops.push({ type: 'del', key: dlKey('r', p.exporter, BigInt(r)) });
    if (ops.length === 0) return;
    await this.db.batch(ops, { sync: true });
    if (dead.length > 0) this.deadLetterNext.set(p.exporter, n);
  }

  /** Dead letters, of one exporter or of all, oldest first; `queued` lists those waiting for replay instead. */
  async *deadLetters(exporter?: string, queued = false): AsyncGenerator<StoredDeadLetter> {
    const prefix = queued ? 'r' : 'd';
    const range =
      exporter === undefined
        ? { gte: Buffer.from(prefix), lt: Buffer.from(String.fromCharCode(prefix.charCodeAt(0) + 1)) }
        : dlRange(prefix, exporter);
    for await (const [k, v] of this.db.iterator(range)) {
      yield { ...(JSON.parse(v.toString()) as DeadLetter), n: k.readBigUInt64BE(k.length - 8).toString() };
    }
  }

  /** Moves dead letters (all of the exporter's, or the numbers given) to its replay queue; returns how many. */
  async queueReplay(exporter: string, numbers?: string[]): Promise<number> {
    this.assertWritable();
    const want = numbers ? new Set(numbers) : undefined;
    const ops: Op[] = [];
    for await (const d of this.deadLetters(exporter)) {
      if (want && !want.has(d.n)) continue;
      const { n, ...letter } = d;
      ops.push({ type: 'del', key: dlKey('d', exporter, BigInt(n)) });
      ops.push({
        type: 'put',
        key: dlKey('r', exporter, BigInt(n)),
        value: Buffer.from(JSON.stringify(letter)),
      });
    }
    if (ops.length > 0) await this.db.batch(ops, { sync: true });
    return ops.length / 2;
  }

  async getCursor<T>(name: string): Promise<T | undefined> {
    const v = await this.db.get(key('x', Buffer.from(name)));
    return v ? (JSON.parse(v.toString()) as T) : undefined;
  }

  async putCursor(name: string, value: unknown): Promise<void> {
    this.assertWritable();
    await this.db.put(key('x', Buffer.from(name)), Buffer.from(JSON.stringify(value)), { sync: true });
  }

  /** Registers an enrolled agent and spends its token in one batch; false when the token was used already. */
  async enroll(state: AgentState, tokenId: string): Promise<boolean> {
    this.assertWritable();
    const k = key('t', Buffer.from(tokenId));
    if ((await this.db.get(k)) !== undefined) return false;
    await this.db.batch(
      [
        {
          type: 'put',
          key: k,
          value: Buffer.from(JSON.stringify({ agent_id: state.agent_id, used: new Date().toISOString() })),
        },
        { type: 'put', key: agentKey(state.agent_id), value: Buffer.from(JSON.stringify(state)) },
      ],
      { sync: true },
    );
    return true;
  }

  /** Forgets event ids older than the dedupe window; returns how many. */
  async pruneEventIds(): Promise<number> {
    this.assertWritable();
    const cutoff = BigInt(Date.now() - this.dedupeWindowMs);
    let ops: Op[] = [];
    let pruned = 0;
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from('~i'), lt: Buffer.from('~j') })) {
      if (v.readBigUInt64BE(8) >= cutoff) continue;
      ops.push({ type: 'del', key: k });
      if (ops.length >= 10_000) {
        await this.db.batch(ops);
        pruned += ops.length;
        ops = [];
      }
    }
    if (ops.length > 0) await this.db.batch(ops);
    return pruned + ops.length;
  }

  /** Keeps evidence of an integrity violation; append-only. */
  addViolation(evidence: Record<string, unknown>): Promise<bigint> {
    if (this.readOnly) return Promise.reject(this.readOnlyError());
    const next = this.violationChain.then(() => this.writeViolation(evidence));
    this.violationChain = next.catch(() => undefined);
    return next;
  }

  private async writeViolation(evidence: Record<string, unknown>): Promise<bigint> {
    const cur = await this.db.get(META_NEXT_VIOLATION);
    const n = cur ? cur.readBigUInt64BE(0) : 0n;
    await this.db.batch(
      [
        { type: 'put', key: key('v', u64(n)), value: Buffer.from(JSON.stringify(evidence)) },
        { type: 'put', key: META_NEXT_VIOLATION, value: u64(n + 1n) },
      ],
      { sync: true },
    );
    return n;
  }

  async *violations(): AsyncGenerator<Record<string, unknown>> {
    for await (const v of this.db.values({ gte: Buffer.from('v'), lt: Buffer.from('w') })) {
      yield JSON.parse(v.toString());
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing) await new Promise((r) => setTimeout(r, 1));
    await this.db.close();
  }
}
