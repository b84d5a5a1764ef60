import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import { type AuditEvent, canonicalBytes, newEventId } from '@sealtrail/event';
import { createLogger, Registry } from '@sealtrail/telemetry';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AgentState, type IncomingRecord, newAgentState, Spool } from '../../spool/spool.js';
import type { Exporter } from '../exporter.js';
import { fileExporterConfigSchema } from './config.js';
import { encodeNativeLine } from './encode.js';
import { fileExporter } from './exporter.js';

const AGENT_ID = randomUUID();
const CHAIN_ID = randomUUID();
const hasher = new RecordHasher({ agentId: AGENT_ID, chainId: CHAIN_ID });

let dir: string;
let path: string;
let spool: Spool;
let agent: AgentState;
let prev: Buffer;
let nextSeq: bigint;
const running: Exporter[] = [];

function event(n: number, fields: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: newEventId(),
    time: '2026-03-01T10:00:00.000Z',
    observed_time: '2026-03-01T10:00:00.125Z',
    category: 'authentication',
    type: 'auth.login.failure',
    severity: 'medium',
    outcome: 'failure',
    action: 'login',
    actor: { user: `user${n}`, ip: '198.51.100.7' },
    host: { id: AGENT_ID, name: 'web-1', os: 'linux' },
    source: { kind: 'http_ingest', name: 'apps' },
    message: `login failed for "user${n}" ✓`,
    attributes: { attempt: n, nested: { ok: false } },
    ...fields,
  };
}

/** Commits events to the spool as verified records of one chain, as the receiver would. */
async function commit(...events: AuditEvent[]): Promise<void> {
  const records: IncomingRecord[] = events.map((ev) => {
    const eventBytes = canonicalBytes(ev);
    const seq = nextSeq++;
    const recordHash = hasher.seal(seq, prev, eventBytes);
    prev = recordHash;
    return { chainId: CHAIN_ID, seq, recordHash, eventBytes, eventId: ev.id };
  });
  await spool.commit(agent, records);
}

function create(name = 'archive'): Exporter {
  const e = fileExporter.create(
    { spool, log: createLogger('test', 'silent'), registry: new Registry() },
    fileExporterConfigSchema.parse({ type: 'file', name, path, batch_max_records: 3 }),
  );
  running.push(e);
  return e;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits until the exporter delivered everything in the spool and recorded it. */
async function caughtUp(e: Exporter): Promise<void> {
  await waitFor(() => e.lag() === 0n, 'the exporter to catch up');
}

async function stop(e: Exporter): Promise<void> {
  await e.stop();
  running.splice(running.indexOf(e), 1);
}

function lines(): Record<string, unknown>[] {
  const text = readFileSync(path, 'utf8');
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sealtrail-file-exporter-'));
  path = join(dir, 'export', 'events.jsonl');
  spool = new Spool(join(dir, 'spool'));
  await spool.open();
  const now = new Date().toISOString();
  agent = { ...newAgentState(AGENT_ID, '', 'web-1', now), chain_id: CHAIN_ID };
  prev = ZERO_HASH;
  nextSeq = 0n;
});

