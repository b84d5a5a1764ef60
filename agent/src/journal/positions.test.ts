/**
 * Source positions ride in head marks: every mark carries the latest position of every
 * source, no fixed key is rewritten per batch, positions survive acks that delete the marks
 * that first carried them, and journals that kept positions under 'p' keys still open.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { headMarkKey } from './layout.js';
import { fixture, withRawDb } from './testkit/fixture.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function opened() {
  const f = fixture();
  dirs.push(f.dataDir);
  const j = f.make();
  await j.open();
  return { f, j };
}

type F = ReturnType<typeof fixture>;

/** A closed journal's 'p' keys, its newest 'r' row, and that row (the newest head mark) as JSON. */
async function onDisk(f: F) {
  return withRawDb(f.paths.journal, async (db) => {
    const p = await db.keys({ gte: Buffer.from('p'), lt: Buffer.from('q') }).all();
    const [last] = await db
      .iterator({ gte: Buffer.from('r'), lt: Buffer.from('s'), reverse: true, limit: 1 })
      .all();
    return { pKeys: p.map((k) => k.toString()), newest: last, mark: JSON.parse(last![1].toString()) };
  });
}

describe('journal positions', () => {
  it('writes positions into the head mark, never under a fixed key, and reads them back', async () => {
    const { f, j } = await opened();
    await j.append({ events: [f.event()], positions: { auth: { offset: 10 } } });
    await j.append({ events: [f.event(), f.event()], positions: { fim: { baseline: 'complete' } } });
    // A position-only append rewrites the head's own mark (the newest key).
    await j.append({ events: [], positions: { auth: { offset: 20 } } });
    const head = j.head!;
    await j.close();
    const disk = await onDisk(f);
    expect(disk.pKeys).toEqual([]);
    expect(disk.newest![0].equals(headMarkKey(head.chain, head.seq))).toBe(true);
    expect(disk.mark).toMatchObject({
      seq: '3',
      records: 4,
      positions: { auth: { offset: 20 }, fim: { baseline: 'complete' } },
    });
    const j2 = f.make();
    await j2.open();
    expect(await j2.position('auth')).toEqual({ offset: 20 });
    expect(await j2.position('fim')).toEqual({ baseline: 'complete' });
    expect(await j2.position('none')).toBeUndefined();
    await j2.close();
  });

  it('keeps a position its source wrote once after acks delete every mark that carried it', async () => {
    const { f, j } = await opened();
    await j.append({ events: [f.event()], positions: { inventory: { at: 1 } } });
    for (let i = 0; i < 5; i++) await j.append({ events: [f.event()], positions: { auth: { offset: i } } });
    await j.ack({ chain: 0, seq: j.head!.seq });
    await j.close();
    await withRawDb(f.paths.journal, async (db) => {
      // Only the head's own mark is left in the record range: it carries both.
      const keys = await db.keys({ gte: Buffer.from('r'), lt: Buffer.from('s') }).all();
      expect(keys.length).toBe(1);
    });
    const j2 = f.make();
    await j2.open();
    expect(await j2.position('inventory')).toEqual({ at: 1 });
    expect(await j2.position('auth')).toEqual({ offset: 4 });
    await j2.close();
  });

  it("opens a journal with positions under 'p' keys, and moves them into the next mark", async () => {
    const { f, j } = await opened();
    await j.append({ events: [f.event()] });
    await j.close();
    // Rewrite it as the old layout had it: positions under 'p' keys, marks without `positions`.
    await withRawDb(f.paths.journal, async (db) => {
      const marks = (await db.iterator({ gte: Buffer.from('r'), lt: Buffer.from('s') }).all()).filter(
        ([k]) => k.length === 14,
      );
      await db.batch([
        ...marks.map(([key, value]) => {
          const { positions: _, ...old } = JSON.parse(value.toString());
          return { type: 'put' as const, key, value: Buffer.from(JSON.stringify(old)) };
        }),
        { type: 'put', key: Buffer.from('pauth'), value: Buffer.from('{"offset":7}') },
        { type: 'put', key: Buffer.from('pjournald'), value: Buffer.from('"cursor-1"') },
      ]);
    });
    const j2 = f.make();
    await j2.open();
    expect(await j2.position('auth')).toEqual({ offset: 7 });
    expect(await j2.position('journald')).toBe('cursor-1');
    // The next batch (moving one of them) writes both into its mark and drops the 'p' keys.
    await j2.append({ events: [f.event()], positions: { auth: { offset: 9 } } });
    await j2.close();
    const disk = await onDisk(f);
    expect(disk.pKeys).toEqual([]);
    expect(disk.mark.positions).toEqual({ auth: { offset: 9 }, journald: 'cursor-1' });
    const j3 = f.make();
    await j3.open();
    expect(await j3.position('auth')).toEqual({ offset: 9 });
    expect(await j3.position('journald')).toBe('cursor-1');
    await j3.close();
  });

  it("keeps positions under 'p' keys when damage leaves no record to carry a mark", async () => {
    const { f, j } = await opened();
    await j.append({ events: [f.event(), f.event()], positions: { auth: { offset: 5 } } });
    await j.close();
    // Record 0 damaged: everything is quarantined and no head is left until the new chain starts.
    await withRawDb(f.paths.journal, async (db) => {
      const [[key, value]] = await db.iterator({ gte: Buffer.from('r'), limit: 1 }).all();
      value[40] ^= 1;
      await db.put(key!, value!);
    });
    const j2 = f.make();
    await j2.open({ startChain: false });
    const fault = await j2.verifyOnOpen();
    expect(fault?.position.seq).toBe(0n);
    await j2.quarantineFrom(fault!.position);
    await j2.resetHead(fault!.lastGood);
    expect(j2.head).toBeNull();
    await j2.close();
    expect((await withRawDb(f.paths.journal, (db) => db.get(Buffer.from('pauth'))))?.toString()).toBe(
      '{"offset":5}',
    );
    // Reopened there (a crash before the new chain started), then the new chain: its record 0's
    // mark carries the position and the 'p' key goes.
    const j3 = f.make();
    await j3.open({ startChain: false });
    expect(await j3.position('auth')).toEqual({ offset: 5 });
    await j3.startChain({ reason: 'corruption' });
    await j3.close();
    const disk = await onDisk(f);
    expect(disk.pKeys).toEqual([]);
    expect(disk.mark).toMatchObject({ chain: 1, seq: '0', positions: { auth: { offset: 5 } } });
  });

  it('does not move a position when its batch fails', async () => {
    const f = fixture();
    dirs.push(f.dataDir);
    let fail = false;
    const j = f.make({
      hooks: {
        beforeWrite: () => {
          if (fail) throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
        },
      },
    });
    await j.open();
    await j.append({ events: [f.event()], positions: { auth: { offset: 1 } } });
    fail = true;
    await expect(j.append({ events: [f.event()], positions: { auth: { offset: 2 } } })).rejects.toMatchObject(
      {
        code: 'ST_JOURNAL_WRITE',
      },
    );
    expect(await j.position('auth')).toEqual({ offset: 1 });
    fail = false;
    await j.append({ events: [f.event()] });
    await j.close();
    expect((await onDisk(f)).mark.positions).toEqual({ auth: { offset: 1 } });
  });
});
