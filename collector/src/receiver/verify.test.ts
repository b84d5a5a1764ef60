import { randomUUID } from 'node:crypto';
import { ChainVerifier, eventHash, RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import { describe, expect, it } from 'vitest';
import { mulberry32 as rng } from '../testkit/random.js';
import { RecordChecker, type WireRecord } from './verify.js';

const EMPTY = new Uint8Array();

/** A good chain of `n` records after `after`, some erased (event hash only). */
function chain(
  hasher: RecordHasher,
  after: { seq: bigint; hash: Buffer } | null,
  n: number,
  rand: () => number,
): WireRecord[] {
  const out: WireRecord[] = [];
  let prev = after ? after.hash : ZERO_HASH;
  let seq = after ? after.seq + 1n : 0n;
  for (let i = 0; i < n; i++, seq++) {
    const bytes = Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(Math.floor(rand() * 50)) }));
    const erased = rand() < 0.1;
    const ev = eventHash(bytes);
    const h = hasher.hash(seq, prev, ev);
    out.push({ seq, recordHash: h, eventBytes: erased ? EMPTY : bytes, eventHash: erased ? ev : EMPTY });
    prev = h;
  }
  return out;
}

/** One random change a forger, a bug or a replay could make. */
function damage(records: WireRecord[], rand: () => number): WireRecord[] {
  const rs = records.slice();
  const i = Math.floor(rand() * rs.length);
  const r = rs[i]!;
  const flip = (b: Uint8Array) => {
    const c = Buffer.from(b);
    if (c.length > 0) c[Math.floor(rand() * c.length)]! ^= 1 << Math.floor(rand() * 8);
    return c;
  };
  switch (Math.floor(rand() * 8)) {
    case 0:
      rs[i] = { ...r, recordHash: flip(r.recordHash) };
      break;
    case 1:
      rs[i] =
        r.eventBytes.length > 0
          ? { ...r, eventBytes: flip(r.eventBytes) }
          : { ...r, eventHash: flip(r.eventHash) };
      break;
    case 2:
      rs.splice(i, 1); // a gap
      break;
    case 3:
      rs.splice(i, 0, rs[Math.max(0, i - 1)]!); // a replayed record
      break;
    case 4:
      if (i + 1 < rs.length) [rs[i], rs[i + 1]] = [rs[i + 1]!, r]; // reordered
      break;
    case 5:
      rs[i] = { ...r, recordHash: r.recordHash.subarray(0, 31) }; // short hash
      break;
    case 6:
      rs[i] = { ...r, seq: r.seq + 1n };
      break;
    default:
      rs[i] = { ...r, recordHash: Buffer.alloc(32) };
  }
  return rs;
}

function reference(r: WireRecord) {
  return r.eventBytes.length > 0
    ? { seq: r.seq, recordHash: r.recordHash, eventBytes: r.eventBytes }
    : { seq: r.seq, recordHash: r.recordHash, eventHash: r.eventHash };
}

describe('RecordChecker', () => {
  it('decides every record exactly as the reference ChainVerifier, on random good and damaged chains', () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 300; seed++) {
      const rand = rng(seed);
      const identity = { agentId: randomUUID(), chainId: randomUUID() };
      const hasher = new RecordHasher(identity);
      const after =
        rand() < 0.5
          ? null
          : { seq: BigInt(Math.floor(rand() * 2 ** 40)), hash: Buffer.from(eventHash(Buffer.from([seed]))) };
      let records = chain(hasher, after, 1 + Math.floor(rand() * 40), rand);
      if (seed % 4 !== 0) records = damage(records, rand);
      const fast = new RecordChecker(identity, after);
      const ref = new ChainVerifier(identity, after);
      for (const r of records) {
        const a = fast.check(r);
        const b = ref.check(reference(r));
        // A regression (a replay) is skipped by the session, other faults end the batch.
        if (b.ok) {
          expect(a, `seed ${seed} seq ${r.seq}`).toBeNull();
          fast.accept();
          ref.accept(b.position);
        } else {
          expect(a, `seed ${seed} seq ${r.seq}`).toEqual(b);
          seen.add(b.fault);
          if (b.fault !== 'seq_regression') break;
        }
        const h = ref.head;
        expect(fast.head).toEqual(h ? { seq: h.seq, hash: Buffer.from(h.hash) } : null);
      }
    }
    expect([...seen].sort()).toEqual(['record_hash_mismatch', 'seq_gap', 'seq_regression']);
  });

  it('never accepts a record with a hash that was sent but not recomputed', () => {
    const identity = { agentId: randomUUID(), chainId: randomUUID() };
    const good = chain(new RecordHasher(identity), null, 3, rng(7));
    const fast = new RecordChecker(identity, null);
    expect(fast.check(good[0]!)).toBeNull();
    fast.accept();
    // The right seq and the hash it claims, but another chain's bytes.
    const forged = { ...good[1]!, eventBytes: Buffer.from('{"forged":true}'), eventHash: EMPTY };
    expect(fast.check(forged)).toMatchObject({ ok: false, fault: 'record_hash_mismatch', seq: 1n });
    expect(() => fast.accept()).toThrow();
    expect(fast.head?.seq).toBe(0n);
  });
});
