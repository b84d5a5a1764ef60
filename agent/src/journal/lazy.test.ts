/**
 * Start-up verifies only the newest records (the head region); older unshipped ones are
 * verified by `read` before they are shipped. Damage there must still never be shipped:
 * it is quarantined, a new chain names the last good record, an integrity event is
 * sealed, and the events accepted since start-up are sealed again in the new chain.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '@sealtrail/telemetry';
import { afterEach, describe, expect, it } from 'vitest';
import { Checkpointer } from './checkpoint.js';
import { integrityEvent } from './events.js';
import {
  type IntegrityFinding,
  type Journal,
  type JournalRecord,
  type Position,
  recordKey,
} from './journal.js';
import { openWithRecovery } from './recovery.js';
import { fixture, withRawDb } from './testkit/fixture.js';
import { verifyJournal } from './verify.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A closed journal holding record 0 (chain start) and 20 events, seqs 0..20. */
async function filled() {
  const f = fixture();
  dirs.push(f.dataDir);
  const j = f.make();
  await j.open();
  await j.append({ events: Array.from({ length: 20 }, () => f.event()) });
  await j.close();
  return f;
}

type F = Awaited<ReturnType<typeof filled>>;

/** Opens as the agent does, verifying only the newest 3 records at open. */
async function start(f: F) {
  const made = openWithRecovery(
    () => f.make({ verifyOnOpen: 3, hooks: { integrity: (x) => integrityEvent(f.host, x) } }),
    null,
  );
  const { journal, findings } = await made;
  const found: IntegrityFinding[] = [];
  journal.on('integrity', (x) => found.push(x));
  return { journal, findings, found };
}

/** Reads everything the way the shipper does, batch after batch of `size`, from `after`. */
async function ship(j: Journal, size: number, after: Position | null = null): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  for (;;) {
    const batch = await j.read(after, size, Number.MAX_SAFE_INTEGER);
    if (batch.length === 0) return out;
    out.push(...batch);
    const last = batch[batch.length - 1]!;
    after = { chain: last.chain, seq: last.seq };
  }
}

const flipByteAt = (seq: bigint) => async (db: import('classic-level').ClassicLevel<Buffer, Buffer>) => {
  const v = (await db.get(recordKey(0, seq)))!;
  v[v.length - 10]! ^= 0x01;
  await db.put(recordKey(0, seq), v);
};

const cases = [
  { name: 'a flipped byte', tamper: flipByteAt(5n), seq: 5n, fault: 'record_hash_mismatch' },
  {
    name: 'a deleted record',
    tamper: (db: import('classic-level').ClassicLevel<Buffer, Buffer>) => db.del(recordKey(0, 4n)),
    seq: 4n,
    fault: 'seq_gap',
  },
  {
    name: 'two swapped records',
    tamper: async (db: import('classic-level').ClassicLevel<Buffer, Buffer>) => {
      const a = (await db.get(recordKey(0, 3n)))!;
      const b = (await db.get(recordKey(0, 6n)))!;
      await db.batch([
        { type: 'put', key: recordKey(0, 3n), value: b },
        { type: 'put', key: recordKey(0, 6n), value: a },
      ]);
    },
    seq: 3n,
    fault: 'record_hash_mismatch',
  },
];

