/**
 * The hand-written fast paths (Sealer for appends, TailVerifier for verification)
 * against the reference code of packages/chain (RecordHasher.seal, ChainVerifier),
 * on random chains with random damage: the same bytes, the same first fault.
 */
import { randomUUID } from 'node:crypto';
import { ChainVerifier, eventHash, RecordHasher } from '@sealtrail/chain';
import { describe, expect, it } from 'vitest';
import { decodeRecordValue, type Head, KIND_ERASED, KIND_FULL, recordKey } from './layout.js';
import { Sealer } from './seal.js';
import { type TailFault, TailVerifier } from './tail.js';

const AGENT_ID = randomUUID();

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Row = [Buffer, Buffer];

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

/** Rows of 1-3 chains, sealed with the reference hasher; some payloads erased. */
function chains(rand: () => number): { rows: Row[]; ids: Map<number, string> } {
  const ids = new Map<number, string>();
  const rows: Row[] = [];
  const n = 1 + Math.floor(rand() * 3);
  for (let no = 0; no < n; no++) {
    const id = randomUUID();
    ids.set(no, id);
    const hasher = new RecordHasher({ agentId: AGENT_ID, chainId: id });
    let prev = Buffer.alloc(32);
    const len = 1 + Math.floor(rand() * 12);
    for (let seq = 0n; seq < BigInt(len); seq++) {
      const ev = Buffer.from(
        JSON.stringify({ no, seq: String(seq), pad: 'x'.repeat(Math.floor(rand() * 40)) }),
      );
      const erased = rand() < 0.15;
      const h = erased ? hasher.hash(seq, prev, eventHash(ev)) : hasher.seal(seq, prev, ev);
      const value = Buffer.concat([
        Buffer.from([erased ? KIND_ERASED : KIND_FULL]),
        h,
        erased ? eventHash(ev) : ev,
      ]);
      rows.push([recordKey(no, seq), value]);
      prev = h;
    }
  }
  return { rows, ids };
}

/** One random kind of damage, or none. */
function damage(rows: Row[], rand: () => number): Row[] {
  const out = rows.map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as Row);
  const i = Math.floor(rand() * out.length);
  const j = Math.floor(rand() * out.length);
  const kind = Math.floor(rand() * 9);
  const [k, v] = out[i]!;
  switch (kind) {
    case 0: // a flipped byte anywhere in the value
      v[Math.floor(rand() * v.length)]! ^= 1 << Math.floor(rand() * 8);
      break;
    case 1: // a removed record
      out.splice(i, 1);
      break;
    case 2: // two records swapped (values only: keys stay in order)
      [out[i]![1], out[j]![1]] = [out[j]![1], out[i]![1]];
      break;
    case 3: // a cut value
      out[i]![1] = v.subarray(0, Math.floor(rand() * v.length));
      break;
    case 4: // the kind byte changed
      v[0] = Math.floor(rand() * 4);
      break;
    case 5: // a record repeated under the next seq's key
      if (i + 1 < out.length) out[i + 1]![1] = Buffer.from(v);
      break;
    case 6: // a key moved to another seq
      k.writeBigUInt64BE(k.readBigUInt64BE(5) + BigInt(1 + Math.floor(rand() * 3)), 5);
      break;
    case 7: // the tail cut
      out.length = i;
      break;
    default: // intact
  }
  return out;
}

describe('TailVerifier against the reference ChainVerifier', () => {
  it('finds the same first fault, at the same place, with the same last good record', () => {
    const rand = mulberry32(20261201);
    let faults = 0;
    for (let round = 0; round < 3000; round++) {
      const { rows, ids } = chains(rand);
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
