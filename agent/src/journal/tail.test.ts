/**
 * The hand-written fast paths (Sealer for appends, TailVerifier for verification)
 * against the reference code of packages/chain (RecordHasher.seal, ChainVerifier),
 * on random chains with random damage: the same bytes, the same first fault.
 */
import { randomUUID } from 'node:crypto';
import { ChainVerifier, eventHash, RecordHasher, recordHashPrefix } from '@sealtrail/chain';
import { describe, expect, it } from 'vitest';
import { decodeRecordValue, type Head, recordKey } from './layout.js';
import { RowChecker } from './rowcheck.js';
import { Sealer } from './seal.js';
import { type TailFault, TailVerifier } from './tail.js';
import { chains, damage, mulberry32, type Row } from './testkit/chains.js';

const AGENT_ID = randomUUID();

/** The journal's verification as it was before the fast path: one object and one ChainVerifier step per record. */
function reference(rows: Row[], chainIds: Map<number, string>, start: Head | null): TailFault | null {
  let verifier: ChainVerifier | null = null;
  let chain = -1;
  let lastGood: Head | null = start;
  for (const [key, value] of rows) {
    const r = decodeRecordValue(key.readUInt32BE(1), key.readBigUInt64BE(5), value);
    if (r.chain !== chain) {
      const id = chainIds.get(r.chain);
      if (!id)
        return {
          position: r,
          fault: 'unknown_chain',
          detail: `no meta for chain number ${r.chain}`,
          lastGood,
        };
      const after = start && start.chain === r.chain ? start : null;
      if (!after && r.seq !== 0n) {
        return { position: r, fault: 'seq_gap', detail: `chain ${id} starts at ${r.seq}, not 0`, lastGood };
      }
      verifier = new ChainVerifier({ agentId: AGENT_ID, chainId: id }, after);
      chain = r.chain;
    }
    const step = verifier!.push(r);
    if (!step.ok)
      return {
        position: { chain: r.chain, seq: step.seq },
        fault: step.fault,
        detail: step.detail,
        lastGood,
      };
    lastGood = { chain: r.chain, seq: r.seq, hash: Buffer.from(r.recordHash) };
  }
  return null;
}

describe('TailVerifier against the reference ChainVerifier', () => {
  it('finds the same first fault, at the same place, with the same last good record', () => {
    const rand = mulberry32(20261201);
    let faults = 0;
    for (let round = 0; round < 3000; round++) {
      const { rows, ids } = chains(AGENT_ID, rand);
      const damaged = damage(rows, rand);
      // Sometimes start after an acked record of chain 0, as open does.
      let start: Head | null = null;
      let from = 0;
      if (rand() < 0.3 && rows.length > 2 && rows[1]![0].readUInt32BE(1) === 0) {
        const [k, v] = rows[0]!;
        start = { chain: 0, seq: k.readBigUInt64BE(5), hash: Buffer.from(v.subarray(1, 33)) };
        from = 1;
      }
      const input = damaged.slice(from);
      let want: TailFault | null | Error;
      try {
        want = reference(input, ids, start);
      } catch (err) {
        want = err as Error;
      }
      const v = new TailVerifier(AGENT_ID, (no) => ids.get(no), start);
      // Fed in random chunks, as scan and read do.
      let got: TailFault | null | Error = null;
      try {
        for (let at = 0; at < input.length && got === null; ) {
          const n = 1 + Math.floor(rand() * 5);
          got = v.push(input.slice(at, at + n));
          at += n;
        }
      } catch (err) {
        got = err as Error;
      }
      if (want instanceof Error) {
        expect(got, `round ${round}`).toBeInstanceOf(Error);
        continue;
      }
      // The old code's position was the whole record; where it points is what counts.
      const at = (f: TailFault | null) =>
        f && { ...f, position: { chain: f.position.chain, seq: f.position.seq } };
      expect(at(got as TailFault | null), `round ${round}`).toEqual(at(want));
      if (want === null) {
        const last = input.at(-1);
        const lastGood = v.lastGood;
        if (last) {
          expect(lastGood?.seq).toBe(last[0].readBigUInt64BE(5));
          expect(lastGood?.hash.equals(last[1].subarray(1, 33))).toBe(true);
        } else expect(lastGood).toEqual(start);
      } else faults++;
    }
    expect(faults).toBeGreaterThan(1000);
  });
});