describe('verification of older records as they are read', () => {
  it('an intact journal starts without reading its older records and reads back whole', async () => {
    const f = await filled();
    const { journal, findings, found } = await start(f);
    expect(findings).toEqual([]);
    expect(journal.verifying).toBe(true);
    const got = await ship(journal, 4);
    expect(got.map((r) => Number(r.seq))).toEqual(Array.from({ length: 21 }, (_, i) => i));
    expect(found).toEqual([]);
    expect(journal.verifying).toBe(false);
    await journal.close();
  });

  for (const c of cases) {
    it(`${c.name} below the head region: never shipped; quarantined, a new chain, events since start-up kept`, async () => {
      const f = await filled();
      await withRawDb(f.paths.journal, c.tamper);
      expect(await verifyJournal(f.dataDir)).toMatchObject({ ok: false, seq: String(c.seq), fault: c.fault });

      // Start-up does not see it (it is older than the region) and does not block.
      const { journal, findings, found } = await start(f);
      expect(findings).toEqual([]);
      const accepted = [f.event({ message: 'after start 1' }), f.event({ message: 'after start 2' })];
      await journal.append({ events: accepted });

      const got = await ship(journal, 2);
      // Only the good records before the damage left chain 0.
      expect(got.filter((r) => r.chain === 0).map((r) => r.seq)).toEqual(
        Array.from({ length: Number(c.seq) }, (_, i) => BigInt(i)),
      );
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({
        kind: 'corruption',
        attributes: { first_bad_seq: String(c.seq), fault: c.fault, resealed_records: 2 },
      });
      const meta = journal.chainMeta(1)!;
      expect(meta.reason).toBe('corruption');
      expect(meta.previous).toMatchObject({ last_seq: String(c.seq - 1n) });
      // Chain 1: its start, the integrity event, then the events accepted since start-up.
      const chain1 = got.filter((r) => r.chain === 1).map((r) => JSON.parse(r.eventBytes!.toString()));
      expect(chain1.map((e) => e.type)).toEqual([
        'agent.chain.start',
        'agent.journal.corruption',
        'app.test.event',
        'app.test.event',
      ]);
      expect(chain1.slice(2).map((e) => e.message)).toEqual(['after start 1', 'after start 2']);
      expect(journal.backlogRecords).toBe(Number(c.seq) + 4);
      await journal.append({ events: [f.event()] });
      await journal.close();

      const after = await verifyJournal(f.dataDir);
      expect(after).toMatchObject({ ok: true, records: Number(c.seq) + 5 });
      expect(after.quarantined).toBe(21 - Number(c.seq) - (c.fault === 'seq_gap' ? 1 : 0));
    });
  }

  it('damage inside the head region is found at open, naming the first bad seq', async () => {
    const f = await filled();
    await withRawDb(f.paths.journal, flipByteAt(19n));
    const { journal, findings } = await start(f);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ kind: 'corruption', attributes: { first_bad_seq: '19' } });
    expect(journal.verifying).toBe(false);
    await journal.close();
  });

  it('damage both below and inside the head region: open names the first one', async () => {
    const f = await filled();
    await withRawDb(f.paths.journal, async (db) => {
      await flipByteAt(2n)(db);
      await flipByteAt(19n)(db);
    });
    const { journal, findings } = await start(f);
    expect(findings[0]).toMatchObject({ attributes: { first_bad_seq: '2' } });
    await journal.close();
  });

  it('a reader that resumes past unchecked records still checks them first', async () => {
    const f = await filled();
    await withRawDb(f.paths.journal, flipByteAt(5n));
    const { journal, found } = await start(f);
    // As after a reconnect where the collector asks for records after seq 10.
    const got = await ship(journal, 100, { chain: 0, seq: 10n });
    expect(found.map((x) => x.attributes.first_bad_seq)).toEqual(['5']);
    expect(got.every((r) => r.chain === 1)).toBe(true);
    await journal.close();
  });

  it('records the collector acknowledged before they were checked are not checked any more', async () => {
    const f = await filled();
    await withRawDb(f.paths.journal, flipByteAt(5n));
    const { journal, found } = await start(f);
    // The collector already had seqs 0..10 (shipped before the byte flipped): it acks them.
    await journal.ack({ chain: 0, seq: 10n });
    const got = await ship(journal, 3, { chain: 0, seq: 10n });
    expect(got.map((r) => Number(r.seq))).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
    expect(found).toEqual([]);
    expect(journal.verifying).toBe(false);
    await journal.close();
  });
});

describe('a checkpoint signed while damage found by read starts a new chain', () => {
  it('is sealed only in the chain it names: the new head is signed again', async () => {
    const f = await filled();
    await withRawDb(f.paths.journal, flipByteAt(5n));
    let journal: Journal | null = null;
    let cp: Checkpointer | null = null;
    let during: Promise<void> | null = null;
    // The recovery's batch is about to be written: the old chain is still current, so the
    // checkpoint signs its head and is queued behind the recovery.
    const beforeWrite = () => {
      if (journal?.verifying && !during) during = cp!.checkpoint('test');
    };
    ({ journal } = await openWithRecovery(
      () =>
        f.make({
          verifyOnOpen: 3,
          hooks: { integrity: (x) => integrityEvent(f.host, x), beforeWrite },
        }),
      null,
    ));
    cp = new Checkpointer({
      journal,
      identity: f.identity,
      host: f.host,
      anchorFile: join(f.dataDir, 'anchor.json'),
      everyEvents: 1e9,
      everyMs: 1e9,
      idleMs: 1e9,
      log: createLogger('test', 'silent'),
    });
    await ship(journal, 4);
    expect(during).not.toBeNull();
    await during;
    const checkpoints = [];
    for await (const r of journal.records()) {
      const e = JSON.parse(r.eventBytes!.toString());
      if (e.type === 'agent.checkpoint')
        checkpoints.push({ sealedIn: journal.chainMeta(r.chain)!.chainId, e });
    }
    expect(checkpoints).toHaveLength(1);
    expect(checkpoints[0]!.e.attributes.chain_id).toBe(checkpoints[0]!.sealedIn);
    expect(checkpoints[0]!.sealedIn).toBe(journal.chainMeta(1)!.chainId);
    await journal.close();
    expect(await verifyJournal(f.dataDir)).toMatchObject({ ok: true });
  });

  it('an append for a chain that is no longer current writes nothing and says why', async () => {
    const f = await filled();
    await withRawDb(f.paths.journal, flipByteAt(5n));
    const { journal } = await start(f);
    await ship(journal, 4);
    expect(journal.head?.chain).toBe(1);
    const before = journal.head!.seq;
    await expect(journal.append({ events: [f.event()], forChain: 0 })).rejects.toMatchObject({
      code: 'ST_JOURNAL_CHAIN_MOVED',
    });
    expect(journal.head!.seq).toBe(before);
    await journal.append({ events: [f.event()], forChain: 1 });
    expect(journal.head!.seq).toBe(before + 1n);
    await journal.close();
  });
});
