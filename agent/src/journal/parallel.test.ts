/**
 * verifyTail on two threads (the worker of rowcheck.ts) against verifyTail in one pass, on
 * real journals with random damage in either half and at the split record: the same
 * fault, detail, position and last good record, and the same count of verified records.
 */
import { cpSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { headMarkKey, recordKey } from './layout.js';
import { mulberry32 } from './testkit/chains.js';
import { fixture, tempDataDir, withRawDb } from './testkit/fixture.js';

const EVENTS = 240;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

type Db = import('classic-level').ClassicLevel<Buffer, Buffer>;

/** Damage at seq `s` (1..EVENTS) of chain 0, by kind. */
async function damage(db: Db, kind: number, s: bigint, rand: () => number): Promise<void> {
  const key = recordKey(0, s);
  const v = (await db.get(key))!;
  switch (kind) {
    case 0: // a flipped byte
      v[Math.floor(rand() * v.length)]! ^= 1 << Math.floor(rand() * 8);
      return db.put(key, v);
    case 1: // a deleted record
      return db.del(key);
    case 2: {
      // two swapped values
      const t = recordKey(0, 1n + BigInt(Math.floor(rand() * EVENTS)));
      const w = (await db.get(t))!;
      await db.batch([
        { type: 'put', key, value: w },
        { type: 'put', key: t, value: v },
      ]);
      return;
    }
    case 3: // a key renamed to a head mark's (values alone still chain)
      await db.del(key);
      return db.put(headMarkKey(0, s - 1n), v);
    case 4: // a cut value
      return db.put(key, v.subarray(0, Math.floor(rand() * v.length)));
    case 5: // the tail cut from here, head marks included
      for await (const k of db.keys({ gte: key, lt: Buffer.from('s') })) await db.del(k);
      return;
    case 6: // a record repeated under the next seq
      return db.put(recordKey(0, s + 1n), v);
    case 7: // a stray key of another length between records
      return db.put(Buffer.concat([key, Buffer.from([1, 2])]), v);
    default: // intact
  }
}

describe('verifyTail on two threads', () => {
  it('reports what one pass reports, whatever the damage and wherever it is', async () => {
    const f = fixture();
    dirs.push(f.dataDir);
    const j = f.make();
    await j.open();
    // Several batches, so head marks sit between the records.
    for (let b = 0; b < 6; b++)
      await j.append({ events: Array.from({ length: EVENTS / 6 }, () => f.event()) });
    await j.close();

    const rand = mulberry32(20261203);
    let parallel = 0;
    for (let round = 0; round < 40; round++) {
      const dataDir = tempDataDir();
      dirs.push(dataDir);
      cpSync(f.dataDir, dataDir, { recursive: true });
      const g = fixture(dataDir);
      const kind = round % 9;
      // Every fourth round, the first records were shipped: the tail starts after the acked one.
      const acked = round % 4 === 1 ? 1n + BigInt(Math.floor(rand() * (EVENTS / 4))) : 0n;
      if (acked > 0n) {
        const a = g.make();
        await a.open({ startChain: false });
        await a.ack({ chain: 0, seq: acked });
        await a.close();
      }
      const mid = acked + (BigInt(EVENTS) - acked) / 2n;
      // Around the split record, or anywhere after the acked one.
      const s =
        round % 3 === 0
          ? mid + BigInt(Math.floor(rand() * 3) - 1)
          : acked + 1n + BigInt(Math.floor(rand() * (EVENTS - Number(acked))));
      await withRawDb(g.paths.journal, (db) => damage(db, kind, s, rand));

      const results = [];
      for (const parallelVerifyMin of [1, Number.POSITIVE_INFINITY]) {
        const journal = g.make({ parallelVerifyMin });
        await journal.open({ startChain: false });
        let last = -1;
        const fault = await journal.verifyTail((n) => {
          last = n;
        });
        if (parallelVerifyMin === 1 && journal.workerVerified > 0) parallel++;
        await journal.close();
        results.push({ fault, last });
      }
      expect(results[0], `round ${round}: kind ${kind} at ${s}`).toEqual(results[1]);
      if (kind === 8) expect(results[0]!.fault).toBeNull();
      // Damage that always breaks the chain (a flipped kind bit, a swap with itself, a cut
      // at a head mark's batch boundary or a stray key may leave it verifying).
      else if ([1, 3, 4, 6].includes(kind)) expect(results[0]!.fault, `round ${round}`).not.toBeNull();
    }
    // The worker did take part (it is not silently left out).
    expect(parallel).toBeGreaterThan(10);
  });
});
