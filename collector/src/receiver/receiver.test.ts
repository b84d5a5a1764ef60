import { generateKeyPairSync, type KeyObject, randomBytes, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RecordHasher, uuidBytes, ZERO_HASH } from '@sealtrail/chain';
import { type AuditEvent, canonicalBytes, newEventId } from '@sealtrail/event';
import {
  createClient,
  Ingest,
  message,
  type ServiceClient,
  StreamRequestSchema,
  type StreamResponse,
} from '@sealtrail/proto';
import { createLogger, Registry } from '@sealtrail/telemetry';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool } from '../spool/spool.js';
import { Receiver } from './receiver.js';

// ---------------------------------------------------------------------------------------------
// A scripted agent: an Ed25519 key, one chain, records built the way the agent's journal builds
// them (record 0 is agent.chain.start; record_hash per packages/chain).

interface Rec {
  seq: bigint;
  recordHash: Buffer;
  eventBytes: Buffer;
  event: AuditEvent;
}

class FakeAgent {
  readonly agentId: string;
  readonly chainId = randomUUID();
  readonly privateKey: KeyObject;
  readonly publicKey: Buffer;
  readonly hasher: RecordHasher;
  readonly records: Rec[] = [];

  constructor(opts: { agentId?: string } = {}) {
    this.agentId = opts.agentId ?? randomUUID();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    this.publicKey = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    this.hasher = new RecordHasher({ agentId: this.agentId, chainId: this.chainId });
  }

  get host(): AuditEvent['host'] {
    return { id: this.agentId, name: 'host-under-test', os: 'linux' };
  }

  chainStart(): AuditEvent {
    const now = new Date().toISOString();
    return {
      id: newEventId(),
      time: now,
      observed_time: now,
      category: 'agent',
      type: 'agent.chain.start',
      severity: 'info',
      outcome: 'success',
      action: 'start',
      host: this.host,
      source: { kind: 'agent', name: 'agent' },
      attributes: {
        chain_id: this.chainId,
        public_key: this.publicKey.toString('base64'),
        previous: null,
        reason: 'first_start',
      },
    };
  }

  event(n: number, fields: Partial<AuditEvent> = {}): AuditEvent {
    const now = new Date().toISOString();
    return {
      id: newEventId(),
      time: now,
      observed_time: now,
      category: 'authentication',
      type: 'auth.login.failure',
      severity: 'medium',
      outcome: 'failure',
      action: 'login',
      actor: { user: `user${n}` },
      host: this.host,
      source: { kind: 'http_ingest', name: 'apps' },
      ...fields,
    };
  }

  /** A record at `seq` chaining to `prev` (not appended to this agent's chain). */
  seal(seq: bigint, prev: Buffer, event: AuditEvent): Rec {
    const eventBytes = canonicalBytes(event);
    return { seq, recordHash: this.hasher.seal(seq, prev, eventBytes), eventBytes, event };
  }

  /** Appends events to the chain (record 0 first, if the chain is empty). */
  append(...events: AuditEvent[]): Rec[] {
    const out: Rec[] = [];
    for (const ev of events) {
      const last = this.records.at(-1);
      const r = this.seal(last ? last.seq + 1n : 0n, last ? last.recordHash : ZERO_HASH, ev);
      this.records.push(r);
      out.push(r);
    }
    return out;
  }

  /** record 0 and `n` events. */
  grow(n: number): Rec[] {
    const events = Array.from({ length: n }, (_, i) => this.event(this.records.length + i));
    return this.append(...(this.records.length === 0 ? [this.chainStart(), ...events] : events));
  }

  signChallenge(nonce: Uint8Array, key = this.privateKey): Buffer {
    // "sealtrail/v1/challenge" || 0x00 || agent_id(16) || nonce  (proto Hello/ChallengeResponse)
    const msg = Buffer.concat([Buffer.from('sealtrail/v1/challenge\0'), uuidBytes(this.agentId), nonce]);
    return sign(null, msg, key);
  }
}

