import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createClient, Ingest, type ServiceClient } from '@sealtrail/proto';
import { createLogger, Registry } from '@sealtrail/telemetry';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isExportable, Spool } from '../spool/spool.js';
import { Receiver } from './receiver.js';
import { Conn, erased, FakeAgent } from './testkit/agent.js';

// A scripted agent and a test-side stream (testkit/agent.ts): records built the way the agent's
// journal builds them (record 0 is agent.chain.start; record_hash per packages/chain).

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
  // Plaintext on loopback: unknown agents are trusted on first use (TLS and enrollment: transport.test.ts).
  receiver = new Receiver({
    listen: '127.0.0.1:0',
    tls: null,
    tokenSecret: () => null,
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
    // A fork blocks the agent until an operator accepts a chain (accept-chain: transport.test.ts).
    expect((await spool.getAgent(agent.agentId))!.blocked).toMatchObject({
      fault: 'fork',
      chain_id: agent.chainId,
      seq: '3',
    });
    const again = connect();
    again.hello(agent);
    again.respond(agent.signChallenge((await again.expect('challenge')).nonce));
    expect((await again.expect('refusal')).code).toBe('chain_blocked');
    expect((await again.status).code).toBe(grpc.status.FAILED_PRECONDITION);
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

  it('refuses an event that names another host, keeping what came before it', async () => {
    const agent = new FakeAgent();
    const other = new FakeAgent();
    const c = connect();
    await c.handshake(agent);
    const rs = agent.append(
      agent.chainStart(),
      agent.event(1),
      agent.event(2, { host: other.host }),
      agent.event(3),
    );
    c.batch(agent.chainId, rs);
    expect((await c.expect('ack')).throughSeq).toBe(1n);
    const refusal = await c.expect('refusal');
    expect(refusal.code).toBe('foreign_host');
    expect(refusal.message).toContain(`names host "${other.agentId}", not the agent ${agent.agentId}`);
    expect((await c.status).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await storedRecords()).map((r) => r.seq)).toEqual([0n, 1n]);
    expect(await violations()).toEqual([expect.objectContaining({ fault: 'foreign_host', seq: '2' })]);
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

  it('accepts records whose payload the agent dropped (event hash sent instead), stored as erased', async () => {
    const agent = new FakeAgent();
    const c = await established(agent, 1);
    const [r2, r3, r4] = agent.grow(3);
    // The agent's journal was full (on_full: drop_oldest): 2 and 3 travel as their event hashes.
    c.batch(agent.chainId, [erased(r2!), erased(r3!), r4!]);
    expect((await c.expect('ack')).throughSeq).toBe(4n);
    const stored = await storedRecords();
    expect(stored.map((r) => [r.seq, r.erased])).toEqual([
      [0n, false],
      [1n, false],
      [2n, true],
      [3n, true],
      [4n, false],
    ]);
    expect(stored[2]!.eventBytes.equals(erased(r2!).eventHash!)).toBe(true);
    expect(stored.map(isExportable)).toEqual([true, true, false, false, true]);
    expect(await spool.getAgent(agent.agentId)).toMatchObject({ seq: '4', hash: hex(r4!.recordHash) });
    expect(await violations()).toEqual([]);

    // An erased record must still chain: a wrong event hash is refused like changed bytes.
    const [r5] = agent.grow(1);
    c.batch(agent.chainId, [{ ...erased(r5!), eventHash: randomBytes(32) }]);
    expect((await c.expect('refusal')).code).toBe('record_hash_mismatch');
    expect((await storedRecords()).map((r) => r.seq)).toEqual([0n, 1n, 2n, 3n, 4n]);
  });

  it('refuses an erased record 0 and a record with neither payload nor event hash', async () => {
    const agent = new FakeAgent();
    const c = connect();
    await c.handshake(agent);
    const [r0] = agent.grow(0);
    c.batch(agent.chainId, [erased(r0!)]);
    expect((await c.expect('refusal')).code).toBe('bad_chain_start');
    expect(await storedRecords()).toEqual([]);

    const other = new FakeAgent();
    const c2 = await established(other, 1);
    const [r2] = other.grow(1);
    c2.batch(other.chainId, [{ seq: r2!.seq, recordHash: r2!.recordHash, eventHash: Buffer.alloc(5) }]);
    expect((await c2.expect('refusal')).code).toBe('missing_payload');
    expect((await c2.status).code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('verifies a signed agent.checkpoint in the chain and counts it', async () => {
    const agent = new FakeAgent();
    const c = await established(agent, 3);
    const [cp] = agent.append(agent.checkpoint({ nonce: randomBytes(32) }));
    c.batch(agent.chainId, [cp!, ...agent.grow(1)]);
    expect((await c.expect('ack')).throughSeq).toBe(5n);
    expect(await metric('sealtrail_receiver_checkpoints_verified_total')).toBe(1);
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
