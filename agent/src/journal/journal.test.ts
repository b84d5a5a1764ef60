import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainVerifier, verifyChain } from '@sealtrail/chain';
import { SealtrailError } from '@sealtrail/errors';
import { type AuditEvent, canonicalBytes, decodeEvent, newEventId } from '@sealtrail/event';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainStartEvent } from '../chain_start.js';
import { loadOrCreateIdentity, rawPublicKey } from '../identity/identity.js';
import { Journal, type JournalRecord } from './journal.js';
import { verifyJournal } from './verify.js';

const AGENT_ID = '0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b';
const HOST: AuditEvent['host'] = { id: AGENT_ID, name: 'test-host', os: 'linux' };
const PUBLIC_KEY = rawPublicKey(generateKeyPairSync('ed25519').publicKey);

function eventBytes(n: number, extra: Record<string, unknown> = {}): Buffer {
  const now = new Date().toISOString();
  return canonicalBytes({
    id: newEventId(),
    time: now,
    observed_time: now,
    category: 'application',
    type: 'test.event',
    severity: 'info',
    outcome: 'success',
    action: 'write',
    host: HOST,
    source: { kind: 'http_ingest', name: 'apps' },
    attributes: { n, ...extra },
  } satisfies AuditEvent);
}

function openJournal(dir: string, agentId = AGENT_ID, host = HOST): Journal {
  return new Journal({
    dir,
    agentId,
    chainStartEvent: (chainId) =>
      chainStartEvent({ host, chainId, publicKey: PUBLIC_KEY, previous: null, reason: 'first_start' }),
  });
}

async function readAll(j: Journal): Promise<JournalRecord[]> {
  return j.read(null, 1_000_000, Number.MAX_SAFE_INTEGER);
}

/** Deterministic PRNG (mulberry32), so a failing model run can be replayed from its seed. */
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

let dir: string;
const open: Journal[] = [];

async function fresh(path = join(dir, 'journal')): Promise<Journal> {
  const j = openJournal(path);
  await j.open();
  open.push(j);
  return j;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealtrail-journal-'));
});

