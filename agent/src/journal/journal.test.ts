import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainVerifier, verifyChain } from '@sealtrail/chain';
import { SealtrailError } from '@sealtrail/errors';
import { type AuditEvent, canonicalBytes, decodeEvent, newEventId } from '@sealtrail/event';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateIdentity, rawPublicKey } from '../identity/identity.js';
import { chainStartEvent } from './events.js';
import {
  type ChainMeta,
  type Head,
  Journal,
  type JournalRecord,
  type Position,
  recordKey,
} from './journal.js';
import { mulberry32 } from './testkit/chains.js';
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

function openJournal(dir: string, agentId = AGENT_ID, host = HOST, verifyOnOpen?: number): Journal {
  return new Journal({
    dir,
    agentId,
    hooks: { chainStart: (start) => chainStartEvent(host, PUBLIC_KEY, start) },
    verifyOnOpen,
  });
}

const at = (seq: bigint, chain = 0): Position => ({ chain, seq });

/**
 * Every kept record, in order, read the way the shipper reads them: batch after
 * batch, each from one chain only (a batch never spans a chain boundary).
 */
async function readAll(j: Journal): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  let after: Position | null = null;
  for (;;) {
    const batch = await j.read(after, 1_000_000, Number.MAX_SAFE_INTEGER);
    if (batch.length === 0) return out;
    expect(new Set(batch.map((r) => r.chain)).size).toBe(1);
    out.push(...batch);
    const last = batch[batch.length - 1]!;
    after = { chain: last.chain, seq: last.seq };
  }
}

