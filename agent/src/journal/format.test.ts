/**
 * The journal records the layout format it was written in ('mformat'), and an agent refuses
 * a journal from a newer one instead of misreading it (no head found → a new chain, the
 * backlog and the sources' positions silently abandoned). Refusing must not move it aside.
 */
import { existsSync, rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { JOURNAL_FORMAT } from './journal.js';
import { openWithRecovery } from './recovery.js';
import { fixture, withRawDb } from './testkit/fixture.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const FORMAT = Buffer.from('mformat');

async function written() {
  const f = fixture();
  dirs.push(f.dataDir);
  const j = f.make();
  await j.open();
  await j.append({ events: [f.event(), f.event()], positions: { auth: { offset: 7 } } });
  await j.close();
  return f;
}

const rowCount = (f: ReturnType<typeof fixture>) =>
  withRawDb(f.paths.journal, async (db) => (await db.keys().all()).length);

describe('journal format', () => {
  it('is written with the first batch', async () => {
    const f = await written();
    const stored = await withRawDb(f.paths.journal, (db) => db.get(FORMAT));
    expect(stored?.toString()).toBe(String(JOURNAL_FORMAT));
  });

  it('refuses a journal of a newer format, naming it, and leaves every key where it was', async () => {
    const f = await written();
    await withRawDb(f.paths.journal, (db) => db.put(FORMAT, Buffer.from(String(JOURNAL_FORMAT + 1))));
    const before = await rowCount(f);
    const message = new RegExp(
      `journal .* was written by a newer Sealtrail \\(journal format ${JOURNAL_FORMAT + 1}; this agent reads formats up to ${JOURNAL_FORMAT}\\): downgrading is not supported`,
    );
    await expect(f.make().open()).rejects.toMatchObject({
      code: 'ST_JOURNAL_FORMAT',
      message: expect.stringMatching(message),
    });
    // The agent's start-up path must not take it for an unreadable journal and move it aside.
    await expect(openWithRecovery(f.make, null)).rejects.toMatchObject({ code: 'ST_JOURNAL_FORMAT' });
    expect(existsSync(f.paths.journal)).toBe(true);
    expect(await rowCount(f)).toBe(before);
    // The lock was let go: once the newer agent's key is gone (as if it never ran), it opens.
    await withRawDb(f.paths.journal, (db) => db.del(FORMAT));
    const j = f.make();
    await j.open();
    expect(await j.position('auth')).toEqual({ offset: 7 });
    await j.close();
  });

  it('opens a journal written before the format key and adds the key at the next write', async () => {
    const f = await written();
    await withRawDb(f.paths.journal, (db) => db.del(FORMAT));
    const j = f.make();
    await j.open();
    expect(j.head?.seq).toBe(2n);
    await j.append({ events: [f.event()] });
    await j.close();
    const stored = await withRawDb(f.paths.journal, (db) => db.get(FORMAT));
    expect(stored?.toString()).toBe(String(JOURNAL_FORMAT));
  });
});