afterEach(async () => {
  for (const e of running.splice(0)) await e.stop();
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('file exporter', () => {
  it('writes the native line: the event’s fields plus a sealtrail object', async () => {
    const events = [event(1), event(2, { resource: { kind: 'user', name: 'root' } })];
    await commit(...events);
    const e = create();
    await e.start();
    await caughtUp(e);

    const stored = await spool.read(-1n, 10);
    const got = lines();
    expect(got).toHaveLength(2);
    for (const [i, line] of got.entries()) {
      const { sealtrail, ...fields } = line;
      expect(fields).toEqual(events[i]);
      const r = stored[i]!;
      expect(sealtrail).toEqual({
        agent_id: AGENT_ID,
        chain_id: CHAIN_ID,
        seq: String(i),
        record_hash: r.recordHash.toString('hex'),
        received_time: new Date(r.receivedMs).toISOString(),
      });
      expect(typeof (sealtrail as { seq: unknown }).seq).toBe('string');
      expect((sealtrail as { record_hash: string }).record_hash).toMatch(/^[0-9a-f]{64}$/);
    }
    // The event's stored bytes are spliced, not re-serialized.
    const firstLine = readFileSync(path, 'utf8').split('\n')[0]!;
    const bytes = canonicalBytes(events[0]).toString('utf8');
    expect(firstLine.startsWith(bytes.slice(0, -1))).toBe(true);
    expect(`${firstLine}\n`).toBe(encodeNativeLine(stored[0]!).toString('utf8'));
  });

  it('skips records flagged duplicateId but moves past them', async () => {
    const retried = event(1);
    await commit(event(0), retried, event(2), { ...retried }, event(4));
    const flags = (await spool.read(-1n, 10)).map((r) => r.duplicateId);
    expect(flags).toEqual([false, false, false, true, false]);

    const e = create();
    await e.start();
    await caughtUp(e);
    const got = lines();
    expect(got.map((l) => (l.sealtrail as { seq: string }).seq)).toEqual(['0', '1', '2', '4']);
    expect(got.filter((l) => l.id === retried.id)).toHaveLength(1);
    expect(await spool.getCursor('file:archive')).toMatchObject({
      offset: '4',
      file_bytes: statSync(path).size,
    });
  });

  it('delivers records committed while it runs, in spool order', async () => {
    const e = create();
    await e.start();
    await caughtUp(e);
    expect(existsSync(path)).toBe(true);
    expect(lines()).toEqual([]);
    for (let i = 0; i < 4; i++) await commit(event(i * 2), event(i * 2 + 1));
    await caughtUp(e);
    expect(lines().map((l) => (l.actor as { user: string }).user)).toEqual(
      Array.from({ length: 8 }, (_, i) => `user${i}`),
    );
  });

  it('resumes after its cursor on restart', async () => {
    await commit(event(0), event(1), event(2), event(3));
    const e1 = create();
    await e1.start();
    await caughtUp(e1);
    await stop(e1);
    const size = statSync(path).size;
    expect(await spool.getCursor('file:archive')).toMatchObject({ offset: '3', file_bytes: size });

    await commit(event(4), event(5));
    const e2 = create();
    await e2.start();
    expect(e2.lag()).toBe(2n);
    await caughtUp(e2);
    const seqs = lines().map((l) => (l.sealtrail as { seq: string }).seq);
    expect(seqs).toEqual(['0', '1', '2', '3', '4', '5']);
  });

  it('cuts bytes written past the cursor before a crash and writes no line twice', async () => {
    await commit(event(0), event(1), event(2));
    const e1 = create();
    await e1.start();
    await caughtUp(e1);
    await stop(e1);
    const cursor = await spool.getCursor<{ offset: string; file_bytes: number }>('file:archive');
    expect(cursor).toMatchObject({ offset: '2', file_bytes: statSync(path).size });

    // More records arrive; the exporter "crashed" after writing some of them (a whole line and
    // a torn one) but before it recorded its cursor.
    await commit(event(3), event(4));
    const [r3, r4] = await spool.read(2n, 10);
    const torn = encodeNativeLine(r4!).subarray(0, 40);
    appendFileSync(path, Buffer.concat([encodeNativeLine(r3!), torn]));
    expect(statSync(path).size).toBeGreaterThan(cursor!.file_bytes);

    const e2 = create();
    await e2.start();
    await caughtUp(e2);
    const got = lines();
    expect(got.map((l) => (l.sealtrail as { seq: string }).seq)).toEqual(['0', '1', '2', '3', '4']);
    expect(new Set(got.map((l) => l.id)).size).toBe(5);
    expect(await spool.getCursor('file:archive')).toMatchObject({
      offset: '4',
      file_bytes: statSync(path).size,
    });
  });

  it('cuts plain garbage past the cursor when nothing new arrived', async () => {
    await commit(event(0), event(1));
    const e1 = create();
    await e1.start();
    await caughtUp(e1);
    await stop(e1);
    const before = readFileSync(path);
    appendFileSync(path, Buffer.from('\x00\xffnot a line{"id":'));

    const e2 = create();
    await e2.start();
    await caughtUp(e2);
    await stop(e2);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(lines()).toHaveLength(2);
  });

  it('keeps a cursor per exporter name', async () => {
    await commit(event(0), event(1));
    const a = create('a');
    await a.start();
    await caughtUp(a);
    await stop(a);
    expect(await spool.getCursor('file:a')).toMatchObject({ offset: '1' });
    expect(await spool.getCursor('file:b')).toBeUndefined();
  });

  it('stops without having started, and stops twice', async () => {
    const e = create();
    await e.stop();
    await e.stop();
    const s = create();
    await s.start();
    await s.stop();
    await s.stop();
  });
});
