import { createHash, hash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uuidBytes } from '@sealtrail/chain';
import { newEventId } from '@sealtrail/event';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listDeadLetters } from '../exporters/deadletter.js';
import { mulberry32 } from '../testkit/random.js';
import {
  type AgentState,
  eventIdKey,
  type IncomingRecord,
  newAgentState,
  SPOOL_FORMAT,
  Spool,
} from './spool.js';
import { verifySpool } from './verify.js';

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sealtrail-spool-'));
  spool = new Spool(join(dir, 'spool'));
  await spool.open();
});
afterEach(async () => {
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

function agentState(agentId = randomUUID()): AgentState {
  return newAgentState(agentId, '', 'h', '');
}

/** A stand-in record hash that names its history, so two versions of a seq differ. */
const hashOf = (chainId: string, seq: bigint, version: number) =>
  createHash('sha256').update(`${chainId}/${seq}/${version}`).digest();

function records(
  chainId: string,
  from: bigint,
  to: bigint,
  version = 0,
  eventId = newEventId,
): IncomingRecord[] {
  const out: IncomingRecord[] = [];
  for (let seq = from; seq <= to; seq++) {
    out.push({
      chainId,
      seq,
      recordHash: hashOf(chainId, seq, version),
      eventBytes: Buffer.from(`{"seq":${seq}}`),
      eventId: eventId(),
    });
  }
  return out;
}

async function storedRecords() {
  return spool.read(-1n, 1_000_000);
}

describe('spool: (agent, chain, seq) → record hash', () => {
  it('finds every committed seq through the batch ranges, and nothing outside them', async () => {
    const a = agentState();
    const chain = randomUUID();
    await spool.commit(a, records(chain, 0n, 2n));
    await spool.commit(a, records(chain, 3n, 9n));
    for (let seq = 0n; seq <= 9n; seq++) {
      expect(await spool.recordHashAt(a.agent_id, chain, seq)).toEqual(hashOf(chain, seq, 0));
    }
    expect(await spool.recordHashAt(a.agent_id, chain, 10n)).toBeUndefined();
    expect(await spool.recordHashAt(a.agent_id, randomUUID(), 1n)).toBeUndefined();
    expect(await spool.recordHashAt(randomUUID(), chain, 1n)).toBeUndefined();
  });

  it('keeps ranges of other agents and chains apart, however their records interleave in one group', async () => {
    const a = agentState();
    const b = agentState();
    const [ca, cb] = [randomUUID(), randomUUID()];
    await Promise.all([
      spool.commit(a, records(ca, 0n, 4n)),
      spool.commit(b, records(cb, 0n, 2n)),
      spool.commit(a, records(ca, 5n, 7n)),
      spool.commit(b, records(cb, 3n, 3n)),
    ]);
    for (let seq = 0n; seq <= 7n; seq++)
      expect(await spool.recordHashAt(a.agent_id, ca, seq)).toEqual(hashOf(ca, seq, 0));
    for (let seq = 0n; seq <= 3n; seq++)
      expect(await spool.recordHashAt(b.agent_id, cb, seq)).toEqual(hashOf(cb, seq, 0));
    expect(await spool.recordHashAt(a.agent_id, cb, 0n)).toBeUndefined();
  });

  it('after a rewind (accept-chain), the newer history wins from where it starts on, also after a restart', async () => {
    const a = agentState();
    const chain = randomUUID();
    await spool.commit(a, records(chain, 0n, 2n));
    await spool.commit(a, records(chain, 3n, 5n));
    await spool.commit(a, records(chain, 6n, 9n));
    // The operator rewound the head to seq 2: the agent's version 1 follows, in other batch bounds.
    await spool.commit(a, records(chain, 3n, 3n, 1));
    await spool.commit(a, records(chain, 4n, 12n, 1));
    const check = async () => {
      for (let seq = 0n; seq <= 2n; seq++)
        expect(await spool.recordHashAt(a.agent_id, chain, seq)).toEqual(hashOf(chain, seq, 0));
      for (let seq = 3n; seq <= 12n; seq++)
        expect(await spool.recordHashAt(a.agent_id, chain, seq)).toEqual(hashOf(chain, seq, 1));
    };
    await check();
    await spool.close();
    spool = new Spool(join(dir, 'spool'));
    await spool.open();
    await check();
    // The rewound records themselves stay in the spool, as evidence.
    expect((await storedRecords()).map((r) => r.seq)).toEqual([
      ...[0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n],
      ...[3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n, 11n, 12n],
    ]);
  });

  it('agrees with a model over random batches and rewinds', async () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const a = agentState();
    const chain = randomUUID();
    const model = new Map<bigint, Buffer>();
    let next = 0n;
    let version = 0;
    for (let step = 0; step < 60; step++) {
      if (next > 0n && rand(6) === 0) {
        next = BigInt(rand(Number(next))); // rewind the head to next - 1
        version++;
      }
      const n = BigInt(1 + rand(7));
      const batch = records(chain, next, next + n - 1n, version);
      await spool.commit(a, batch);
      for (const r of batch) model.set(r.seq, Buffer.from(r.recordHash));
      next += n;
      // Every seq up to the head maps to the newest history.
      for (const [seq, hash] of model) {
        if (seq >= next) continue;
        expect(await spool.recordHashAt(a.agent_id, chain, seq)).toEqual(hash);
      }
    }
  });

  it('reads a spool written with one hash key per seq (the layout before ranges)', async () => {
    const agentId = randomUUID();
    const chain = randomUUID();
    await spool.close();
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'spool'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    const legacyKey = (seq: bigint) => {
      const s = Buffer.alloc(8);
      s.writeBigUInt64BE(seq);
      return Buffer.concat([Buffer.from('h'), uuidBytes(agentId), uuidBytes(chain), s]);
    };
    await db.batch([
      ...[0n, 1n, 2n].map((seq) => ({
        type: 'put' as const,
        key: legacyKey(seq),
        value: hashOf(chain, seq, 0),
      })),
      { type: 'del', key: Buffer.from('mformat') }, // that layout had no format key
    ]);
    await db.close();
    spool = new Spool(join(dir, 'spool'));
    await spool.open();
    await spool.commit(agentState(agentId), records(chain, 3n, 5n));
    for (let seq = 0n; seq <= 5n; seq++)
      expect(await spool.recordHashAt(agentId, chain, seq)).toEqual(hashOf(chain, seq, 0));
    expect(await spool.recordHashAt(agentId, chain, 6n)).toBeUndefined();
  });
});

describe('spool: event-id dedupe across group commits', () => {
  it('marks a second event with a stored id, whether its group was looked up during the first one’s fsync or later', async () => {
    const shared = newEventId();
    const [a, b, c] = [agentState(), agentState(), agentState()];
    const [ca, cb, cc] = [randomUUID(), randomUUID(), randomUUID()];
    // The first commit starts a group at once; the next ones queue behind it and are looked
    // up while it is being written.
    const results = await Promise.all([
      spool.commit(
        a,
        records(ca, 0n, 0n, 0, () => shared),
      ),
      spool.commit(
        b,
        records(cb, 0n, 1n, 0, () => shared),
      ),
      spool.commit(c, records(cc, 0n, 0n)),
    ]);
    expect(results.map((r) => r.duplicateIds)).toEqual([0, 2, 0]);
    const later = await spool.commit(
      agentState(),
      records(randomUUID(), 0n, 0n, 0, () => shared),
    );
    expect(later.duplicateIds).toBe(1);
    const stored = await storedRecords();
    expect(stored.map((r) => r.duplicateId)).toEqual([false, true, true, false, true]);
    expect(new Set(stored.map((r) => r.offset)).size).toBe(5);
    expect(b.duplicates).toBe(2);
  });

  it('never marks distinct ids as duplicates under many concurrent streams', async () => {
    const commits = [];
    for (let i = 0; i < 20; i++) {
      const a = agentState();
      const chain = randomUUID();
      for (let j = 0; j < 5; j++)
        commits.push(spool.commit(a, records(chain, BigInt(j * 10), BigInt(j * 10 + 9))));
    }
    const results = await Promise.all(commits);
    expect(results.every((r) => r.duplicateIds === 0)).toBe(true);
    const stored = await storedRecords();
    expect(stored).toHaveLength(1000);
    expect(stored.map((r) => r.offset)).toEqual(stored.map((_, i) => BigInt(i)));
    expect(spool.headOffset).toBe(999n);
  });
  it('agrees with a model of stored ids for ids in any order (new, re-sent, random v4), across reopens', async () => {
    // Ids that sort after every stored one are not looked up: this checks that skipping
    // them never misses a duplicate, whatever order ids come in.
    const rand = mulberry32(4);
    const stored = new Set<string>();
    const all: string[] = [];
    for (let step = 0; step < 40; step++) {
      const commits = [];
      const expected: number[] = [];
      const inGroup = new Set<string>();
      for (let c = 1 + Math.floor(rand() * 3); c > 0; c--) {
        const ids: string[] = [];
        for (let n = 1 + Math.floor(rand() * 20); n > 0; n--) {
          const r = rand();
          ids.push(
            r < 0.5 || all.length === 0
              ? newEventId()
              : r < 0.7
                ? randomUUID()
                : all[Math.floor(rand() * all.length)]!,
          );
        }
        let dups = 0;
        for (const id of ids) {
          if (stored.has(id) || inGroup.has(id)) dups++;
          else inGroup.add(id);
          all.push(id);
        }
        expected.push(dups);
        let i = 0;
        commits.push(
          spool.commit(
            agentState(),
            records(randomUUID(), 0n, BigInt(ids.length - 1), 0, () => ids[i++]!),
          ),
        );
      }
      expect((await Promise.all(commits)).map((r) => r.duplicateIds)).toEqual(expected);
      for (const id of inGroup) stored.add(id);
      if (rand() < 0.2) {
        await spool.close();
        spool = new Spool(join(dir, 'spool'));
        await spool.open();
      }
    }
  });
});

describe('spool: event-id keys', () => {
  it('parses ids as uuidBytes does, takes either case as the same id, and refuses what is not a UUID', async () => {
    for (let i = 0; i < 1000; i++) {
      const id = i % 2 ? newEventId() : randomUUID();
      expect(eventIdKey(id)).toEqual(Buffer.concat([Buffer.from('~i'), uuidBytes(id)]));
      expect(eventIdKey(id.toUpperCase())).toEqual(eventIdKey(id));
    }
    // One character of a UUID replaced: what the reference accepts, and nothing else, is parsed the same.
    const alphabet = '0123456789abcdefABCDEFgG-x\u00e9\u0130\u{1f600} ';
    for (let i = 0; i < 5000; i++) {
      const chars = [...randomUUID()];
      chars[i % 36] = [...alphabet][Math.floor(Math.random() * [...alphabet].length)]!;
      const id = chars.join('');
      let want: Buffer | 'throws';
      try {
        want = Buffer.concat([Buffer.from('~i'), uuidBytes(id)]);
      } catch {
        want = 'throws';
      }
      if (want === 'throws') expect(() => eventIdKey(id), id).toThrow(/not a UUID/);
      else expect(eventIdKey(id), id).toEqual(want);
    }
    for (const bad of [
      '',
      'x'.repeat(36),
      '01936c2e-8a00-7000-8000-00000000000g',
      '01936c2e8a00-7000-8000-0000000000001',
    ])
      expect(() => eventIdKey(bad)).toThrow(/not a UUID/);
    const id = newEventId();
    await spool.commit(
      agentState(),
      records(randomUUID(), 0n, 0n, 0, () => id),
    );
    const again = await spool.commit(
      agentState(),
      records(randomUUID(), 0n, 0n, 0, () => id.toUpperCase()),
    );
    expect(again.duplicateIds).toBe(1);
  });

  it('refuses a commit whose event id is not a UUID, and keeps serving the next ones', async () => {
    const a = agentState();
    await expect(
      spool.commit(
        a,
        records(randomUUID(), 0n, 0n, 0, () => 'not-an-id'),
      ),
    ).rejects.toThrow(/not a UUID/);
    expect((await spool.commit(a, records(randomUUID(), 0n, 1n))).duplicateIds).toBe(0);
    expect(await storedRecords()).toHaveLength(2);
  });
});

describe('spool: the layout before per-commit keys moved above the records', () => {
  /** Every key in the spool, by its first byte (the '~' ones by their first two). */
  async function prefixes(): Promise<Map<string, number>> {
    await spool.close();
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'spool'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    const out = new Map<string, number>();
    for await (const k of db.keys()) {
      const p = k.subarray(0, k[0] === 0x7e ? 2 : 1).toString('latin1');
      out.set(p === 'm' ? k.toString('latin1') : p, (out.get(p) ?? 0) + 1);
    }
    await db.close();
    spool = new Spool(join(dir, 'spool'));
    await spool.open();
    return out;
  }

  /**
   * Rewrites the spool into the older layout, as that version wrote it: '~a', '~h', '~i' keys
   * back under 'a', 'h', 'i', and the next offset in 'mnext_offset'. `keep` leaves some keys
   * where they are (a migration a crash interrupted).
   */
  async function toLegacy(keep: (k: Buffer) => boolean = () => false): Promise<void> {
    const head = spool.headOffset;
    await spool.close();
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'spool'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    await db.open();
    const batch = db.batch();
    for await (const [k, v] of db.iterator({ gte: Buffer.from('~'), lt: Buffer.from('\x7f') })) {
      if (keep(k)) continue;
      batch.del(k);
      batch.put(k.subarray(1), v);
    }
    const next = Buffer.alloc(8);
    next.writeBigUInt64BE(head + 1n);
    batch.put(Buffer.from('mnext_offset'), next);
    batch.del(Buffer.from('mformat')); // format 1 had no format key
    await batch.write();
    await db.close();
    spool = new Spool(join(dir, 'spool'));
    await spool.open();
  }

  async function fill() {
    const a = agentState();
    const chain = randomUUID();
    const ids = Array.from({ length: 30 }, () => newEventId());
    let i = 0;
    await spool.commit(
      { ...a, chain_id: chain, seq: '9', records: 10 },
      records(chain, 0n, 9n, 0, () => ids[i++]!),
    );
    const b = agentState();
    await spool.commit(
      { ...a, chain_id: chain, seq: '29', records: 30 },
      records(chain, 10n, 29n, 0, () => ids[i++]!),
    );
    await spool.commit({ ...b, seq: '0' }, records(randomUUID(), 0n, 0n));
    return { a, b, chain, ids };
  }

  async function expectMigrated(f: Awaited<ReturnType<typeof fill>>) {
    const { a, b, chain, ids } = f;
    expect(spool.headOffset).toBe(30n);
    expect((await spool.getAgent(a.agent_id))?.seq).toBe('29');
    expect((await spool.getAgent(b.agent_id))?.seq).toBe('0');
    const listed = [];
    for await (const s of spool.agents()) listed.push(s.agent_id);
    expect(listed.sort()).toEqual([a.agent_id, b.agent_id].sort());
    for (let seq = 0n; seq <= 29n; seq++)
      expect(await spool.recordHashAt(a.agent_id, chain, seq)).toEqual(hashOf(chain, seq, 0));
    // Stored ids are still known: the same ids again are duplicates, new ones are not.
    let i = 0;
    const again = await spool.commit(
      agentState(),
      records(randomUUID(), 0n, 29n, 0, () => ids[i++]!),
    );
    expect(again.duplicateIds).toBe(30);
    expect((await spool.commit(agentState(), records(randomUUID(), 0n, 4n))).duplicateIds).toBe(0);
    // New records go on after the old head.
    expect((await storedRecords()).map((r) => r.offset)).toEqual(
      Array.from({ length: 66 }, (_, n) => BigInt(n)),
    );
    const keys = await prefixes();
    for (const old of ['a', 'h', 'i']) expect(keys.has(old), old).toBe(false);
    expect(keys.get('mformat')).toBe(1);
    await expectTripwire();
    expect(keys.get('~i')).toBe(31 + 5); // the duplicates add none
    expect(keys.get('~a')).toBe(4);
    expect(spool.migrated).toBe(0);
  }

  it('moves a spool in the older layout to this one on open, and it keeps working', async () => {
    const f = await fill();
    await toLegacy();
    // 2 agents, 2 + 1 ranges, 31 ids and the next offset.
    expect(spool.migrated).toBe(2 + 3 + 31 + 1);
    await expectMigrated(f);
  });

  it('finishes a migration a crash interrupted', async () => {
    const f = await fill();
    // Half the ids and one agent were moved already when the collector died.
    let n = 0;
    await toLegacy(
      (k) =>
        (k[1] === 0x69 && n++ % 2 === 0) ||
        k.equals(Buffer.concat([Buffer.from('~a'), uuidBytes(f.a.agent_id)])),
    );
    expect(spool.migrated).toBeGreaterThan(0);
    await expectMigrated(f);
  });

  it('moves more keys than one migration batch holds', async () => {
    const a = agentState();
    const chain = randomUUID();
    for (let seq = 0n; seq < 25_000n; seq += 5_000n) await spool.commit(a, records(chain, seq, seq + 4_999n));
    await toLegacy();
    expect(spool.migrated).toBe(25_000 + 1 + 5 + 1);
    expect(spool.headOffset).toBe(24_999n);
    const keys = await prefixes();
    expect(keys.get('~i')).toBe(25_000);
    expect(keys.has('i')).toBe(false);
  });
});

/** Runs `fn` on the spool's LevelDB opened directly, the spool closed (`reopen` opens it again). */
async function raw<T>(fn: (db: ClassicLevel<Buffer, Buffer>) => Promise<T>): Promise<T> {
  await spool.close();
  const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'spool'), {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
  });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** A new Spool on the same directory (a ClassicLevel opens itself once constructed). */
