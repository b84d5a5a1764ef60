/**
 * The journal's record keys and values (the full key layout is in journal.ts's header):
 *   'r' u32(chain_no) u64(seq)      → 0x01 record_hash(32) event_bytes   a record
 *                                   → 0x02 record_hash(32) event_hash(32)  one whose payload was dropped
 *   'r' u32(chain_no) u64(seq) 0x00 → JSON head                          a head mark: the head after a
 *                                                                        write batch, sorted just after it
 */

export interface Position {
  chain: number;
  seq: bigint;
}

export interface Head extends Position {
  hash: Buffer;
}

export interface JournalRecord {
  chain: number;
  seq: bigint;
  recordHash: Buffer;
  /** Canonical event bytes; absent when the payload was dropped to make room. */
  eventBytes?: Buffer;
  /** Present when eventBytes is absent: what the record committed to. */
  eventHash?: Buffer;
}

export const KIND_FULL = 1;
export const KIND_ERASED = 2;
/** Kind byte + record hash, before the payload. */
export const VALUE_HEADER = 33;
export const RECORD_KEY_BYTES = 13;
export const HEAD_MARK_BYTES = 14;

/** True for a head mark's key (every other key in the 'r' range is a record). */
export function isHeadMark(key: Buffer): boolean {
  return key.length === HEAD_MARK_BYTES;
}

/** The head mark naming record (chain, seq): it sorts after that record and before the next. */
export function headMarkKey(chain: number, seq: bigint): Buffer {
  const k = Buffer.alloc(HEAD_MARK_BYTES);
  recordKey(chain, seq).copy(k);
  return k;
}

export function recordKey(chain: number, seq: bigint, prefix = 'r'): Buffer {
  const k = Buffer.allocUnsafe(RECORD_KEY_BYTES);
  k[0] = prefix.charCodeAt(0);
  k.writeUInt32BE(chain, 1);
  k.writeBigUInt64BE(seq, 5);
  return k;
}

export function decodeRecordValue(chain: number, seq: bigint, v: Buffer): JournalRecord {
  const recordHash = v.subarray(1, VALUE_HEADER);
  if (v[0] === KIND_ERASED) return { chain, seq, recordHash, eventHash: v.subarray(VALUE_HEADER) };
  return { chain, seq, recordHash, eventBytes: v.subarray(VALUE_HEADER) };
}

/** Bytes a record's payload occupies in the backlog accounting. */
export function payloadSize(v: Buffer): number {
  return v.length - VALUE_HEADER;
}