// ---------------------------------------------------------------------------------------------
// A test-side stream: every response queued, the final status captured.

type Body<C extends StreamResponse['body']['case']> = Extract<StreamResponse['body'], { case: C }>['value'];

class Conn {
  private readonly call;
  private readonly responses: StreamResponse[] = [];
  private waiter: (() => void) | null = null;
  readonly status: Promise<grpc.StatusObject>;
  ended = false;

  constructor(client: ServiceClient<typeof Ingest.method>) {
    this.call = client.stream();
    this.call.on('data', (r: StreamResponse) => {
      this.responses.push(r);
      this.waiter?.();
    });
    this.call.on('error', () => undefined); // the status promise carries it
    this.status = new Promise((resolve) =>
      this.call.on('status', (s: grpc.StatusObject) => {
        this.ended = true;
        this.waiter?.();
        resolve(s);
      }),
    );
  }

  /** The next response; fails after `timeoutMs` or when the stream ended without one. */
  async next(timeoutMs = 5_000): Promise<StreamResponse> {
    const deadline = Date.now() + timeoutMs;
    while (this.responses.length === 0) {
      if (this.ended) throw new Error('stream ended without a further response');
      if (Date.now() > deadline) throw new Error('timed out waiting for a response');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
      this.waiter = null;
    }
    return this.responses.shift()!;
  }

  async expect<C extends StreamResponse['body']['case']>(kind: C): Promise<Body<C>> {
    const r = await this.next();
    expect(
      r.body.case,
      JSON.stringify(r.body, (_, v) => (typeof v === 'bigint' ? String(v) : v)),
    ).toBe(kind);
    return r.body.value as Body<C>;
  }

  /** Every response still queued once the stream is over. */
  async rest(): Promise<StreamResponse[]> {
    await this.status;
    return this.responses.splice(0);
  }

  hello(agent: FakeAgent, publicKey = agent.publicKey): void {
    const head = agent.records.at(-1);
    this.call.write(
      message(StreamRequestSchema, {
        body: {
          case: 'hello',
          value: {
            agentId: agent.agentId,
            agentVersion: '0.0.0-test',
            hostname: 'host-under-test',
            publicKey,
            ...(head ? { head: { chainId: agent.chainId, seq: head.seq, recordHash: head.recordHash } } : {}),
          },
        },
      }),
    );
  }

  respond(signature: Uint8Array): void {
    this.call.write(
      message(StreamRequestSchema, { body: { case: 'challengeResponse', value: { signature } } }),
    );
  }

  batch(chainId: string, records: Pick<Rec, 'seq' | 'recordHash' | 'eventBytes'>[]): void {
    this.call.write(
      message(StreamRequestSchema, {
        body: {
          case: 'batch',
          value: {
            chainId,
            records: records.map((r) => ({ seq: r.seq, recordHash: r.recordHash, eventBytes: r.eventBytes })),
          },
        },
      }),
    );
  }

  /** hello → challenge → signed response → resume. */
  async handshake(agent: FakeAgent): Promise<Body<'resume'>> {
    this.hello(agent);
    const { nonce } = await this.expect('challenge');
    expect(nonce.length).toBe(32);
    this.respond(agent.signChallenge(nonce));
    return this.expect('resume');
  }

  /** Closes our half and waits for the collector to end the stream. */
  async close(): Promise<grpc.StatusObject> {
    this.call.end();
    return this.status;
  }

  cancel(): void {
    this.call.cancel();
  }
}

// ---------------------------------------------------------------------------------------------

let dir: string;
let spool: Spool;
let receiver: Receiver;
let registry: Registry;
let client: ServiceClient<typeof Ingest.method>;
const conns: Conn[] = [];

function connect(): Conn {
  const c = new Conn(client);
  conns.push(c);
  return c;
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((n, v) => n + v.value, 0);
}