async function reopen(opts?: { readOnly?: boolean }): Promise<void> {
  await spool.close();
  spool = new Spool(join(dir, 'spool'));
  await spool.open(opts);
}

async function allKeys(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await raw(async (db) => {
    for await (const [k, v] of db.iterator()) out.set(k.toString('hex'), v.toString('hex'));
  });
  return out;
}

/** What a format-1 collector did on open (`next ? next.readBigUInt64BE(0) : 0n`) must throw. */
async function expectTripwire() {
  const next = await raw((db) => db.get(Buffer.from('mnext_offset')));
  expect(next).toBeDefined();
  expect(() => next!.readBigUInt64BE(0)).toThrow();
  await reopen();
}

describe('spool: format guard', () => {
  it('a new spool is written in this format, with the tripwire for format-1 collectors', async () => {
    const f = await raw((db) => db.get(Buffer.from('mformat')));
    expect(f?.readUInt32BE(0)).toBe(SPOOL_FORMAT);
    await expectTripwire();
  });

  it('refuses a newer format, naming the path and both formats, and changes nothing', async () => {
    await spool.commit(agentState(), records(randomUUID(), 0n, 2n));
    await raw((db) => db.put(Buffer.from('mformat'), Buffer.from([0, 0, 0, SPOOL_FORMAT + 1])));
    const before = await allKeys();
    for (const readOnly of [false, true]) {
      const err = await reopen({ readOnly }).catch((e: Error) => e);
      expect(err).toMatchObject({ code: 'ST_SPOOL_FORMAT' });
      expect((err as Error).message).toBe(
        `spool ${join(dir, 'spool')} is in format ${SPOOL_FORMAT + 1}, this collector supports format ${SPOOL_FORMAT}: ` +
          'it was written by a newer Sealtrail; downgrade is not supported (run the newer version)',
      );
    }
    expect(await allKeys()).toEqual(before);
  });

  it('a format-2 spool from before the format key: read-only opens read it as it is, a writer adds the key', async () => {
    const a = agentState();
    await spool.commit({ ...a, seq: '4' }, records(randomUUID(), 0n, 4n));
    await raw(async (db) => {
      await db.del(Buffer.from('mformat'));
      await db.del(Buffer.from('mnext_offset'));
    });
    const before = await allKeys();
    await reopen({ readOnly: true });
    expect(spool.headOffset).toBe(4n);
    expect((await spool.getAgent(a.agent_id))?.seq).toBe('4');
    expect(await allKeys()).toEqual(before);
    await reopen();
    expect(spool.migrated).toBe(0);
    expect((await allKeys()).get(Buffer.from('mformat').toString('hex'))).toBe(`0000000${SPOOL_FORMAT}`);
  });

  it('a read-only open refuses every write and leaves the spool as it was', async () => {
    const a = agentState();
    await spool.commit({ ...a, seq: '2' }, records(randomUUID(), 0n, 2n));
    await reopen({ readOnly: true });
    const before = await allKeys();
    const writes: [string, () => Promise<unknown>][] = [
      ['commit', () => spool.commit({ ...a, seq: '5' }, records(randomUUID(), 3n, 5n))],
      ['putAgent', () => spool.putAgent(a)],
      ['commitExport', () => spool.commitExport({ exporter: 'file', cursorKey: 'file', cursor: 2 })],
      ['queueReplay', () => spool.queueReplay('file')],
      ['putCursor', () => spool.putCursor('file', 1)],
      ['enroll', () => spool.enroll(agentState(), 'token-1')],
      ['pruneEventIds', () => spool.pruneEventIds()],
      ['addViolation', () => spool.addViolation({ fault: 'test' })],
    ];
    for (const [name, write] of writes)
      await expect(write(), name).rejects.toMatchObject({ code: 'ST_SPOOL_READ_ONLY' });
    expect(await allKeys()).toEqual(before);
  });

  it('read-only opens refuse a format-1 spool (start the collector once) and leave it as it was', async () => {
    await spool.commit(agentState(), records(randomUUID(), 0n, 2n));
    // Format 1 as far as the guard looks: an agent key under 'a', an 8-byte next offset, no format key.
    await raw(async (db) => {
      const [k, v] = (
        await db.iterator({ gte: Buffer.from('~a'), lt: Buffer.from('~b'), limit: 1 }).all()
      )[0]!;
      await db.batch([
        { type: 'del', key: k },
        { type: 'put', key: k.subarray(1), value: v },
        { type: 'del', key: Buffer.from('mformat') },
        { type: 'put', key: Buffer.from('mnext_offset'), value: Buffer.alloc(8) },
      ]);
    });
    const before = await allKeys();
    const err = await reopen({ readOnly: true }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'ST_SPOOL_FORMAT' });
    expect((err as Error).message).toContain(`spool ${join(dir, 'spool')} is in format 1`);
    expect((err as Error).message).toContain('start the collector once (`sealtrail-collector run`)');
    // The CLI's read-only paths say the same.
    await expect(verifySpool(dir)).rejects.toThrow('is in format 1');
    await expect(listDeadLetters(dir)).rejects.toThrow('is in format 1');
    expect(await allKeys()).toEqual(before);
    // A writer migrates it (the agent key and the next offset), and then verify reads it.
    await reopen();
    expect(spool.migrated).toBe(2);
    await spool.close();
    // (Its stand-in hashes do not chain: the point is that it opens and finds the moved agent.)
    const report = await verifySpool(dir);
    expect(report.agents.map((r) => r.agent_id)).toHaveLength(1);
  });
});

