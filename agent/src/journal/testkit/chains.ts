/** Random hash chains as journal rows, and random damage to them, for the fast-path tests. */
import { randomUUID } from 'node:crypto';
import { eventHash, RecordHasher } from '@sealtrail/chain';
import { KIND_ERASED, KIND_FULL, recordKey } from '../layout.js';

export type Row = [Buffer, Buffer];

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Rows of 1-3 chains, sealed with the reference hasher; some payloads erased. */
export function chains(agentId: string, rand: () => number): { rows: Row[]; ids: Map<number, string> } {
  const ids = new Map<number, string>();
  const rows: Row[] = [];
  const n = 1 + Math.floor(rand() * 3);
  for (let no = 0; no < n; no++) {
    const id = randomUUID();
    ids.set(no, id);
    const hasher = new RecordHasher({ agentId, chainId: id });
    let prev: Buffer = Buffer.alloc(32);
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
export function damage(rows: Row[], rand: () => number): Row[] {
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
