import { type ChainIdentity, RecordHasher, ZERO_HASH } from './hash.js';

export interface ChainRecord {
  readonly seq: bigint;
  readonly recordHash: Uint8Array;
  /** Canonical event bytes; absent when the payload was erased (only its hash kept). */
  readonly eventBytes?: Uint8Array;
  readonly eventHash?: Uint8Array;
}

export type ChainFault =
  | 'seq_gap' // a record is missing (or was moved)
  | 'seq_regression' // a seq at or below one already verified
  | 'record_hash_mismatch' // bytes or links changed
  | 'missing_payload'; // neither bytes nor an event hash

export interface ChainPosition {
  readonly seq: bigint;
  readonly hash: Uint8Array;
}

export type VerifyStep =
  | { ok: true; position: ChainPosition }
  | { ok: false; seq: bigint; fault: ChainFault; detail: string };

/**
 * Checks records one at a time against the state it has verified so far and
 * never trusts a hash it was given: it recomputes it from the bytes.
 * `after` is the last verified position (null: the chain starts at seq 0).
 */
export class ChainVerifier {
  private readonly hasher: RecordHasher;
  private position: ChainPosition | null;

  constructor(identity: ChainIdentity, after: ChainPosition | null = null) {
    this.hasher = new RecordHasher(identity);
    this.position = after;
  }

  get head(): ChainPosition | null {
    return this.position;
  }

  /** The hash `record` must carry to extend the chain here, or the fault that stops it. */
  check(record: ChainRecord): VerifyStep {
    const expectedSeq = this.position ? this.position.seq + 1n : 0n;
    if (record.seq < expectedSeq) {
      return { ok: false, seq: record.seq, fault: 'seq_regression', detail: `expected seq ${expectedSeq}` };
    }
    if (record.seq > expectedSeq) {
      return {
        ok: false,
        seq: expectedSeq,
        fault: 'seq_gap',
        detail: `expected seq ${expectedSeq}, found ${record.seq}`,
      };
    }
    const prev = this.position ? this.position.hash : ZERO_HASH;
    let computed: Buffer;
    if (record.eventBytes) computed = this.hasher.seal(record.seq, prev, record.eventBytes);
    else if (record.eventHash) computed = this.hasher.hash(record.seq, prev, record.eventHash);
    else return { ok: false, seq: record.seq, fault: 'missing_payload', detail: 'no event bytes or hash' };
    if (!computed.equals(record.recordHash)) {
      return {
        ok: false,
        seq: record.seq,
        fault: 'record_hash_mismatch',
        detail: `record hash ${Buffer.from(record.recordHash).toString('hex')} does not match computed ${computed.toString('hex')}`,
      };
    }
    return { ok: true, position: { seq: record.seq, hash: computed } };
  }

  /** Advances to a position `check` returned, without hashing again. */
  accept(position: ChainPosition): void {
    this.position = position;
  }

  /** Checks and, when it chains, advances. */
  push(record: ChainRecord): VerifyStep {
    const step = this.check(record);
    if (step.ok) this.position = step.position;
    return step;
  }
}

export type ChainReport =
  | { ok: true; count: number; head: ChainPosition | null }
  | { ok: false; count: number; seq: bigint; fault: ChainFault; detail: string };

/** Verifies a whole sequence of records; stops at the first bad one and names its seq. */
export function verifyChain(
  identity: ChainIdentity,
  records: Iterable<ChainRecord>,
  after: ChainPosition | null = null,
): ChainReport {
  const v = new ChainVerifier(identity, after);
  let count = 0;
  for (const r of records) {
    const step = v.push(r);
    if (!step.ok) return { ok: false, count, seq: step.seq, fault: step.fault, detail: step.detail };
    count++;
  }
  return { ok: true, count, head: v.head };
}