async function storedRecords() {
  return spool.read(-1n, 10_000);
}

async function violations() {
  const out: Record<string, unknown>[] = [];
  for await (const v of spool.violations()) out.push(v);
  return out;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** Connects, authenticates and stores record 0 plus `n` events; returns the connection. */
async function established(agent: FakeAgent, n: number): Promise<Conn> {
  const c = connect();
  await c.handshake(agent);
  c.batch(agent.chainId, agent.grow(n));
  expect((await c.expect('ack')).throughSeq).toBe(BigInt(n));
  return c;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sealtrail-receiver-'));
  spool = new Spool(join(dir, 'spool'));
  await spool.open();
  registry = new Registry();
  receiver = new Receiver({
    listen: '127.0.0.1:0',
    spool,
    log: createLogger('test', 'silent'),
    registry,
    maxMessageBytes: 16 * 1024 * 1024,
  });
  await receiver.start();
  expect(receiver.boundAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  client = createClient(Ingest, receiver.boundAddress, grpc.credentials.createInsecure());
});

afterEach(async () => {
  for (const c of conns.splice(0)) if (!c.ended) c.cancel();
  client.close();
  await receiver.stop();
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Receiver', () => {
  it('authenticates, resumes from nothing, stores batches in order and acks through the last seq', async () => {
    const agent = new FakeAgent();
    const c = connect();
    const resume = await c.handshake(agent);
    expect(resume).toMatchObject({ chainId: '', hasPosition: false, resumeAfterSeq: 0n });
    expect(resume.expectedHash.length).toBe(0);

    const first = agent.grow(3); // seq 0..3
    c.batch(agent.chainId, first);
    expect(await c.expect('ack')).toMatchObject({ chainId: agent.chainId, throughSeq: 3n });
    const second = agent.grow(2); // seq 4..5
    c.batch(agent.chainId, second);
    expect(await c.expect('ack')).toMatchObject({ chainId: agent.chainId, throughSeq: 5n });

    const stored = await storedRecords();
    expect(stored.map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    for (const [i, r] of stored.entries()) {
      const sent = agent.records[i]!;
      expect(r.offset).toBe(BigInt(i));
      expect(r.agentId).toBe(agent.agentId);
      expect(r.chainId).toBe(agent.chainId);
      expect(r.eventBytes.equals(sent.eventBytes)).toBe(true);
      expect(r.recordHash.equals(sent.recordHash)).toBe(true);
      expect(r.duplicateId).toBe(false);
      expect(Math.abs(r.receivedMs - Date.now())).toBeLessThan(60_000);
    }
    const state = await spool.getAgent(agent.agentId);
    expect(state).toMatchObject({
      agent_id: agent.agentId,
      public_key: agent.publicKey.toString('base64'),
      hostname: 'host-under-test',
      chain_id: agent.chainId,
      seq: '5',
      hash: hex(agent.records[5]!.recordHash),
      records: 6,
      duplicates: 0,
    });
    expect(state!.chains).toEqual([
      { chain_id: agent.chainId, first_seen: expect.any(String), previous: null },
    ]);
    expect(await metric('sealtrail_receiver_records_stored_total')).toBe(6);
    expect(await metric('sealtrail_receiver_batches_total')).toBe(2);

    // The collector ends the stream cleanly when the agent closes its side.
    expect((await c.close()).code).toBe(grpc.status.OK);
  });

  it('resumes a reconnecting agent after the last stored seq, with its hash', async () => {
    const agent = new FakeAgent();
    const c1 = await established(agent, 4);
    expect((await c1.close()).code).toBe(grpc.status.OK);

    const c2 = connect();
    const resume = await c2.handshake(agent);
    expect(resume).toMatchObject({ chainId: agent.chainId, hasPosition: true, resumeAfterSeq: 4n });
    expect(hex(resume.expectedHash)).toBe(hex(agent.records[4]!.recordHash));

    // It continues the chain from there.
    c2.batch(agent.chainId, agent.grow(2));
    expect((await c2.expect('ack')).throughSeq).toBe(6n);
    expect((await storedRecords()).map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n]);
  });

  it('a newer stream of the same agent takes over from an older one', async () => {
    const agent = new FakeAgent();
    const c1 = await established(agent, 1);
    const c2 = connect();
    const resume = await c2.handshake(agent);
    expect(resume.resumeAfterSeq).toBe(1n);
    const s1 = await c1.status;
    expect(s1.code).toBe(grpc.status.ABORTED);
    expect(s1.details).toMatch(/superseded/);
    c2.batch(agent.chainId, agent.grow(1));
    expect((await c2.expect('ack')).throughSeq).toBe(2n);
  });

  it('acks resent records again without storing them twice, and counts them as duplicates', async () => {
    const agent = new FakeAgent();
    const c1 = await established(agent, 4);
    await c1.close();

    const c2 = connect();
    await c2.handshake(agent);
    // The agent lost the ack: it sends 0..4 again.
    c2.batch(agent.chainId, agent.records);
    expect(await c2.expect('ack')).toMatchObject({ chainId: agent.chainId, throughSeq: 4n });
    expect(await metric('sealtrail_receiver_duplicate_records_total')).toBe(5);
    expect(await storedRecords()).toHaveLength(5);

    // Overlapping resend: 3..4 known, 5..6 new.
    const fresh = agent.grow(2);
    c2.batch(agent.chainId, [...agent.records.slice(3, 5), ...fresh]);
    expect((await c2.expect('ack')).throughSeq).toBe(6n);
    expect(await metric('sealtrail_receiver_duplicate_records_total')).toBe(7);
    const stored = await storedRecords();
    expect(stored.map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n]);
    expect((await spool.getAgent(agent.agentId))!.records).toBe(7);
    expect(await violations()).toEqual([]);
  });

  it('refuses a forged record hash: earlier records of the batch are stored and acked, evidence kept', async () => {
    const agent = new FakeAgent();
    const c = await established(agent, 2); // 0..2 stored
    const [r3, r4, r5, r6] = agent.grow(4);
    const forged = { ...r5!, recordHash: randomBytes(32) };
    c.batch(agent.chainId, [r3!, r4!, forged, r6!]);

    expect(await c.expect('ack')).toMatchObject({ throughSeq: 4n });
    const refusal = await c.expect('refusal');
    expect(refusal.code).toBe('record_hash_mismatch');
    expect(refusal.message).toMatch(/integrity violation at seq 5/);
    const status = await c.status;
    expect(status.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(status.details).toMatch(/^record_hash_mismatch: integrity violation at seq 5/);

    expect((await storedRecords()).map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n]);
    const state = await spool.getAgent(agent.agentId);
    expect(state).toMatchObject({ seq: '4', hash: hex(r4!.recordHash) });

    const [v, ...more] = await violations();
    expect(more).toEqual([]);
    expect(v).toMatchObject({
      agent_id: agent.agentId,
      chain_id: agent.chainId,
      seq: '5',
      fault: 'record_hash_mismatch',
      head: { seq: '4', hash: hex(r4!.recordHash) },
      record_hash: hex(forged.recordHash),
      event_bytes: r5!.eventBytes.toString('base64'),
    });
    expect(
      await metric('sealtrail_receiver_integrity_violations_total', { fault: 'record_hash_mismatch' }),
    ).toBe(1);
  });

  it('refuses event bytes changed under their original hash', async () => {
    const agent = new FakeAgent();
    const c = await established(agent, 1);
    const [r2] = agent.grow(1);
    const changed = Buffer.from(r2!.eventBytes.toString().replace('"user2"', '"mallory"'));
    expect(changed.equals(r2!.eventBytes)).toBe(false);
    c.batch(agent.chainId, [{ ...r2!, eventBytes: changed }]);
    expect((await c.expect('refusal')).code).toBe('record_hash_mismatch');
    expect((await c.status).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await storedRecords()).map((r) => r.seq)).toEqual([0n, 1n]);
  });

  it('refuses a gap (a skipped seq) and stores nothing past it', async () => {
    const agent = new FakeAgent();
    const c = await established(agent, 2);
    const [, r4] = agent.grow(2); // build 3 and 4, send only 4
    c.batch(agent.chainId, [r4!]);
    const refusal = await c.expect('refusal');
    expect(refusal.code).toBe('seq_gap');
    expect(refusal.message).toMatch(/expected seq 3, found 4/);
    expect((await c.status).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await storedRecords()).map((r) => r.seq)).toEqual([0n, 1n, 2n]);
    expect(await violations()).toEqual([expect.objectContaining({ fault: 'seq_gap', seq: '3' })]);
    expect((await spool.getAgent(agent.agentId))!.seq).toBe('2');
  });

  it('refuses a fork (a known seq with a different, validly chained event) and records it', async () => {
    const agent = new FakeAgent();
    const c = await established(agent, 4);
    const r2 = agent.records[2]!;
    const alt = agent.seal(3n, r2.recordHash, agent.event(99, { action: 'logout' }));
    expect(alt.recordHash.equals(agent.records[3]!.recordHash)).toBe(false);
    c.batch(agent.chainId, [alt]);

    const refusal = await c.expect('refusal');
    expect(refusal.code).toBe('fork');
    expect((await c.status).code).toBe(grpc.status.FAILED_PRECONDITION);
    const [v] = await violations();
    expect(v).toMatchObject({
      fault: 'fork',
      seq: '3',
      record_hash: hex(alt.recordHash),
      event_bytes: alt.eventBytes.toString('base64'),
    });
    // The stored history is untouched.
    const stored = await storedRecords();
    expect(stored).toHaveLength(5);
    expect(stored[3]!.recordHash.equals(agent.records[3]!.recordHash)).toBe(true);
    expect(await metric('sealtrail_receiver_integrity_violations_total', { fault: 'fork' })).toBe(1);
  });

  it('refuses a bad challenge signature with UNAUTHENTICATED and registers nothing', async () => {
    const agent = new FakeAgent();
    const c = connect();
    c.hello(agent);
    const { nonce } = await c.expect('challenge');
    const stranger = generateKeyPairSync('ed25519').privateKey;
    c.respond(agent.signChallenge(nonce, stranger));
    expect((await c.expect('refusal')).code).toBe('bad_signature');
    const status = await c.status;
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(status.details).toMatch(/challenge signature does not verify/);
    expect(await spool.getAgent(agent.agentId)).toBeUndefined();
    expect(await metric('sealtrail_receiver_auth_failures_total', { reason: 'bad_signature' })).toBe(1);
  });

  it('refuses a signature over another nonce', async () => {
    const agent = new FakeAgent();
    const c = connect();
    c.hello(agent);
    await c.expect('challenge');
    c.respond(agent.signChallenge(randomBytes(32)));
    expect((await c.status).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('refuses a second key for a known agent id with PERMISSION_DENIED', async () => {
    const agent = new FakeAgent();
    const c1 = await established(agent, 1);
    await c1.close();

    const impostor = new FakeAgent({ agentId: agent.agentId });
    const c2 = connect();
    c2.hello(impostor);
    const { nonce } = await c2.expect('challenge');
    c2.respond(impostor.signChallenge(nonce)); // a valid signature, by the wrong key
    expect((await c2.expect('refusal')).code).toBe('key_mismatch');
    expect((await c2.status).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await spool.getAgent(agent.agentId))!.public_key).toBe(agent.publicKey.toString('base64'));
    expect(await metric('sealtrail_receiver_auth_failures_total', { reason: 'key_mismatch' })).toBe(1);
  });

  it('refuses a batch before authentication', async () => {
    const agent = new FakeAgent();
    const c = connect();
    c.hello(agent);
    await c.expect('challenge');
    c.batch(agent.chainId, agent.grow(1));
    expect((await c.status).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(await storedRecords()).toEqual([]);
  });

  it('refuses a hello whose agent id is not a UUID', async () => {
    const agent = new FakeAgent();
    Object.defineProperty(agent, 'agentId', { value: 'agent-7' });
    const c = connect();
    c.hello(agent);
    expect((await c.expect('refusal')).code).toBe('bad_agent_id');
    expect((await c.status).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('refuses a chain whose record 0 is not agent.chain.start', async () => {
    const agent = new FakeAgent();
    const c = connect();
    await c.handshake(agent);
    const [r0, r1] = agent.append(agent.event(0), agent.event(1));
    c.batch(agent.chainId, [r0!, r1!]);
    const refusal = await c.expect('refusal');
    expect(refusal.code).toBe('bad_chain_start');
    expect(refusal.message).toMatch(/record 0 is auth\.login\.failure, not agent\.chain\.start/);
    expect((await c.status).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await storedRecords()).toEqual([]);
    expect((await spool.getAgent(agent.agentId))!.seq).toBeNull();
    expect(await violations()).toEqual([expect.objectContaining({ fault: 'bad_chain_start', seq: '0' })]);
  });

  it('keeps a record with an already stored event id in the chain, flagged duplicateId', async () => {
    const agent = new FakeAgent();
    const c = connect();
    await c.handshake(agent);
    const retried = agent.event(1);
    // The app retried a POST whose answer it lost: the same event arrives in two records.
    c.batch(agent.chainId, agent.append(agent.chainStart(), retried, agent.event(2), retried));
    expect((await c.expect('ack')).throughSeq).toBe(3n);
    // …and once more in a later batch.
    c.batch(agent.chainId, agent.append(agent.event(4), { ...retried }));
    expect((await c.expect('ack')).throughSeq).toBe(5n);

    const stored = await storedRecords();
    expect(stored.map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    expect(stored.map((r) => r.duplicateId)).toEqual([false, false, false, true, false, true]);
    expect(stored[3]!.eventBytes.equals(stored[1]!.eventBytes)).toBe(true);
    const state = await spool.getAgent(agent.agentId);
    expect(state).toMatchObject({ seq: '5', records: 6, duplicates: 2 });
    expect(await metric('sealtrail_receiver_duplicate_event_ids_total')).toBe(2);
    expect(await violations()).toEqual([]);
  });

  it('records a new chain of the same agent and its link to the previous one', async () => {
    const agent = new FakeAgent();
    const c1 = await established(agent, 1);
    await c1.close();

    // The agent lost its journal and starts chain 2 (same identity), naming the old head.
    const next = new FakeAgent({ agentId: agent.agentId });
    Object.assign(next, { privateKey: agent.privateKey, publicKey: agent.publicKey });
    const start = next.chainStart();
    const previous = { chain_id: agent.chainId, last_seq: '1', last_hash: hex(agent.records[1]!.recordHash) };
    start.attributes = { ...start.attributes, previous, reason: 'journal_lost' };
    const c2 = connect();
    const resume = await c2.handshake(next);
    expect(resume.chainId).toBe(agent.chainId);
    c2.batch(next.chainId, next.append(start, next.event(1)));
    expect(await c2.expect('ack')).toMatchObject({ chainId: next.chainId, throughSeq: 1n });
    const state = await spool.getAgent(agent.agentId);
    expect(state).toMatchObject({ chain_id: next.chainId, seq: '1', records: 4 });
    expect(state!.chains.map((l) => [l.chain_id, l.previous])).toEqual([
      [agent.chainId, null],
      [next.chainId, previous],
    ]);
  });
});