afterEach(async () => {
  for (const j of open.splice(0)) await j.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Journal', () => {
  it('starts a chain whose record 0 is agent.chain.start naming the chain and the key', async () => {
    const j = await fresh();
    expect(j.head?.seq).toBe(0n);
    expect(j.acked).toBeNull();
    expect(j.backlog).toBe(1);
    const [r0, ...rest] = await readAll(j);
    expect(rest).toEqual([]);
    expect(r0!.seq).toBe(0n);
    const ev = decodeEvent(r0!.eventBytes);
    expect(ev.type).toBe('agent.chain.start');
    expect(ev.category).toBe('agent');
    expect(ev.source).toEqual({ kind: 'agent', name: 'agent' });
    expect(ev.attributes).toMatchObject({
      chain_id: j.chainId,
      public_key: PUBLIC_KEY.toString('base64'),
      previous: null,
      reason: 'first_start',
    });
    // Its hash chains to 32 zero bytes, and is the head.
    const report = verifyChain({ agentId: AGENT_ID, chainId: j.chainId }, [r0!]);
    expect(report.ok).toBe(true);
    expect(Buffer.from(r0!.recordHash).equals(j.head!.hash)).toBe(true);
  });

  it('resolves appends with their seq range and reads them back in order, chained', async () => {
    const j = await fresh();
    const a = [eventBytes(1), eventBytes(2), eventBytes(3)];
    const b = [eventBytes(4)];
    expect(await j.append({ events: a })).toEqual({ first: 1n, last: 3n });
    expect(await j.append({ events: b })).toEqual({ first: 4n, last: 4n });
    expect(j.head?.seq).toBe(4n);
    expect(j.backlog).toBe(5);

    const records = await readAll(j);
    expect(records.map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(records.slice(1).map((r) => r.eventBytes.toString())).toEqual(
      [...a, ...b].map((x) => x.toString()),
    );
    const report = verifyChain({ agentId: AGENT_ID, chainId: j.chainId }, records);
    expect(report).toMatchObject({ ok: true, count: 5 });
    expect(report.ok && Buffer.from(report.head!.hash).equals(j.head!.hash)).toBe(true);

    // read honours afterSeq, maxRecords and maxBytes (but always returns at least one record).
    expect((await j.read(2n, 100, 1 << 20)).map((r) => r.seq)).toEqual([3n, 4n]);
    expect((await j.read(null, 2, 1 << 20)).map((r) => r.seq)).toEqual([0n, 1n]);
    expect((await j.read(0n, 100, 1)).map((r) => r.seq)).toEqual([1n]);
    const twoEvents = a[0]!.length + a[1]!.length;
    expect((await j.read(0n, 100, twoEvents)).map((r) => r.seq)).toEqual([1n, 2n]);
    expect(await j.read(4n, 100, 1 << 20)).toEqual([]);
  });

  it('an empty append writes nothing and reports an empty range at the next seq', async () => {
    const j = await fresh();
    expect(await j.append({ events: [] })).toEqual({ first: 1n, last: 0n });
    expect(j.head?.seq).toBe(0n);
  });

  it('emits appended with the new head after each durable write', async () => {
    const j = await fresh();
    const heads: bigint[] = [];
    j.on('appended', (s) => heads.push(s));
    await j.append({ events: [eventBytes(1), eventBytes(2)] });
    await j.append({ events: [eventBytes(3)] });
    expect(heads).toEqual([2n, 3n]);
  });

  it('keeps head, acked, chain and records across close and reopen', async () => {
    const path = join(dir, 'journal');
    const j1 = openJournal(path);
    await j1.open();
    await j1.append({ events: [1, 2, 3, 4, 5].map((n) => eventBytes(n)) });
    const before = await readAll(j1);
    await j1.ack(2n);
    const chainId = j1.chainId;
    const head = j1.head!;
    await j1.close();

    const j2 = await fresh(path);
    expect(j2.chainId).toBe(chainId);
    expect(j2.head?.seq).toBe(head.seq);
    expect(j2.head?.hash.equals(head.hash)).toBe(true);
    expect(j2.acked).toBe(2n);
    expect(j2.ackedHead?.hash.equals(before.find((r) => r.seq === 2n)!.recordHash)).toBe(true);
    expect(j2.backlog).toBe(3);
    expect(j2.stats()).toEqual({ chainId, head: 5n, acked: 2n, backlogRecords: 3 });
    const after = await readAll(j2);
    expect(after.map((r) => r.seq)).toEqual([3n, 4n, 5n]);
    expect(after.map((r) => r.eventBytes.toString())).toEqual(
      before.filter((r) => r.seq > 2n).map((r) => r.eventBytes.toString()),
    );
    // Reopening does not start a new chain, and appends continue the old one.
    expect(await j2.append({ events: [eventBytes(6)] })).toEqual({ first: 6n, last: 6n });
    const v = new ChainVerifier({ agentId: AGENT_ID, chainId }, j2.ackedHead);
    for (const r of await readAll(j2)) expect(v.push(r).ok).toBe(true);
  });

  it('group-commits concurrent appends into contiguous, correctly resolved ranges', async () => {
    const j = await fresh();
    let writes = 0;
    j.on('appended', () => writes++);
    const calls = Array.from({ length: 60 }, (_, i) =>
      Array.from({ length: (i % 4) + 1 }, (_, k) => eventBytes(i * 10 + k)),
    );
    const ranges = await Promise.all(calls.map((events) => j.append({ events })));

    // Each call got a range as long as its events, and the ranges tile 1..total in call order.
    let next = 1n;
    for (const [i, r] of ranges.entries()) {
      expect(r.first).toBe(next);
      expect(r.last - r.first + 1n).toBe(BigInt(calls[i]!.length));
      next = r.last + 1n;
    }
    const total = calls.reduce((n, c) => n + c.length, 0);
    expect(j.head?.seq).toBe(BigInt(total));
    // Fewer durable writes than callers: callers that arrived during a write shared the next one.
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThan(calls.length);

    // Every range holds exactly that caller's events, in its order.
    const bySeq = new Map((await readAll(j)).map((r) => [r.seq, r.eventBytes.toString()]));
    for (const [i, r] of ranges.entries()) {
      const got: string[] = [];
      for (let s = r.first; s <= r.last; s++) got.push(bySeq.get(s)!);
      expect(got).toEqual(calls[i]!.map((b) => b.toString()));
    }
    const report = verifyChain({ agentId: AGENT_ID, chainId: j.chainId }, await readAll(j));
    expect(report).toMatchObject({ ok: true, count: total + 1 });
  });

  it('stores read positions with the events they produced, also when no event came with them', async () => {
    const path = join(dir, 'journal');
    const j = await fresh(path);
    expect(await j.position('auth')).toBeUndefined();
    await j.append({ events: [eventBytes(1)], positions: { auth: { offset: 120, inode: 7 } } });
    expect(await j.position('auth')).toEqual({ offset: 120, inode: 7 });
    // A position-only append (e.g. a skipped line) moves the position and no seq.
    expect(await j.append({ events: [], positions: { auth: { offset: 180, inode: 7 } } })).toEqual({
      first: 2n,
      last: 1n,
    });
    expect(j.head?.seq).toBe(1n);
    await j.append({
      events: [eventBytes(2)],
      positions: { syslog: 'cursor-1', auth: { offset: 240, inode: 7 } },
    });
    await j.close();
    open.splice(open.indexOf(j), 1);

    const j2 = await fresh(path);
    expect(await j2.position('auth')).toEqual({ offset: 240, inode: 7 });
    expect(await j2.position('syslog')).toBe('cursor-1');
    expect(j2.head?.seq).toBe(2n);
  });

  it('ack deletes records through the seq, and read then starts after it', async () => {
    const j = await fresh();
    await j.append({ events: [1, 2, 3, 4, 5].map((n) => eventBytes(n)) });
    const hash3 = await j.recordHashAt(3n);
    await j.ack(3n);
    expect(j.acked).toBe(3n);
    expect(j.ackedHead?.hash.equals(hash3!)).toBe(true);
    expect(j.backlog).toBe(2);
    for (const s of [0n, 1n, 2n, 3n]) expect(await j.recordHashAt(s)).toBeUndefined();
    expect((await readAll(j)).map((r) => r.seq)).toEqual([4n, 5n]);
    const kept: bigint[] = [];
    for await (const r of j.records()) kept.push(r.seq);
    expect(kept).toEqual([4n, 5n]);
    // read from an already-acked position yields only what is kept.
    expect((await j.read(1n, 100, 1 << 20)).map((r) => r.seq)).toEqual([4n, 5n]);

    // An ack at or below what was acked is a no-op (a late, repeated ack).
    await j.ack(2n);
    await j.ack(3n);
    expect(j.acked).toBe(3n);
    expect(j.backlog).toBe(2);

    // Acking everything leaves an empty backlog; appends continue the chain.
    await j.ack(5n);
    expect(j.backlog).toBe(0);
    expect(await readAll(j)).toEqual([]);
    expect(await j.append({ events: [eventBytes(6)] })).toEqual({ first: 6n, last: 6n });
    const v = new ChainVerifier({ agentId: AGENT_ID, chainId: j.chainId }, j.ackedHead);
    const [r6] = await readAll(j);
    expect(v.push(r6!).ok).toBe(true);
  });

  it('refuses an ack beyond the head and changes nothing', async () => {
    const j = await fresh();
    await j.append({ events: [eventBytes(1)] });
    const err = await j.ack(2n).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SealtrailError);
    expect((err as SealtrailError).code).toBe('ST_JOURNAL_ACK_AHEAD');
    expect(j.acked).toBeNull();
    expect((await readAll(j)).map((r) => r.seq)).toEqual([0n, 1n]);
  });

  it('refuses appends after close', async () => {
    const j = await fresh();
    await j.close();
    await expect(j.append({ events: [eventBytes(1)] })).rejects.toMatchObject({ code: 'ST_JOURNAL_CLOSED' });
    await j.close(); // idempotent
  });

  it('open({ startChain: false }) on an empty directory writes nothing', async () => {
    const j = openJournal(join(dir, 'journal'));
    await j.open({ startChain: false });
    open.push(j);
    expect(j.head).toBeNull();
    expect(j.backlog).toBe(0);
    expect(await readAll(j)).toEqual([]);
  });

  it('reports the lock when another journal holds the directory', async () => {
    const path = join(dir, 'journal');
    await fresh(path);
    const other = openJournal(path);
    await expect(other.open()).rejects.toMatchObject({ code: 'ST_JOURNAL_OPEN' });
  });
});