describe('RowChecker (the worker thread of verifyTail) against TailVerifier', () => {
  it('calls good only a prefix of rows that TailVerifier verifies, ending at the same record', () => {
    const rand = mulberry32(20261202);
    let stoppedEarly = 0;
    let checked = 0;
    for (let round = 0; round < 3000; round++) {
      const { rows, ids } = chains(AGENT_ID, rand);
      if (rows.length < 2) continue;
      const damaged = damage(rows, rand);
      // As verifyTail's split: a trusted record of chain 0 (the main thread verified it), then the rest.
      const [k0, v0] = rows[0]!;
      const start: Head = { chain: 0, seq: k0.readBigUInt64BE(5), hash: Buffer.from(v0.subarray(1, 33)) };
      const input = damaged.filter(([k]) => Buffer.compare(k, k0) > 0);
      const checker = new RowChecker({
        key: k0,
        hash: start.hash.toString('latin1'),
        prefix: recordHashPrefix({ agentId: AGENT_ID, chainId: ids.get(0)! }),
      });
      let good = 0;
      for (let at = 0; at < input.length; ) {
        const chunk = input.slice(at, at + 1 + Math.floor(rand() * 5));
        const n = checker.check(chunk);
        good += n;
        at += chunk.length;
        if (n < chunk.length) break;
      }
      const v = new TailVerifier(AGENT_ID, (no) => ids.get(no), start);
      let fault: TailFault | null | Error;
      try {
        fault = v.push(input.slice(0, good));
      } catch (err) {
        fault = err as Error;
      }
      expect(fault, `round ${round}`).toBeNull();
      expect(checker.count, `round ${round}`).toBe(v.count);
      const r = checker.result;
      const lastGood = v.lastGood!;
      expect((BigInt(r.hi) << 32n) | BigInt(r.lo), `round ${round}`).toBe(lastGood.seq);
      expect(Buffer.from(r.hash, 'latin1').equals(lastGood.hash), `round ${round}`).toBe(true);
      if (good < input.length) stoppedEarly++;
      checked += checker.count;
    }
    expect(stoppedEarly).toBeGreaterThan(1000);
    expect(checked).toBeGreaterThan(5000);
  });
});

describe('Sealer against RecordHasher.seal', () => {
  it('produces the keys and values the reference code would, across a u32 seq boundary', () => {
    const chainId = randomUUID();
    const hasher = new RecordHasher({ agentId: AGENT_ID, chainId });
    const prev0 = eventHash(Buffer.from('before'));
    for (const after of [null, { chain: 3, seq: 0xffff_fffdn, hash: prev0 }]) {
      const sealer = new Sealer(hasher, 3, after);
      let seq = after ? after.seq + 1n : 0n;
      let prev = after ? after.hash : Buffer.alloc(32);
      for (let i = 0; i < 6; i++) {
        const ev = Buffer.from(`{"n":${i}}`);
        const erased = i % 3 === 2;
        const [key, value] = erased ? sealer.erased(eventHash(ev)) : sealer.full(ev);
        const h = hasher.seal(seq, prev, ev);
        expect(key.equals(recordKey(3, seq))).toBe(true);
        expect(
          value.equals(Buffer.concat([Buffer.from([erased ? 2 : 1]), h, erased ? eventHash(ev) : ev])),
        ).toBe(true);
        prev = h;
        seq++;
      }
      expect(sealer.nextSeq).toBe(seq);
      expect(sealer.head).toEqual({ chain: 3, seq: seq - 1n, hash: prev });
    }
  });
});