const text = (r: JournalRecord) => r.eventBytes!.toString();

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
    expect(j.head).toMatchObject({ chain: 0, seq: 0n });
    expect(j.acked).toBeNull();
    expect(j.backlogRecords).toBe(1);
    const [r0, ...rest] = await readAll(j);
    expect(rest).toEqual([]);
    expect(r0).toMatchObject({ chain: 0, seq: 0n });
    expect(j.backlogBytes).toBe(r0!.eventBytes!.length);
    const ev = decodeEvent(r0!.eventBytes!);
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
    expect(j.backlogRecords).toBe(5);

    const records = await readAll(j);
    expect(records.map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(records.slice(1).map(text)).toEqual([...a, ...b].map((x) => x.toString()));
    const report = verifyChain({ agentId: AGENT_ID, chainId: j.chainId }, records);
    expect(report).toMatchObject({ ok: true, count: 5 });
    expect(report.ok && Buffer.from(report.head!.hash).equals(j.head!.hash)).toBe(true);

    // read honours the position after which to start, maxRecords and maxBytes
    // (but always returns at least one record).
    expect((await j.read(at(2n), 100, 1 << 20)).map((r) => r.seq)).toEqual([3n, 4n]);
    expect((await j.read(null, 2, 1 << 20)).map((r) => r.seq)).toEqual([0n, 1n]);
    expect((await j.read(at(0n), 100, 1)).map((r) => r.seq)).toEqual([1n]);
    const twoEvents = a[0]!.length + a[1]!.length;
    expect((await j.read(at(0n), 100, twoEvents)).map((r) => r.seq)).toEqual([1n, 2n]);
    expect(await j.read(at(4n), 100, 1 << 20)).toEqual([]);
    // A position in a chain the journal does not have yet reads nothing.
    expect(await j.read(at(0n, 1), 100, 1 << 20)).toEqual([]);
  });

  it('an empty append writes nothing and reports an empty range at the next seq', async () => {
    const j = await fresh();
    expect(await j.append({ events: [] })).toEqual({ first: 1n, last: 0n });
    expect(j.head?.seq).toBe(0n);
  });

  it('emits appended with the new head after each durable write', async () => {
    const j = await fresh();
    const heads: Head[] = [];
    j.on('appended', (h) => heads.push(h));
    await j.append({ events: [eventBytes(1), eventBytes(2)] });
    await j.append({ events: [eventBytes(3)] });
    expect(heads.map((h) => [h.chain, h.seq])).toEqual([
      [0, 2n],
      [0, 3n],
    ]);
    expect(heads[1]!.hash.equals(j.head!.hash)).toBe(true);
  });

  it('keeps head, acked, chain and records across close and reopen', async () => {
    const path = join(dir, 'journal');
    const j1 = openJournal(path);
    await j1.open();
    await j1.append({ events: [1, 2, 3, 4, 5].map((n) => eventBytes(n)) });
    const before = await readAll(j1);
    await j1.ack(at(2n));
    const chainId = j1.chainId;
    const head = j1.head!;
    await j1.close();

    const j2 = await fresh(path);
    expect(j2.chainId).toBe(chainId);
    expect(j2.head).toMatchObject({ chain: 0, seq: head.seq });
    expect(j2.head?.hash.equals(head.hash)).toBe(true);
    expect(j2.acked).toMatchObject({ chain: 0, seq: 2n });
    expect(j2.acked?.hash.equals(before.find((r) => r.seq === 2n)!.recordHash)).toBe(true);
    expect(j2.backlogRecords).toBe(3);
    const keptBytes = before.filter((r) => r.seq > 2n).reduce((n, r) => n + r.eventBytes!.length, 0);
    expect(j2.backlogBytes).toBe(keptBytes);
    expect(j2.stats()).toEqual({
      chainId,
      head: `${chainId}:5`,
      acked: `${chainId}:2`,
      backlogRecords: 3,
      backlogBytes: keptBytes,
    });
    const after = await readAll(j2);
    expect(after.map((r) => r.seq)).toEqual([3n, 4n, 5n]);
    expect(after.map(text)).toEqual(before.filter((r) => r.seq > 2n).map(text));
    // Reopening does not start a new chain, and appends continue the old one.
    expect(await j2.append({ events: [eventBytes(6)] })).toEqual({ first: 6n, last: 6n });
    expect(j2.head?.chain).toBe(0);
    const v = new ChainVerifier({ agentId: AGENT_ID, chainId }, j2.acked);
    for (const r of await readAll(j2)) expect(v.push(r).ok).toBe(true);
  });

  it('keeps the head in head marks after the records; acks delete the older marks', async () => {
    const path = join(dir, 'journal');
    const j = openJournal(path);
    await j.open();
    for (let i = 0; i < 5; i++) await j.append({ events: [eventBytes(2 * i), eventBytes(2 * i + 1)] });
    await j.ack(at(6n));
    const head = j.head!;
    await j.close();
    const db = new ClassicLevel<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const keys = await db.keys({ gte: Buffer.from('r'), lt: Buffer.from('s') }).all();
    const marks = keys.filter((k) => k.length === 14);
    // The marks of 0, 2 and 4 went with the ack; that of 6 (the acked record) goes with the next.
    expect(marks.map((k) => k.readBigUInt64BE(5))).toEqual([6n, 8n, 10n]);
    expect(keys.at(-1)!.equals(marks.at(-1)!)).toBe(true);
    expect(JSON.parse((await db.get(marks.at(-1)!))!.toString())).toMatchObject({
      chain: 0,
      seq: '10',
      hash: head.hash.toString('hex'),
      records: 11,
    });
    expect(await db.get(Buffer.from('mhead'))).toBeUndefined();
    await db.close();
    const j2 = await fresh(path);
    expect(j2.head).toEqual(head);
    expect(j2.backlogRecords).toBe(4);
    expect((await readAll(j2)).map((r) => r.seq)).toEqual([7n, 8n, 9n, 10n]);
    // Acked through the head: only the head's own mark is left in the record range.
    await j2.ack(at(10n));
    const left = await j2.db.keys({ gte: Buffer.from('r'), lt: Buffer.from('s') }).all();
    expect(left.map((k) => [k.length, k.readBigUInt64BE(5)])).toEqual([[14, 10n]]);
    expect(j2.backlogRecords).toBe(0);
  });

  it("opens a journal written before head marks (head under 'mhead') and moves its head on", async () => {
    const path = join(dir, 'journal');
    const j = openJournal(path);
    await j.open();
    await j.append({ events: [1, 2, 3].map((n) => eventBytes(n)) });
    const head = j.head!;
    await j.close();
    // Rewrite it as the old layout had it: no marks, the head and counters under 'mhead'.
    const db = new ClassicLevel<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const marks = (await db.keys({ gte: Buffer.from('r'), lt: Buffer.from('s') }).all()).filter(
      (k) => k.length === 14,
    );
    const meta = (await db.get(marks.at(-1)!))!;
    await db.batch([
      ...marks.map((key) => ({ type: 'del' as const, key })),
      { type: 'put', key: Buffer.from('mhead'), value: meta },
    ]);
    await db.close();

    const j2 = await fresh(path);
    expect(j2.head).toEqual(head);
    expect(j2.backlogRecords).toBe(4);
    expect(await j2.verifyOnOpen()).toBeNull();
    expect(await j2.append({ events: [eventBytes(4)] })).toEqual({ first: 4n, last: 4n });
    await j2.close();
    open.splice(open.indexOf(j2), 1);
    const db2 = new ClassicLevel<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db2.open();
    expect(await db2.get(Buffer.from('mhead'))).toBeUndefined();
    await db2.close();
    const j3 = await fresh(path);
    expect(j3.head?.seq).toBe(4n);
    expect(j3.backlogRecords).toBe(5);
    expect(await j3.verifyTail()).toBeNull();
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
    const bySeq = new Map((await readAll(j)).map((r) => [r.seq, text(r)]));
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
    const hash3 = await j.recordHashAt(0, 3n);
    const acked: Position[] = [];
    j.on('acked', (p) => acked.push(p));
    await j.ack(at(3n));
    expect(j.acked).toMatchObject({ chain: 0, seq: 3n });
    expect(j.acked?.hash.equals(hash3!)).toBe(true);
    expect(acked).toEqual([at(3n)]);
    expect(j.backlogRecords).toBe(2);
    for (const s of [0n, 1n, 2n, 3n]) expect(await j.recordHashAt(0, s)).toBeUndefined();
    expect((await readAll(j)).map((r) => r.seq)).toEqual([4n, 5n]);
    expect(j.backlogBytes).toBe((await readAll(j)).reduce((n, r) => n + r.eventBytes!.length, 0));
    const kept: bigint[] = [];
    for await (const r of j.records()) kept.push(r.seq);
    expect(kept).toEqual([4n, 5n]);
    // read from an already-acked position yields only what is kept.
    expect((await j.read(at(1n), 100, 1 << 20)).map((r) => r.seq)).toEqual([4n, 5n]);

    // An ack at or below what was acked is a no-op (a late, repeated ack).
    await j.ack(at(2n));
    await j.ack(at(3n));
    expect(j.acked).toMatchObject({ chain: 0, seq: 3n });
    expect(j.backlogRecords).toBe(2);
    expect(acked).toHaveLength(1);

    // Acking everything leaves an empty backlog; appends continue the chain.
    await j.ack(at(5n));
    expect(j.backlogRecords).toBe(0);
    expect(j.backlogBytes).toBe(0);
    expect(await readAll(j)).toEqual([]);
    expect(await j.append({ events: [eventBytes(6)] })).toEqual({ first: 6n, last: 6n });
    const v = new ChainVerifier({ agentId: AGENT_ID, chainId: j.chainId }, j.acked);
    const [r6] = await readAll(j);
    expect(v.push(r6!).ok).toBe(true);
  });

  it('starts a new chain naming the end of the old one; reads stop at the boundary; an ack spans it', async () => {
    const j = await fresh();
    await j.append({ events: [eventBytes(1), eventBytes(2)] });
    const first = j.chainId;
    const end = j.head!;
    const second = await j.startChain({ reason: 'test_restart' });
    expect(second).not.toBe(first);
    expect(j.chainId).toBe(second);
    expect(j.head).toMatchObject({ chain: 1, seq: 0n });
    expect(j.chainMeta(0)).toMatchObject({
      chainId: first,
      end: { seq: '2', hash: end.hash.toString('hex') },
    });
    const previous = { chain_id: first, last_seq: '2', last_hash: end.hash.toString('hex') };
    expect(j.chainMeta(1)).toMatchObject({ chainId: second, reason: 'test_restart', previous });
    expect(await j.append({ events: [eventBytes(3)] })).toEqual({ first: 1n, last: 1n });

    // One read never returns records of two chains.
    expect((await j.read(null, 100, 1 << 20)).map((r) => [r.chain, r.seq])).toEqual([
      [0, 0n],
      [0, 1n],
      [0, 2n],
    ]);
    const next = await j.read(at(2n), 100, 1 << 20);
    expect(next.map((r) => [r.chain, r.seq])).toEqual([
      [1, 0n],
      [1, 1n],
    ]);
    const start = decodeEvent(next[0]!.eventBytes!);
    expect(start.type).toBe('agent.chain.start');
    expect(start.attributes).toMatchObject({ chain_id: second, previous, reason: 'test_restart' });
    expect(verifyChain({ agentId: AGENT_ID, chainId: second }, next)).toMatchObject({ ok: true, count: 2 });

    // An ack in the new chain drops what is left of the old one too.
    await j.ack(at(0n, 1));
    expect(j.acked).toMatchObject({ chain: 1, seq: 0n });
    expect((await readAll(j)).map((r) => [r.chain, r.seq])).toEqual([[1, 1n]]);
    expect(j.backlogRecords).toBe(1);
  });

  it('refuses an ack beyond the head and changes nothing', async () => {
    const j = await fresh();
    await j.append({ events: [eventBytes(1)] });
    const err = await j.ack(at(2n)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SealtrailError);
    expect((err as SealtrailError).code).toBe('ST_JOURNAL_ACK_AHEAD');
    // A position in a chain after the head's is beyond it too, whatever its seq.
    await expect(j.ack(at(0n, 1))).rejects.toMatchObject({ code: 'ST_JOURNAL_ACK_AHEAD' });
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
    expect(j.hasChain).toBe(false);
    expect(j.head).toBeNull();
    expect(j.backlogRecords).toBe(0);
    expect(await readAll(j)).toEqual([]);
  });

  it('reports the lock when another journal holds the directory', async () => {
    const path = join(dir, 'journal');
    await fresh(path);
    const other = openJournal(path);
    // Its own code: recovery moves an unreadable journal aside, never one that is merely in use.
    await expect(other.open()).rejects.toMatchObject({
      code: 'ST_JOURNAL_LOCKED',
      message: expect.stringMatching(/is in use by another process/),
    });
  });
});