describe('Journal against an in-memory model', () => {
  interface Model {
    records: { seq: bigint; bytes: string }[];
    head: bigint;
    acked: bigint | null;
    positions: Map<string, unknown>;
  }

  async function check(j: Journal, m: Model, chainId: string, where: string): Promise<void> {
    expect(j.head?.seq, where).toBe(m.head);
    expect(j.acked, where).toBe(m.acked);
    const kept = m.records.filter((r) => m.acked === null || r.seq > m.acked);
    expect(j.backlog, where).toBe(kept.length);
    const got = await readAll(j);
    expect(
      got.map((r) => ({ seq: r.seq, bytes: r.eventBytes.toString() })),
      where,
    ).toEqual(kept);
    // The kept records chain from the acked position to the head.
    const v = new ChainVerifier({ agentId: AGENT_ID, chainId }, j.ackedHead);
    for (const r of got) expect(v.push(r).ok, `${where}: seq ${r.seq}`).toBe(true);
    if (got.length > 0) expect(Buffer.from(v.head!.hash).equals(j.head!.hash), where).toBe(true);
    for (const [source, pos] of m.positions) expect(await j.position(source), where).toEqual(pos);
  }

  for (const seed of [1, 7, 42, 2024, 99991]) {
    it(`matches the model for random append/ack/reopen sequences (seed ${seed})`, async () => {
      const rand = mulberry32(seed);
      const int = (n: number) => Math.floor(rand() * n);
      const path = join(dir, 'journal');
      let j = await fresh(path);
      const chainId = j.chainId;
      const [r0] = await readAll(j);
      const m: Model = {
        records: [{ seq: 0n, bytes: r0!.eventBytes.toString() }],
        head: 0n,
        acked: null,
        positions: new Map(),
      };
      let counter = 0;
      for (let step = 0; step < 120; step++) {
        const op = rand();
        const where = `seed ${seed} step ${step}`;
        if (op < 0.45) {
          // One append of 0..4 events, perhaps with a position.
          const events = Array.from({ length: int(5) }, () => eventBytes(counter++));
          const positions = rand() < 0.5 ? { [`src${int(3)}`]: { offset: counter } } : undefined;
          const range = await j.append(positions ? { events, positions } : { events });
          expect(range.first, where).toBe(m.head + 1n);
          for (const b of events) {
            m.head++;
            m.records.push({ seq: m.head, bytes: b.toString() });
          }
          expect(range.last, where).toBe(m.head);
          if (positions) for (const [k, v] of Object.entries(positions)) m.positions.set(k, v);
        } else if (op < 0.6) {
          // A burst of concurrent appends: group commit must keep call order.
          const calls = Array.from({ length: 2 + int(6) }, () =>
            Array.from({ length: 1 + int(3) }, () => eventBytes(counter++)),
          );
          const ranges = await Promise.all(calls.map((events) => j.append({ events })));
          for (const [i, events] of calls.entries()) {
            expect(ranges[i]!.first, where).toBe(m.head + 1n);
            for (const b of events) {
              m.head++;
              m.records.push({ seq: m.head, bytes: b.toString() });
            }
            expect(ranges[i]!.last, where).toBe(m.head);
          }
        } else if (op < 0.85) {
          // Ack somewhere between the acked seq (or below it) and the head, sometimes beyond it.
          const low = m.acked === null ? 0n : m.acked - 1n < 0n ? 0n : m.acked - 1n;
          const span = Number(m.head - low) + 2;
          const through = low + BigInt(int(span));
          if (through > m.head) {
            await expect(j.ack(through), where).rejects.toMatchObject({ code: 'ST_JOURNAL_ACK_AHEAD' });
          } else {
            await j.ack(through);
            if (m.acked === null || through > m.acked) m.acked = through;
          }
        } else {
          await j.close();
          open.splice(open.indexOf(j), 1);
          j = await fresh(path);
          expect(j.chainId, where).toBe(chainId);
        }
        await check(j, m, chainId, where);
      }
      expect(m.head).toBeGreaterThan(20n);
    });
  }
});

