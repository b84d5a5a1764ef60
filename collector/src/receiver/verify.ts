/**
 * The chain check of a stream's records, the receiver's per-record hot loop. Both hashes are
 * recomputed from the bytes and the collector's own head, as the reference ChainVerifier
 * (packages/chain) does, but as latin1 strings (RecordHasher.hashLatin1): node's one-shot
 * hash returns a string for about a third of what a Buffer costs, and no object or Buffer is
 * made per record. Whenever a record is not plainly the next good one, the reference decides
 * it, so every fault and its detail are exactly the reference's; the fast path only ever says
 * "good" where the reference would (property-tested in verify.test.ts).
 */
import {
  type ChainIdentity,
  ChainVerifier,
  eventHashLatin1,
  HASH_BYTES,
  RecordHasher,
  type VerifyStep,
  ZERO_HASH,
} from '@sealtrail/chain';

const ZERO_LATIN1 = ZERO_HASH.toString('latin1');

/** A record as it arrives: empty `eventBytes` means an erased payload, `eventHash` then set. */
export interface WireRecord {
  readonly seq: bigint;
  readonly recordHash: Uint8Array;
  readonly eventBytes: Uint8Array;
  readonly eventHash: Uint8Array;
}

export type ChainFaultStep = Extract<VerifyStep, { ok: false }>;

function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** Whether the latin1 string `s` holds exactly the bytes `b`. */
function sameBytes(s: string, b: Uint8Array): boolean {
  if (s.length !== b.length) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== b[i]) return false;
  return true;
}

export class RecordChecker {
  private readonly hasher: RecordHasher;
  /** The seq the next record must have. */
  private next: bigint;
  /** record_hash of the record before `next`, latin1. */
  private prev: string;
  /** The hash `check` computed for the record it passed, until `accept`. */
  private pending: string | null = null;
  private readonly seqBytes = Buffer.allocUnsafe(8);

  /** `after`: the verified head to continue from (null: the chain must start at seq 0). */
  constructor(
    private readonly identity: ChainIdentity,
    after: { seq: bigint; hash: Uint8Array } | null,
  ) {
    this.hasher = new RecordHasher(identity);
    this.next = after ? after.seq + 1n : 0n;
    this.prev = after ? latin1(after.hash) : ZERO_LATIN1;
  }

  /** The last accepted record (or the start head), null before any. */
  get head(): { seq: bigint; hash: Buffer } | null {
    if (this.next === 0n) return null;
    return { seq: this.next - 1n, hash: Buffer.from(this.prev, 'latin1') };
  }

  /**
   * Null when `r` extends the chain here (then `accept` advances past it), or the fault the
   * reference verifier finds. `eventHash` of an erased record must be 32 bytes (checked by the caller).
   */
  check(r: WireRecord): ChainFaultStep | null {
    this.pending = null;
    if (r.seq === this.next && r.recordHash.length === HASH_BYTES) {
      const ev = r.eventBytes.length > 0 ? eventHashLatin1(r.eventBytes) : latin1(r.eventHash);
      this.seqBytes.writeBigUInt64BE(r.seq);
      const h = this.hasher.hashLatin1(this.seqBytes, 0, this.prev, ev);
      if (sameBytes(h, r.recordHash)) {
        this.pending = h;
        return null;
      }
    }
    const reference = new ChainVerifier(
      this.identity,
      this.next === 0n ? null : { seq: this.next - 1n, hash: Buffer.from(this.prev, 'latin1') },
    );
    const step = reference.check(
      r.eventBytes.length > 0
        ? { seq: r.seq, recordHash: r.recordHash, eventBytes: r.eventBytes }
        : { seq: r.seq, recordHash: r.recordHash, eventHash: r.eventHash },
    );
    if (!step.ok) return step;
    this.pending = latin1(step.position.hash);
    return null;
  }

  /** Advances past the record `check` last passed. */
  accept(): void {
    if (this.pending === null) throw new Error('accept without a passed check');
    this.prev = this.pending;
    this.pending = null;
    this.next++;
  }
}