describe('spool: records in blocks (format 3)', () => {
  /** Rewrites every block as one record per key, the way formats 1 and 2 stored records. */
  async function unblock(): Promise<void> {
    await raw(async (db) => {
      const batch = db.batch();
      for await (const [k, v] of db.iterator({ gte: Buffer.from('s'), lt: Buffer.from('t') })) {
        if (v[0] !== 2) continue;
        const first = k.readBigUInt64BE(1);
        batch.del(k);
        let at = 5;
        for (let i = 0; i < v.readUInt32BE(1); i++) {
          const len = v.readUInt32BE(at);
          const key = Buffer.alloc(9);
          key[0] = 0x73;
          key.writeBigUInt64BE(first + BigInt(i), 1);
          batch.put(key, v.subarray(at + 4, at + 4 + len));
          at += 4 + len;
        }
      }
      await batch.write();
    });
  }

  it('reads, point-reads and reopens as a model of records in arrival order, blocks and single records mixed', async () => {
    const rand = mulberry32(11);
    const readRand = mulberry32(12);
    const pick = (n: number) => Math.floor(rand() * n);
    const agents = [agentState(), agentState(), agentState()].map((a) => ({ ...a, chain_id: randomUUID() }));
    const next = agents.map(() => 0n);
    /** Every record by offset: what read and readOffsets must give back. */
    const model: { agentId: string; seq: bigint; hash: Buffer; bytes: Buffer }[] = [];
    const check = async () => {
      expect(spool.headOffset).toBe(BigInt(model.length - 1));
      for (let q = 0; q < 40; q++) {
        const after = BigInt(pick(model.length + 2) - 1);
        const max = 1 + pick(q % 4 === 0 ? 3000 : 40);
        const got = await spool.read(after, max);
        const want = model.slice(Number(after) + 1, Number(after) + 1 + max);
        expect(got.map((r) => r.offset)).toEqual(want.map((_, i) => after + 1n + BigInt(i)));
        // As strings: vitest compares Buffers byte by byte, slowly.
        const id = (agentId: string, seq: bigint, h: Buffer, b: Buffer) =>
          `${agentId}/${seq}/${h.toString('hex')}/${hash('sha1', b)}`;
        expect(got.map((r) => id(r.agentId, r.seq, r.recordHash, r.eventBytes))).toEqual(
          want.map((w) => id(w.agentId, w.seq, w.hash, w.bytes)),
        );
      }
      // Read through as an exporter does, in chunks of any size: each read starts where the
      // last one ended, mostly inside the block that one decoded last.
      let after2 = -1n;
      for (;;) {
        const got = await spool.read(after2, 1 + pick(700));
        if (got.length === 0) break;
        expect(got.map((r) => r.offset)).toEqual(got.map((_, i) => after2 + 1n + BigInt(i)));
        expect(got.map((r) => r.seq)).toEqual(
          model.slice(Number(after2) + 1, Number(after2) + 1 + got.length).map((w) => w.seq),
        );
        after2 = got[got.length - 1]!.offset;
      }
      expect(after2).toBe(BigInt(model.length - 1));
      // Two exporters far apart, reading in turn (one catching up, one near the head): each
      // read is served from the blocks it last decoded or from the spool, never another's.
      // (Their own random sizes: the commits' sizes above must stay what the seed gives.)
      const cursors = [-1n, BigInt(Math.floor(model.length / 2))];
      for (let turn = 0; turn < 60; turn++) {
        const c = turn % 2;
        const got = await spool.read(cursors[c]!, 1 + Math.floor(readRand() * 300));
        const at = Number(cursors[c]!) + 1;
        expect(got.map((r) => `${r.offset}/${r.seq}`)).toEqual(
          model.slice(at, at + got.length).map((w, i) => `${at + i}/${w.seq}`),
        );
        if (got.length > 0) cursors[c] = got[got.length - 1]!.offset;
      }
      const asked = Array.from({ length: 30 }, () => BigInt(pick(model.length + 5)));
      asked.sort((x, y) => (x < y ? -1 : 1)); // runs in one block, as a replay asks
      asked.push(...asked.slice(0, 5).reverse());
      const got = await spool.readOffsets(asked);
      expect(got.map((r) => r && `${r.offset}/${r.seq}/${r.recordHash.toString('hex')}`)).toEqual(
        asked.map((o) => {
          const w = model[Number(o)];
          return w && `${o}/${w.seq}/${w.hash.toString('hex')}`;
        }),
      );
    };
    for (let round = 0; round < 6; round++) {
      // A round of concurrent commits: one group may take several batches, of several agents.
      const commits: Promise<unknown>[] = [];
      for (let c = 0; c < 1 + pick(5); c++) {
        const i = pick(agents.length);
        const n = round === 0 && c === 0 ? 150n : BigInt(1 + pick(c === 0 ? 2500 : 300));
        const batch = records(agents[i]!.chain_id!, next[i]!, next[i]! + n - 1n);
        // Now and then large events, so blocks also end at their byte bound.
        if ((round === 0 && c === 0) || (n < 200n && pick(2) === 0))
          for (const r of batch) r.eventBytes = Buffer.alloc(15_000 + pick(9_000), 0x61 + pick(26));
        next[i] = next[i]! + n;
        for (const r of batch)
          model.push({
            agentId: agents[i]!.agent_id,
            seq: r.seq,
            hash: Buffer.from(r.recordHash),
            bytes: Buffer.from(r.eventBytes),
          });
        commits.push(spool.commit(agents[i]!, batch));
      }
      await Promise.all(commits);
      await check();
      if (round === 1 || round === 3) await unblock(); // the older records, one per key
      await reopen();
      await check();
      for (const [i, a] of agents.entries())
        if (next[i]! > 0n)
          expect(await spool.recordHashAt(a.agent_id, a.chain_id!, next[i]! - 1n)).toEqual(
            model.findLast((m) => m.agentId === a.agent_id)!.hash,
          );
    }
    // Blocks were written, bounded by count and by bytes.
    const sizes = await raw(async (db) => {
      const out: [number, number][] = [];
      for await (const v of db.values({ gte: Buffer.from('s'), lt: Buffer.from('t') }))
        out.push([v[0] === 2 ? v.readUInt32BE(1) : 1, v.length]);
      return out;
    });
    await reopen();
    expect(Math.max(...sizes.map(([n]) => n))).toBe(1024);
    expect(sizes.some(([n, bytes]) => n < 1024 && bytes >= 1024 * 1024)).toBe(true);
  });

  it('a spool of format 2 with its key is read as it is and takes blocks after its records', async () => {
    await spool.commit(agentState(), records(randomUUID(), 0n, 9n));
    await unblock();
    await raw((db) => db.put(Buffer.from('mformat'), Buffer.from([0, 0, 0, 2])));
    await reopen({ readOnly: true });
    expect(spool.headOffset).toBe(9n);
    await reopen();
    await spool.commit(agentState(), records(randomUUID(), 0n, 4n));
    expect((await storedRecords()).map((r) => r.offset)).toEqual(
      Array.from({ length: 15 }, (_, i) => BigInt(i)),
    );
    const f = await raw((db) => db.get(Buffer.from('mformat')));
    expect(f?.readUInt32BE(0)).toBe(SPOOL_FORMAT);
    await reopen();
  });
});