describe('verifyJournal', () => {
  async function journalWith(events: number, ackThrough?: bigint) {
    const dataDir = join(dir, 'data');
    const id = loadOrCreateIdentity(dataDir);
    const j = openJournal(join(dataDir, 'journal'), id.agentId, { ...HOST, id: id.agentId });
    await j.open();
    await j.append({ events: Array.from({ length: events }, (_, i) => eventBytes(i)) });
    if (ackThrough !== undefined) await j.ack(ackThrough);
    const chainId = j.chainId;
    await j.close();
    return { dataDir, chainId };
  }

  async function flipEventByte(dataDir: string, seq: bigint): Promise<void> {
    const db = new ClassicLevel<Buffer, Buffer>(join(dataDir, 'journal'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    await db.open();
    const key = Buffer.alloc(9);
    key[0] = 0x72; // 'r'
    key.writeBigUInt64BE(seq, 1);
    const value = await db.get(key);
    expect(value).toBeDefined();
    const tampered = Buffer.from(value!);
    // Value is record_hash(32) || event_bytes: change one byte of the event, keep the hash.
    const i = 32 + Math.floor((tampered.length - 32) / 2);
    tampered[i] = tampered[i]! ^ 0x01;
    await db.put(key, tampered);
    await db.close();
  }

  it('reports an intact journal as ok', async () => {
    const { dataDir, chainId } = await journalWith(6);
    expect(await verifyJournal(dataDir)).toEqual({
      ok: true,
      chain_id: chainId,
      records: 7,
      first_seq: '0',
      head_seq: '6',
    });
  });

  it('verifies from the acked position when records were already shipped', async () => {
    const { dataDir, chainId } = await journalWith(6, 3n);
    expect(await verifyJournal(dataDir)).toEqual({
      ok: true,
      chain_id: chainId,
      records: 3,
      first_seq: '4',
      head_seq: '6',
    });
  });

  for (const k of [0n, 4n, 6n]) {
    it(`names seq ${k} when one byte of its event was changed on disk`, async () => {
      const { dataDir, chainId } = await journalWith(6);
      await flipEventByte(dataDir, k);
      const report = await verifyJournal(dataDir);
      expect(report).toMatchObject({
        ok: false,
        chain_id: chainId,
        seq: String(k),
        fault: 'record_hash_mismatch',
        records: Number(k),
      });
    });
  }

  it('names the first bad seq after the acked position', async () => {
    const { dataDir } = await journalWith(8, 2n);
    await flipEventByte(dataDir, 5n);
    expect(await verifyJournal(dataDir)).toMatchObject({ ok: false, seq: '5', records: 2 });
  });

  it('names a deleted record as a gap', async () => {
    const { dataDir } = await journalWith(6);
    const db = new ClassicLevel<Buffer, Buffer>(join(dataDir, 'journal'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    await db.open();
    const key = Buffer.alloc(9);
    key[0] = 0x72;
    key.writeBigUInt64BE(3n, 1);
    await db.del(key);
    await db.close();
    expect(await verifyJournal(dataDir)).toMatchObject({ ok: false, seq: '3', fault: 'seq_gap' });
  });

  it('refuses a directory with no agent identity', async () => {
    await expect(verifyJournal(join(dir, 'nothing'))).rejects.toMatchObject({ code: 'ST_VERIFY_NO_AGENT' });
  });
});
