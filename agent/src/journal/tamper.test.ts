/**
 * Damage to a stopped agent's journal: `verify` names the first bad seq, and
 * start-up quarantines the damage, starts a new chain naming the last good
 * record, seals an integrity event and keeps running.
 */
import { cpSync, rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../identity/identity.js';
import { readAnchor } from './checkpoint.js';
import { recordKey } from './journal.js';
import { openWithRecovery } from './recovery.js';
import { fixture, withRawDb } from './testkit/fixture.js';
import { verifyJournal } from './verify.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A closed journal holding record 0 (chain start) and `n` events, seqs 0..n. */
async function filled(n: number) {
  const f = fixture();
  dirs.push(f.dataDir);
  const j = f.make();
  await j.open();
  await j.append({ events: Array.from({ length: n }, () => f.event()) });
  await j.close();
  return f;
}

type Tamper = (db: import('classic-level').ClassicLevel<Buffer, Buffer>) => Promise<void>;

const cases: { name: string; tamper: Tamper; seq: string; fault: string }[] = [
  {
    name: 'one flipped byte in an event',
    tamper: async (db) => {
      const v = (await db.get(recordKey(0, 5n)))!;
      v[v.length - 10]! ^= 0x01;
      await db.put(recordKey(0, 5n), v);
    },
    seq: '5',
    fault: 'record_hash_mismatch',
  },
  {
    name: 'a deleted record',
    tamper: (db) => db.del(recordKey(0, 4n)),
    seq: '4',
    fault: 'seq_gap',
  },
  {
    name: 'two swapped records',
    tamper: async (db) => {
      const a = (await db.get(recordKey(0, 3n)))!;
      const b = (await db.get(recordKey(0, 6n)))!;
      await db.batch([
        { type: 'put', key: recordKey(0, 3n), value: b },
        { type: 'put', key: recordKey(0, 6n), value: a },
      ]);
    },
    seq: '3',
    fault: 'record_hash_mismatch',
  },
  {
    name: 'a truncated tail',
    tamper: async (db) => {
      await db.batch([8n, 9n, 10n].map((s) => ({ type: 'del' as const, key: recordKey(0, s) })));
    },
    seq: '8',
    fault: 'truncated',
  },
];

describe('journal tampering', () => {
  for (const c of cases) {
    it(`verify names the first bad seq for ${c.name}, and start-up quarantines and continues`, async () => {
      const f = await filled(10);
      expect((await verifyJournal(f.dataDir)).ok).toBe(true);
      await withRawDb(f.paths.journal, c.tamper);

      const report = await verifyJournal(f.dataDir);
      expect(report).toMatchObject({ ok: false, seq: c.seq, fault: c.fault });

      const { journal, findings } = await openWithRecovery(() => f.make(), null);
      expect(findings).toHaveLength(1);
      expect(findings[0]).toMatchObject({
        kind: 'corruption',
        attributes: { first_bad_seq: c.seq, fault: c.fault },
      });
      // A new chain names the last good record of the old one.
      expect(journal.head?.chain).toBe(1);
      const meta = journal.chainMeta(1)!;
      expect(meta.reason).toBe('corruption');
      expect(meta.previous).toMatchObject({ last_seq: String(BigInt(c.seq) - 1n) });
      await journal.append({ events: [f.event()] });
      await journal.close();

      const after = await verifyJournal(f.dataDir);
      expect(after.ok).toBe(true);
      // What was damaged is kept aside, never shipped; a cut tail leaves nothing to keep.
      if (c.fault === 'truncated') expect(after.quarantined).toBe(0);
      else expect(after.quarantined).toBeGreaterThan(0);
    });
  }

  it('a rollback to an older copy of the journal files is caught by the anchor', async () => {
    const f = await filled(5);
    const backup = `${f.dataDir}/journal-backup`;
    cpSync(f.paths.journal, backup, { recursive: true });
    const j = f.make();
    await j.open();
    await j.append({ events: [f.event(), f.event(), f.event()] });
    const head = j.head!;
    writeFileAtomic(
      f.paths.anchor,
      JSON.stringify({ chain_id: j.chainId, seq: String(head.seq), hash: head.hash.toString('hex') }),
    );
    await j.close();
    expect((await verifyJournal(f.dataDir)).ok).toBe(true);

    rmSync(f.paths.journal, { recursive: true });
    cpSync(backup, f.paths.journal, { recursive: true });
    const report = await verifyJournal(f.dataDir);
    expect(report).toMatchObject({ ok: false, fault: 'rollback', seq: '6' });

    const { journal, findings } = await openWithRecovery(() => f.make(), readAnchor(f.paths.anchor));
    expect(findings.map((x) => x.kind)).toEqual(['rollback']);
    expect(journal.chainMeta(journal.head!.chain)!.reason).toBe('rollback_detected');
    await journal.close();
  });

  it('an unreadable LevelDB is moved aside and a fresh journal starts', async () => {
    const f = await filled(3);
    // Destroy the manifest LevelDB needs to open.
    const { readdirSync, writeFileSync } = await import('node:fs');
    for (const name of readdirSync(f.paths.journal)) {
      if (name.startsWith('MANIFEST') || name === 'CURRENT')
        writeFileSync(`${f.paths.journal}/${name}`, 'garbage');
    }
    const { journal, findings } = await openWithRecovery(() => f.make(), null);
    expect(findings.map((x) => x.kind)).toEqual(['unreadable']);
    expect(String(findings[0]!.attributes.quarantined_dir)).toContain('.unreadable-');
    expect(journal.head?.seq).toBe(0n);
    await journal.close();
  });
});
