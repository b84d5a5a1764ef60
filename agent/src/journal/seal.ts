/**
 * Seals consecutive records of one chain into their journal keys and values. This runs
 * once per appended event, so it keeps the seq as two u32 halves (a BigInt only for the
 * head at the end) and the running hash as a latin1 string (RecordHasher.hashLatin1).
 */
import { eventHashLatin1, type RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import { type Head, KIND_ERASED, KIND_FULL, RECORD_KEY_BYTES, VALUE_HEADER } from './layout.js';

const TWO_32 = 2 ** 32;

export class Sealer {
  private hi: number;
  private lo: number;
  private prev: string;
  private last: Buffer | null = null;

  /** `after`: the chain's head to seal after (null: the records start the chain at seq 0). */
  constructor(
    private readonly hasher: RecordHasher,
    readonly chain: number,
    private readonly after: Head | null,
  ) {
    const next = after ? after.seq + 1n : 0n;
    this.hi = Number(next >> 32n);
    this.lo = Number(next & 0xffff_ffffn);
    this.prev = (after ? after.hash : ZERO_HASH).toString('latin1');
  }

  /** The seq the next record gets. */
  get nextSeq(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** The last record sealed, or `after` when none was. */
  get head(): Head | null {
    if (!this.last) return this.after;
    return { chain: this.chain, seq: this.nextSeq - 1n, hash: Buffer.from(this.prev, 'latin1') };
  }

  /** A record holding the event's bytes: [key, value]. */
  full(eventBytes: Uint8Array): [Buffer, Buffer] {
    return this.row(KIND_FULL, eventHashLatin1(eventBytes), eventBytes);
  }

  /** A record whose payload was dropped: it commits to the event hash alone. */
  erased(evHash: Uint8Array): [Buffer, Buffer] {
    const ev = Buffer.from(evHash.buffer, evHash.byteOffset, evHash.byteLength).toString('latin1');
    return this.row(KIND_ERASED, ev, evHash);
  }

  /** Seals the next record over `evHash` (latin1) and lays out `kind record_hash payload`. */
  private row(kind: number, evHash: string, payload: Uint8Array): [Buffer, Buffer] {
    const key = this.key();
    const hash = this.hasher.hashLatin1(key, 5, this.prev, evHash);
    const value = Buffer.allocUnsafe(VALUE_HEADER + payload.length);
    value[0] = kind;
    value.write(hash, 1, 'latin1');
    value.set(payload, VALUE_HEADER);
    this.advance(hash, key);
    return [key, value];
  }

  private key(): Buffer {
    const k = Buffer.allocUnsafe(RECORD_KEY_BYTES);
    k[0] = 0x72; // 'r'
    k.writeUInt32BE(this.chain, 1);
    k.writeUInt32BE(this.hi, 5);
    k.writeUInt32BE(this.lo, 9);
    return k;
  }

  private advance(hash: string, key: Buffer): void {
    this.prev = hash;
    this.last = key;
    if (++this.lo === TWO_32) {
      this.lo = 0;
      this.hi++;
    }
  }
}
