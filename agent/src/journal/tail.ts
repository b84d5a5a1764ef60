/**
 * The fast path of journal verification: raw LevelDB rows ('r' keys, in key order)
 * checked against the chain without a BigInt, an object or a Buffer per record (hashes
 * travel as latin1 strings, see RecordHasher.hashLatin1).
 * Whenever a row is not plainly the next good record, the reference ChainVerifier
 * (packages/chain) decides it, so every fault and its detail are exactly the
 * reference's; the fast path only ever says "good" where the reference would.
 * Head marks (14-byte keys between the records) are not records and are skipped.
 */
import { ChainVerifier, eventHashLatin1, HASH_BYTES, RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import {
  decodeRecordValue,
  type Head,
  isHeadMark,
  KIND_ERASED,
  type Position,
  RECORD_KEY_BYTES,
  VALUE_HEADER,
} from './layout.js';

export interface TailFault {
  position: Position;
  fault: string;
  detail: string;
  /** The last record that verified (or the start position): where a new chain picks up. */
  lastGood: Head | null;
}

const TWO_32 = 2 ** 32;
const ZERO_LATIN1 = ZERO_HASH.toString('latin1');

export class TailVerifier {
  private chain = -1;
  private chainId = '';
  private hasher: RecordHasher | null = null;
  /** The seq the next row must have, as two u32 halves. */
  private hi = 0;
  private lo = 0;
  /** The previous record's hash, latin1. */
  private prev = ZERO_LATIN1;
  /** The last record that verified (plain fields: no object per record). */
  private goodChain = -1;
  private goodHi = 0;
  private goodLo = 0;
  private goodHash: string | null = null;
  /** Records verified so far. */
  count = 0;

  /**
   * `start` is the trusted record the rows chain from in its chain (the acked record, or
   * the one before a region); rows of any other chain must start at seq 0.
   */
  constructor(
    private readonly agentId: string,
    private readonly chainIdOf: (no: number) => string | undefined,
    private readonly start: Head | null,
  ) {}

  get lastGood(): Head | null {
    if (!this.goodHash) return this.start;
    return {
      chain: this.goodChain,
      seq: (BigInt(this.goodHi) << 32n) | BigInt(this.goodLo),
      hash: Buffer.from(this.goodHash, 'latin1'),
    };
  }

  /** Checks `rows` in order; the first fault, or null when all of them chain. */
  push(rows: readonly (readonly [Buffer, Buffer])[]): TailFault | null {
    for (const [key, value] of rows) {
      if (isHeadMark(key)) continue;
      const chain = key.readUInt32BE(1);
      if (chain !== this.chain) {
        const fault = this.enter(chain, key);
        if (fault) return fault;
      }
      if (!this.fast(key, value)) {
        const fault = this.slow(chain, key, value);
        if (fault) return fault;
      }
      this.count++;
    }
    return null;
  }

  private enter(chain: number, key: Buffer): TailFault | null {
    const chainId = this.chainIdOf(chain);
    const seq = key.readBigUInt64BE(5);
    if (chainId === undefined) {
      return {
        position: { chain, seq },
        fault: 'unknown_chain',
        detail: `no meta for chain number ${chain}`,
        lastGood: this.lastGood,
      };
    }
    const after = this.start && this.start.chain === chain ? this.start : null;
    if (!after && seq !== 0n) {
      return {
        position: { chain, seq },
        fault: 'seq_gap',
        detail: `chain ${chainId} starts at ${seq}, not 0`,
        lastGood: this.lastGood,
      };
    }
    this.chain = chain;
    this.chainId = chainId;
    this.hasher = new RecordHasher({ agentId: this.agentId, chainId });
    const next = after ? after.seq + 1n : 0n;
    this.hi = Number(next >> 32n);
    this.lo = Number(next & 0xffff_ffffn);
    this.prev = after ? after.hash.toString('latin1') : ZERO_LATIN1;
    return null;
  }

  /** True when `value` is plainly the next good record; false leaves the decision to `slow`. */
  private fast(key: Buffer, value: Buffer): boolean {
    if (key.length !== RECORD_KEY_BYTES || key.readUInt32BE(5) !== this.hi || key.readUInt32BE(9) !== this.lo)
      return false;
    let ev: string;
    if (value[0] === KIND_ERASED) {
      if (value.length !== VALUE_HEADER + HASH_BYTES) return false;
      ev = value.toString('latin1', VALUE_HEADER);
    } else {
      if (value.length < VALUE_HEADER) return false;
      ev = eventHashLatin1(value.subarray(VALUE_HEADER));
    }
    const h = this.hasher!.hashLatin1(key, 5, this.prev, ev);
    if (value.toString('latin1', 1, VALUE_HEADER) !== h) return false;
    this.advance(h);
    return true;
  }

  private slow(chain: number, key: Buffer, value: Buffer): TailFault | null {
    const expected = (BigInt(this.hi) << 32n) | BigInt(this.lo);
    const verifier = new ChainVerifier(
      { agentId: this.agentId, chainId: this.chainId },
      expected === 0n ? null : { seq: expected - 1n, hash: Buffer.from(this.prev, 'latin1') },
    );
    const step = verifier.push(decodeRecordValue(chain, key.readBigUInt64BE(5), value));
    if (!step.ok) {
      return {
        position: { chain, seq: step.seq },
        fault: step.fault,
        detail: step.detail,
        lastGood: this.lastGood,
      };
    }
    this.advance(Buffer.from(step.position.hash).toString('latin1'));
    return null;
  }

  private advance(hash: string): void {
    this.prev = hash;
    this.goodChain = this.chain;
    this.goodHi = this.hi;
    this.goodLo = this.lo;
    this.goodHash = hash;
    if (++this.lo === TWO_32) {
      this.lo = 0;
      this.hi++;
    }
  }
}
