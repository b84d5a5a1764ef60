/**
 * A bounded journal: producers are held back when it is full (`block`), or the
 * oldest unshipped payloads are dropped with a sealed gap event (`drop_oldest`);
 * a failing disk (injected ENOSPC) loses nothing already accepted and the
 * journal recovers when space returns; acknowledged records give their disk back.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { diskUsage } from '../status.js';
import { fixture } from './testkit/fixture.js';
import { verifyJournal } from './verify.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(limits: Parameters<ReturnType<typeof fixture>['make']>[0] = {}) {
  const f = fixture();
  dirs.push(f.dataDir);
  return { f, journal: f.make(limits) };
}

describe('journal bounds', () => {
  it('on_full: block holds producers back until an ack makes room, losing nothing', async () => {
    const { f, journal } = setup({ limits: { maxRecords: 10, onFull: 'block' } });
    await journal.open();
    await journal.append({ events: Array.from({ length: 9 }, () => f.event()) }); // 10 with record 0
    expect(journal.fill).toBe(1);
    let done = false;
    const held = journal.append({ events: [f.event()] }).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false);
    await journal.ack({ chain: 0, seq: 4n });
    const range = await held;
    expect(range).toEqual({ first: 10n, last: 10n });
    expect(journal.backlogRecords).toBe(6);
    await journal.close();
    expect((await verifyJournal(f.dataDir)).ok).toBe(true);
  });

  it('on_full: drop_oldest erases the oldest payloads, seals a gap event, and the chain still verifies', async () => {
    const { f, journal } = setup({ limits: { maxBytes: 100_000, onFull: 'drop_oldest' } });
    await journal.open();
    const dropped: number[] = [];
    journal.on('dropped', (n) => dropped.push(n));
    for (let i = 0; i < 400; i++)
      await journal.append({ events: [f.event({ attributes: { pad: 'x'.repeat(300) } })] });
    expect(dropped.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(journal.backlogBytes).toBeLessThanOrEqual(100_000);
    const all = [];
    for await (const r of journal.records()) all.push(r);
    // Every seq is still there: some as hashes only, and the gap events naming them.
    expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => BigInt(i)));
    const erased = all.filter((r) => !r.eventBytes);
    expect(erased.length).toBe(dropped.reduce((a, b) => a + b, 0));
    const gaps = all.filter(
      (r) => r.eventBytes && JSON.parse(r.eventBytes.toString()).type === 'agent.journal.gap',
    );
    // Gap events (like every agent record) are never dropped themselves.
    expect(gaps.length).toBe(dropped.length);
    const start = JSON.parse(all[0]!.eventBytes!.toString());
    expect(start.type).toBe('agent.chain.start');
    const first = JSON.parse(gaps[0]!.eventBytes!.toString());
    expect(first.attributes).toMatchObject({ from_seq: String(erased[0]!.seq), reason: 'journal_full' });
    await journal.close();
    expect((await verifyJournal(f.dataDir)).ok).toBe(true);
  });

  it('an injected ENOSPC fails the append retryably, keeps what was accepted, and recovers', async () => {
    let full = false;
    const { f, journal } = setup({
      hooks: {
        beforeWrite: () => {
          if (full) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        },
      },
    });
    await journal.open();
    await journal.append({ events: [f.event(), f.event()] });
    full = true;
    const err = await journal.append({ events: [f.event()] }).catch((e) => e);
    expect(err).toMatchObject({ code: 'ST_JOURNAL_WRITE', retryable: true });
    expect(String(err.message)).toContain('ENOSPC');
    expect(journal.head?.seq).toBe(2n);
    full = false;
    expect(await journal.append({ events: [f.event()] })).toEqual({ first: 3n, last: 3n });
    await journal.close();
    const report = await verifyJournal(f.dataDir);
    expect(report).toMatchObject({ ok: true, head_seq: '3', records: 4 });
  });

  it('disk use returns near zero once everything is acknowledged', async () => {
    const { f, journal } = setup();
    await journal.open();
    for (let i = 0; i < 20; i++) {
      // Random padding: LevelDB compresses, and repeated characters would hide the disk use.
      const events = Array.from({ length: 500 }, () =>
        f.event({ attributes: { pad: randomBytes(200).toString('hex') } }),
      );
      await journal.append({ events });
    }
    const full = await diskUsage(f.paths.journal);
    await journal.ack(journal.head!);
    await journal.compact();
    await journal.close();
    const drained = await diskUsage(f.paths.journal);
    expect(full).toBeGreaterThan(4_000_000);
    expect(drained).toBeLessThan(full / 10);
    console.log(`journal disk use: ${full} bytes with 10,001 records, ${drained} after ack + compaction`);
  });
});