describe('Journal against an in-memory model', () => {
  /** A record as the model knows it; a chain start's bytes are the journal's to build, learned on first read. */
  interface ModelRecord extends Position {
    bytes: string | null;
  }
  interface Model {
    records: ModelRecord[];
    head: Position;
    acked: Position | null;
    positions: Map<string, unknown>;
    /** By chain number: its id, the reason it started and the previous end its record 0 must name. */
    chains: { id: string; reason: string; previous: ChainMeta['previous'] }[];
    /** Record hashes learned (and verified) when a record was first read back, by `chain:seq`. */
    hashes: Map<string, string>;
  }

  const key = (p: Position) => `${p.chain}:${p.seq}`;
  const pos = (p: Position): Position => ({ chain: p.chain, seq: p.seq });
  /** Journal order: by chain number, then seq. */
  const cmp = (a: Position, b: Position) => a.chain - b.chain || (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0);

  async function check(j: Journal, m: Model, where: string): Promise<void> {
    expect(j.head && pos(j.head), where).toEqual(m.head);
    expect(j.acked && pos(j.acked), where).toEqual(m.acked);
    expect(j.chainId, where).toBe(m.chains.at(-1)!.id);
    for (const [no, c] of m.chains.entries()) {
      expect(j.chainNo(c.id), where).toBe(no);
      expect(j.chainMeta(no), where).toMatchObject({
        no,
        chainId: c.id,
        reason: c.reason,
        previous: c.previous,
      });
    }
    const kept = m.records.filter((r) => m.acked === null || cmp(r, m.acked) > 0);
    expect(j.backlogRecords, where).toBe(kept.length);
    const got = await readAll(j);
    expect(got.map(pos), where).toEqual(kept.map(pos));
    // The kept records chain, chain by chain: from the acked position in its chain, else from record 0.
    let verifier: ChainVerifier | null = null;
    for (const [i, r] of got.entries()) {
      const want = kept[i]!;
      const c = m.chains[r.chain]!;
      if (want.bytes === null) {
        const ev = decodeEvent(r.eventBytes!);
        expect(ev.type, where).toBe('agent.chain.start');
        expect(ev.attributes, where).toMatchObject({
          chain_id: c.id,
          previous: c.previous,
          reason: c.reason,
        });
        want.bytes = text(r);
      }
      expect(text(r), `${where}: ${key(r)}`).toBe(want.bytes);
      if (i === 0 || got[i - 1]!.chain !== r.chain) {
        const from =
          m.acked && m.acked.chain === r.chain
            ? { seq: m.acked.seq, hash: Buffer.from(m.hashes.get(key(m.acked))!, 'hex') }
            : null;
        verifier = new ChainVerifier({ agentId: AGENT_ID, chainId: c.id }, from);
      }
      expect(verifier!.push(r).ok, `${where}: ${key(r)}`).toBe(true);
      m.hashes.set(key(r), r.recordHash.toString('hex'));
    }
    expect(j.backlogBytes, where).toBe(kept.reduce((n, r) => n + Buffer.byteLength(r.bytes!), 0));
    expect(j.head!.hash.toString('hex'), where).toBe(m.hashes.get(key(m.head)));
    if (m.acked) expect(j.acked!.hash.toString('hex'), where).toBe(m.hashes.get(key(m.acked)));
    for (const [source, p] of m.positions) expect(await j.position(source), where).toEqual(p);
  }

  function appended(m: Model, events: Buffer[]): void {
    for (const b of events) {
      m.head = { chain: m.head.chain, seq: m.head.seq + 1n };
      m.records.push({ ...m.head, bytes: b.toString() });
    }
  }

  for (const seed of [1, 7, 42, 2024, 99991]) {
    it(`matches the model for random append/ack/new chain/reopen sequences (seed ${seed})`, async () => {
      const rand = mulberry32(seed);
      const int = (n: number) => Math.floor(rand() * n);
      const pick = <T>(xs: T[]): T => xs[int(xs.length)]!;
      const path = join(dir, 'journal');
      let j = await fresh(path);
      const m: Model = {
        records: [{ chain: 0, seq: 0n, bytes: null }],
        head: { chain: 0, seq: 0n },
        acked: null,
        positions: new Map(),
        chains: [{ id: j.chainId, reason: 'first_start', previous: null }],
        hashes: new Map(),
      };
      await check(j, m, `seed ${seed} open`);
      let counter = 0;
      let lazyOpens = 0;
      for (let step = 0; step < 150; step++) {
        const op = rand();
        const where = `seed ${seed} step ${step}`;
        if (op < 0.4) {
          // One append of 0..4 events, perhaps with a position.
          const events = Array.from({ length: int(5) }, () => eventBytes(counter++));
          const positions = rand() < 0.5 ? { [`src${int(3)}`]: { offset: counter } } : undefined;
          const range = await j.append(positions ? { events, positions } : { events });
          expect(range.first, where).toBe(m.head.seq + 1n);
          appended(m, events);
          expect(range.last, where).toBe(m.head.seq);
          if (positions) for (const [k, v] of Object.entries(positions)) m.positions.set(k, v);
        } else if (op < 0.55) {
          // A burst of concurrent appends: group commit must keep call order.
          const calls = Array.from({ length: 2 + int(6) }, () =>
            Array.from({ length: 1 + int(3) }, () => eventBytes(counter++)),
          );
          const ranges = await Promise.all(calls.map((events) => j.append({ events })));
          for (const [i, events] of calls.entries()) {
            expect(ranges[i]!.first, where).toBe(m.head.seq + 1n);
            appended(m, events);
            expect(ranges[i]!.last, where).toBe(m.head.seq);
          }
        } else if (op < 0.8) {
          // Ack a kept record, an already acked one, a position beyond the head, or one that never existed.
          const kept = m.records.filter((r) => m.acked === null || cmp(r, m.acked) > 0);
          const beyond = [
            { chain: m.head.chain, seq: m.head.seq + 1n },
            { chain: m.head.chain + 1, seq: 0n },
          ];
          const ends = m.chains.slice(0, -1).map((_, no) => {
            const last = m.records.filter((r) => r.chain === no).at(-1)!;
            return { chain: no, seq: last.seq + 1n };
          });
          const r = rand();
          const through: Position = pos(
            r < 0.6 && kept.length > 0
              ? pick(kept)
              : r < 0.8
                ? pick(m.records)
                : r < 0.9 || ends.length === 0
                  ? pick(beyond)
                  : pick(ends),
          );
          const exists = m.records.some((x) => cmp(x, through) === 0);
          if (cmp(through, m.head) > 0) {
            await expect(j.ack(through), where).rejects.toMatchObject({ code: 'ST_JOURNAL_ACK_AHEAD' });
          } else if (m.acked !== null && cmp(through, m.acked) <= 0) {
            await j.ack(through); // a late, repeated ack: nothing changes
          } else if (!exists) {
            await expect(j.ack(through), where).rejects.toMatchObject({ code: 'ST_JOURNAL_ACK_MISSING' });
          } else {
            await j.ack(through);
            m.acked = through;
          }
        } else if (op < 0.9) {
          // A new chain: its record 0 names the end of the one before.
          const previous = {
            chain_id: m.chains[m.head.chain]!.id,
            last_seq: String(m.head.seq),
            last_hash: m.hashes.get(key(m.head))!,
          };
          const id = await j.startChain({ reason: 'model' });
          m.chains.push({ id, reason: 'model', previous });
          m.head = { chain: m.chains.length - 1, seq: 0n };
          m.records.push({ ...m.head, bytes: null });
        } else {
          await j.close();
          open.splice(open.indexOf(j), 1);
          // As the agent starts: the newest few records verified now, the rest by the reads in check().
          j = openJournal(path, AGENT_ID, HOST, 1 + int(4));
          await j.open();
          open.push(j);
          expect(await j.verifyOnOpen(), where).toBeNull();
          if (j.verifying) lazyOpens++;
        }
        await check(j, m, where);
      }
      expect(m.records.length).toBeGreaterThan(100);
      expect(m.chains.length).toBeGreaterThan(2);
      expect(m.acked).not.toBeNull();
      expect(lazyOpens).toBeGreaterThan(0);
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
    if (ackThrough !== undefined) await j.ack(at(ackThrough));
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
    const key = recordKey(0, seq);
    const value = await db.get(key);
    expect(value).toBeDefined();
    const tampered = Buffer.from(value!);
    // Value is kind(1) || record_hash(32) || event_bytes: change one byte of the event, keep the hash.
    expect(tampered[0]).toBe(0x01);
    const i = 33 + Math.floor((tampered.length - 33) / 2);
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
      head_seq: '6',
      quarantined: 0,
    });
  });

  it('verifies from the acked position when records were already shipped', async () => {
    const { dataDir, chainId } = await journalWith(6, 3n);
    // Records 0..3 are gone; 4..6 verify, chained from the acked record's hash.
    expect(await verifyJournal(dataDir)).toEqual({
      ok: true,
      chain_id: chainId,
      records: 3,
      head_seq: '6',
      quarantined: 0,
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
    await db.del(recordKey(0, 3n));
    await db.close();
    expect(await verifyJournal(dataDir)).toMatchObject({ ok: false, seq: '3', fault: 'seq_gap' });
  });

  it('refuses a directory with no agent identity', async () => {
    await expect(verifyJournal(join(dir, 'nothing'))).rejects.toMatchObject({ code: 'ST_VERIFY_NO_AGENT' });
  });
});
