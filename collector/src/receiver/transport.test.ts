/**
 * Transport and authentication, at component level: a real Receiver on 127.0.0.1:0 serving
 * gRPC over real TLS (the CA and server certificate `initPki` makes), the real Enroll RPC
 * through `createClient(Ingest, …)`, and the admin API (`collectorApp`) through `app.request`.
 * Every refusal is checked for its status and message, for what it stored (nothing, or
 * evidence), and for the collector carrying on with another agent.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createClient, Ingest, type ServiceClient } from '@sealtrail/proto';
import { createLogger, Registry } from '@sealtrail/telemetry';
import type { Hono } from 'hono';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadApiKeyHashes } from '../api/auth.js';
import { collectorApp } from '../api/http.js';
import { type InitResult, initPki } from '../pki/pki.js';
import { createToken, readTokenSecret } from '../pki/tokens.js';
import { Spool } from '../spool/spool.js';
import { Receiver } from './receiver.js';
import { Conn, FakeAgent } from './testkit/agent.js';

const MAX_MESSAGE_BYTES = 256 * 1024;

let root: string;
let pki: InitResult;
/** A second, unrelated collector PKI: its CA did not sign our server certificate. */
let otherPki: InitResult;

let dir: string;
let spool: Spool;
let receiver: Receiver;
let registry: Registry;
let app: Hono;
let client: ServiceClient<typeof Ingest.method>;
const clients: ServiceClient<typeof Ingest.method>[] = [];
const conns: Conn[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sealtrail-transport-'));
  pki = await initPki(join(root, 'pki'));
  otherPki = await initPki(join(root, 'other-pki'));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const secret = () => readTokenSecret(pki.paths.tokenSecret);
const token = (ttlMs = 60_000) => createToken(secret(), ttlMs).token;

/** A client of the receiver over TLS, trusting `caFile` (default: our collector's CA). */
function tlsClient(caFile = pki.paths.caCert): ServiceClient<typeof Ingest.method> {
  const c = createClient(Ingest, receiver.boundAddress, grpc.credentials.createSsl(readFileSync(caFile)));
  clients.push(c);
  return c;
}

function connect(via = client): Conn {
  const c = new Conn(via);
  conns.push(c);
  return c;
}

beforeEach(async () => {
  dir = mkdtempSync(join(root, 'collector-'));
  spool = new Spool(join(dir, 'spool'));
  await spool.open();
  registry = new Registry();
  receiver = new Receiver({
    listen: '127.0.0.1:0',
    tls: { cert: readFileSync(pki.paths.serverCert), key: readFileSync(pki.paths.serverKey) },
    tokenSecret: secret,
    spool,
    log: createLogger('test', 'silent'),
    registry,
    maxMessageBytes: MAX_MESSAGE_BYTES,
  });
  await receiver.start();
  app = collectorApp({
    registry,
    spool,
    receiver,
    apiKeyHashes: () => loadApiKeyHashes(pki.paths.apiKeys),
    tokenSecret: secret,
    tokenTtlMs: 60_000,
  });
  client = tlsClient();
});

afterEach(async () => {
  for (const c of conns.splice(0)) if (!c.ended) c.cancel();
  for (const c of clients.splice(0)) c.close();
  await receiver.stop();
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The admin API, with our API key unless another is given (null: none). */
function api(method: string, path: string, body?: unknown, key: string | null = pki.apiKey) {
  return app.request(`/api/v1${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((n, v) => n + v.value, 0);
}

/** The gRPC error a call failed with (fails the test when it succeeded). */
async function rpcError(call: Promise<unknown>): Promise<grpc.ServiceError> {
  const r = await call.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) throw new Error(`expected the call to fail, it returned ${JSON.stringify(r.v)}`);
  return r.e as grpc.ServiceError;
}

async function storedSeqs(agentId: string): Promise<bigint[]> {
  return (await spool.read(-1n, 100_000)).filter((r) => r.agentId === agentId).map((r) => r.seq);
}

async function violations(agentId?: string) {
  const out: Record<string, unknown>[] = [];
  for await (const v of spool.violations()) if (!agentId || v.agent_id === agentId) out.push(v);
  return out;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A new agent, enrolled with a fresh token. */
async function enrolled(): Promise<FakeAgent> {
  const agent = new FakeAgent();
  expect((await agent.enroll(client, token())).agentId).toBe(agent.agentId);
  return agent;
}

/** Handshake and record 0 plus `n` events stored. */
async function streaming(agent: FakeAgent, n: number): Promise<Conn> {
  const c = connect();
  await c.handshake(agent);
  c.batch(agent.chainId, agent.grow(n));
  expect((await c.expect('ack')).throughSeq).toBe(BigInt(agent.records.length - 1));
  return c;
}

/** The collector still enrolls, authenticates and stores for another agent, over a new connection. */
async function stillServes(): Promise<void> {
  const via = tlsClient();
  const other = new FakeAgent();
  await other.enroll(via, token());
  const c = connect(via);
  expect(await c.handshake(other)).toMatchObject({ hasPosition: false });
  c.batch(other.chainId, other.grow(2));
  expect((await c.expect('ack')).throughSeq).toBe(2n);
  expect((await c.close()).code).toBe(grpc.status.OK);
  expect(await storedSeqs(other.agentId)).toEqual([0n, 1n, 2n]);
}

describe('enrollment (the Enroll RPC over TLS)', () => {
  it('enrolls an agent with a fresh token and registers its key, which then authenticates its streams', async () => {
    const agent = new FakeAgent();
    const res = await agent.enroll(client, token());
    expect(res.agentId).toBe(agent.agentId);
    const state = await spool.getAgent(agent.agentId);
    expect(state).toMatchObject({
      agent_id: agent.agentId,
      public_key: agent.publicKey.toString('base64'),
      hostname: 'host-under-test',
      enrolled_at: expect.any(String),
      chain_id: null,
      seq: null,
      records: 0,
    });
    expect(Date.now() - Date.parse(state!.enrolled_at!)).toBeLessThan(60_000);

    const c = connect();
    expect(await c.handshake(agent)).toMatchObject({ chainId: '', hasPosition: false });
    c.batch(agent.chainId, agent.grow(3));
    expect(await c.expect('ack')).toMatchObject({ chainId: agent.chainId, throughSeq: 3n });
    expect(await storedSeqs(agent.agentId)).toEqual([0n, 1n, 2n, 3n]);
    expect((await c.close()).code).toBe(grpc.status.OK);

    // Enrolling again with the same key (a re-run of `enroll`) keeps the agent's chain state.
    await agent.enroll(client, token());
    expect(await spool.getAgent(agent.agentId)).toMatchObject({ chain_id: agent.chainId, seq: '3' });
  });

  it('hands out tokens through the admin API, behind an API key', async () => {
    expect((await api('POST', '/tokens', undefined, null)).status).toBe(401);
    expect((await api('POST', '/tokens', undefined, 'stk_not-a-key')).status).toBe(403);
    const res = await api('POST', '/tokens');
    expect(res.status).toBe(201);
    const { token: t, expires } = (await res.json()) as { token: string; expires: string };
    expect(t).toMatch(/^st1\./);
    expect(Date.parse(expires) - Date.now()).toBeGreaterThan(50_000);
    const agent = new FakeAgent();
    expect((await agent.enroll(client, t)).agentId).toBe(agent.agentId);
  });

  it('refuses a used token with UNAUTHENTICATED, also when agents race for it, and registers nobody else', async () => {
    const t = token();
    const first = new FakeAgent();
    await first.enroll(client, t);
    const second = new FakeAgent();
    const err = await rpcError(second.enroll(client, t));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toBe('enrollment token was already used');
    expect(await spool.getAgent(second.agentId)).toBeUndefined();

    // Five agents racing with one fresh token: exactly one enrolls.
    const shared = token();
    const racers = Array.from({ length: 5 }, () => new FakeAgent());
    const results = await Promise.allSettled(racers.map((a) => a.enroll(client, shared)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toMatchObject({
        code: grpc.status.UNAUTHENTICATED,
        details: 'enrollment token was already used',
      });
    }
    const known = await Promise.all(racers.map((a) => spool.getAgent(a.agentId)));
    expect(known.filter(Boolean)).toHaveLength(1);
    await stillServes();
  });

  it('refuses an expired token with UNAUTHENTICATED', async () => {
    const agent = new FakeAgent();
    const err = await rpcError(agent.enroll(client, createToken(secret(), -1000).token));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toBe('enrollment token has expired');
    expect(await spool.getAgent(agent.agentId)).toBeUndefined();
    await stillServes();
  });

  it('refuses forged tokens with UNAUTHENTICATED: another secret, a changed payload, garbage', async () => {
    const foreign = createToken(randomBytes(32), 60_000).token;
    // A real token whose payload was edited to live longer, keeping its MAC.
    const [prefix, payload, mac] = token(1000).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const extended = Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 86_400_000 })).toString(
      'base64url',
    );
    const cases: [string, string][] = [
      [foreign, 'enrollment token was not issued by this collector'],
      [`${prefix}.${extended}.${mac}`, 'enrollment token was not issued by this collector'],
      ['st1.bm90IGEgdG9rZW4', 'enrollment token is malformed'],
      ['', 'enrollment token is malformed'],
    ];
    for (const [t, details] of cases) {
      const agent = new FakeAgent();
      const err = await rpcError(agent.enroll(client, t));
      expect({ code: err.code, details: err.details }, t).toEqual({
        code: grpc.status.UNAUTHENTICATED,
        details,
      });
      expect(await spool.getAgent(agent.agentId)).toBeUndefined();
    }
    await stillServes();
  });

  it('refuses to enroll a known agent id with another key: ALREADY_EXISTS, the first key stays', async () => {
    const agent = await enrolled();
    const impostor = new FakeAgent({ agentId: agent.agentId });
    const err = await rpcError(impostor.enroll(client, token()));
    expect(err.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(err.details).toBe(`agent ${agent.agentId} is already enrolled with another key`);
    expect((await spool.getAgent(agent.agentId))!.public_key).toBe(agent.publicKey.toString('base64'));
    // Nor can the impostor stream as that agent.
    const c = connect();
    c.hello(impostor);
    c.respond(impostor.signChallenge((await c.expect('challenge')).nonce));
    expect((await c.expect('refusal')).code).toBe('key_mismatch');
    expect((await c.status).code).toBe(grpc.status.PERMISSION_DENIED);
    await stillServes();
  });
});

describe('stream authentication over TLS', () => {
  it('refuses an agent that never enrolled with UNAUTHENTICATED and stores nothing of it', async () => {
    const stranger = new FakeAgent();
    const c = connect();
    c.hello(stranger);
    c.respond(stranger.signChallenge((await c.expect('challenge')).nonce));
    const refusal = await c.expect('refusal');
    expect(refusal.code).toBe('unknown_agent');
    expect(refusal.message).toBe(
      `agent ${stranger.agentId} is not enrolled; run \`sealtrail-agent enroll\` with a token from \`sealtrail-collector token create\``,
    );
    const status = await c.status;
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(status.details).toMatch(/^unknown_agent: agent .* is not enrolled/);
    expect(await spool.getAgent(stranger.agentId)).toBeUndefined();
    expect(await spool.read(-1n, 10)).toEqual([]);
    expect(await metric('sealtrail_receiver_auth_failures_total', { reason: 'unknown_agent' })).toBe(1);
    await stillServes();
  });

  it('fails the TLS handshake for a client that trusts another CA, and for a plaintext client', async () => {
    const agent = new FakeAgent();
    const wrongCa = tlsClient(otherPki.paths.caCert);
    const err = await rpcError(agent.enroll(wrongCa, token()));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    // The server presents its chain up to our CA, which this client does not trust.
    expect(err.details).toMatch(/self-signed certificate in certificate chain/);
    const c = connect(wrongCa);
    c.hello(agent);
    expect((await c.status).code).toBe(grpc.status.UNAVAILABLE);

    const plain = createClient(Ingest, receiver.boundAddress, grpc.credentials.createInsecure());
    clients.push(plain);
    expect((await rpcError(agent.enroll(plain, token()))).code).toBe(grpc.status.UNAVAILABLE);

    // None of it reached the service.
    expect(await metric('sealtrail_receiver_streams_total')).toBe(0);
    expect(await spool.getAgent(agent.agentId)).toBeUndefined();
    await stillServes();
  });

  it('refuses a challenge response replayed from an earlier stream, and the genuine stream carries on', async () => {
    const agent = await enrolled();
    const first = connect();
    first.hello(agent);
    const { nonce: firstNonce } = await first.expect('challenge');
    const captured = agent.signChallenge(firstNonce);
    first.respond(captured);
    await first.expect('resume');
    first.batch(agent.chainId, agent.grow(1));
    expect((await first.expect('ack')).throughSeq).toBe(1n);

    // An attacker who saw that signature opens a new stream as the agent and replays it.
    const replay = connect();
    replay.hello(agent);
    const { nonce } = await replay.expect('challenge');
    expect(hex(nonce)).not.toBe(hex(firstNonce));
    replay.respond(captured);
    const refusal = await replay.expect('refusal');
    expect(refusal).toMatchObject({ code: 'bad_signature', message: 'challenge signature does not verify' });
    const status = await replay.status;
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(status.details).toBe('bad_signature: challenge signature does not verify');
    expect(await metric('sealtrail_receiver_auth_failures_total', { reason: 'bad_signature' })).toBe(1);

    // The refused stream never took over: the agent's own stream goes on.
    first.batch(agent.chainId, agent.grow(1));
    expect((await first.expect('ack')).throughSeq).toBe(2n);
    expect(await storedSeqs(agent.agentId)).toEqual([0n, 1n, 2n]);
    await stillServes();
  });

  it('revoking through the admin API stops the live stream; later streams get PERMISSION_DENIED', async () => {
    const agent = await enrolled();
    const live = await streaming(agent, 2);
    const path = `/agents/${agent.agentId}/revoke`;
    expect((await api('POST', path, { reason: 'x' }, null)).status).toBe(401);
    expect((await api('POST', path, { reason: 'x' }, 'stk_wrong')).status).toBe(403);
    expect((await api('POST', `/agents/${new FakeAgent().agentId}/revoke`)).status).toBe(404);
    live.batch(agent.chainId, agent.grow(1));
    expect((await live.expect('ack')).throughSeq).toBe(3n);

    const res = await api('POST', path, { reason: 'host decommissioned' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      agent_id: agent.agentId,
      revoked: { at: expect.any(String), reason: 'host decommissioned' },
    });
    const stopped = await live.status;
    expect(stopped.code).toBe(grpc.status.ABORTED);
    expect(stopped.details).toMatch(/an operator changed this agent/);

    const again = connect();
    again.hello(agent);
    again.respond(agent.signChallenge((await again.expect('challenge')).nonce));
    const refusal = await again.expect('refusal');
    expect(refusal).toMatchObject({
      code: 'revoked',
      message: `agent ${agent.agentId} was revoked (host decommissioned)`,
    });
    expect((await again.status).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(await metric('sealtrail_receiver_auth_failures_total', { reason: 'revoked' })).toBe(1);

    // What it sent before stays; the revocation is on record and shown by the API.
    expect(await storedSeqs(agent.agentId)).toEqual([0n, 1n, 2n, 3n]);
    expect(await violations(agent.agentId)).toEqual([
      expect.objectContaining({ fault: 'operator_revoke', detail: 'host decommissioned' }),
    ]);
    const shown = (await (await api('GET', `/agents/${agent.agentId}`)).json()) as Record<string, unknown>;
    expect(shown).toMatchObject({ revoked: { reason: 'host decommissioned' }, seq: '3' });
    await stillServes();
  });
});

describe('what an authenticated stream may send', () => {
  it('refuses a forged checkpoint signature with FAILED_PRECONDITION and keeps the evidence', async () => {
    const agent = await enrolled();
    const c = await streaming(agent, 2);
    const stranger = generateKeyPairSync('ed25519').privateKey;
    const [r3] = agent.grow(1);
    const [cp] = agent.append(agent.checkpoint({ key: stranger, nonce: randomBytes(32) }));
    c.batch(agent.chainId, [r3!, cp!]);

    // The record before it is stored and acked; the checkpoint and anything after are not.
    expect((await c.expect('ack')).throughSeq).toBe(3n);
    const refusal = await c.expect('refusal');
    expect(refusal.code).toBe('bad_checkpoint_signature');
    expect(refusal.message).toBe(
      "integrity violation at seq 4: checkpoint at seq 4 does not verify with the agent's key",
    );
    const status = await c.status;
    expect(status.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(status.details).toMatch(/^bad_checkpoint_signature: integrity violation at seq 4/);
    expect(await storedSeqs(agent.agentId)).toEqual([0n, 1n, 2n, 3n]);
    expect(await violations(agent.agentId)).toEqual([
      expect.objectContaining({
        agent_id: agent.agentId,
        chain_id: agent.chainId,
        seq: '4',
        fault: 'bad_checkpoint_signature',
        head: { chain_id: agent.chainId, seq: '3', hash: hex(r3!.recordHash) },
        record_hash: hex(cp!.recordHash),
        event_bytes: cp!.eventBytes.toString('base64'),
      }),
    ]);
    expect(
      await metric('sealtrail_receiver_integrity_violations_total', { fault: 'bad_checkpoint_signature' }),
    ).toBe(1);
    expect(await metric('sealtrail_receiver_checkpoints_verified_total')).toBe(0);
    await stillServes();
  });

  it('refuses a checkpoint signed by the agent that claims another seq or chain', async () => {
    for (const over of [{ seq: 99n }, { chainId: crypto.randomUUID() }]) {
      const agent = await enrolled();
      const c = await streaming(agent, 1);
      const [cp] = agent.append(agent.checkpoint({ over }));
      c.batch(agent.chainId, [cp!]);
      expect((await c.expect('refusal')).code).toBe('bad_checkpoint_signature');
      expect((await c.status).code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(await storedSeqs(agent.agentId)).toEqual([0n, 1n]);
    }
    await stillServes();
  });

  it('refuses a message over the size limit with RESOURCE_EXHAUSTED; the agent resumes in smaller batches', async () => {
    const agent = await enrolled();
    const c = await streaming(agent, 1);
    // ~8 KiB events: 40 of them in one batch are over the 256 KiB limit, 20 are under it.
    const big = agent.grow(40, { attributes: { pad: 'x'.repeat(8000) } });
    c.batch(agent.chainId, big);
    const status = await c.status;
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toMatch(/larger than max/i);
    expect(await storedSeqs(agent.agentId)).toEqual([0n, 1n]);
    await stillServes();

    const again = connect();
    expect(await again.handshake(agent)).toMatchObject({ hasPosition: true, resumeAfterSeq: 1n });
    again.batch(agent.chainId, big.slice(0, 20));
    expect((await again.expect('ack')).throughSeq).toBe(21n);
    again.batch(agent.chainId, big.slice(20));
    expect((await again.expect('ack')).throughSeq).toBe(41n);
    expect(await storedSeqs(agent.agentId)).toHaveLength(42);
  });

  it('a fork blocks the agent until accept-chain through the API; then its chain from the fork on is accepted', async () => {
    const agent = await enrolled();
    const c = await streaming(agent, 4); // 0..4 stored
    const r2 = agent.records[2]!;
    // The agent's history now says something else at seq 3 (and 4).
    const alt3 = agent.seal(3n, r2.recordHash, agent.event(30, { action: 'logout' }));
    const alt4 = agent.seal(4n, alt3.recordHash, agent.event(40));
    c.batch(agent.chainId, [alt3]);
    expect((await c.expect('refusal')).code).toBe('fork');
    expect((await c.status).code).toBe(grpc.status.FAILED_PRECONDITION);

    // Blocked: even a correctly authenticated stream is refused, naming what to do.
    const blocked = connect();
    blocked.hello(agent);
    blocked.respond(agent.signChallenge((await blocked.expect('challenge')).nonce));
    const refusal = await blocked.expect('refusal');
    expect(refusal.code).toBe('chain_blocked');
    expect(refusal.message).toBe(
      `agent's chain ${agent.chainId} is blocked after a fork at seq 3; an operator must run \`sealtrail-collector agent accept-chain ${agent.agentId}\``,
    );
    expect((await blocked.status).code).toBe(grpc.status.FAILED_PRECONDITION);
    await stillServes();

    // accept-chain needs an API key, and an agent that is blocked.
    const path = `/agents/${agent.agentId}/accept-chain`;
    expect((await api('POST', path, undefined, null)).status).toBe(401);
    const other = await enrolled();
    expect((await api('POST', `/agents/${other.agentId}/accept-chain`)).status).toBe(409);

    const res = await api('POST', path);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      blocked: null,
      chain_id: agent.chainId,
      seq: '2',
      hash: hex(r2.recordHash),
    });

    // The agent resumes after the record before the fork and its version from seq 3 on is stored.
    const after = connect();
    const resume = await after.handshake(agent);
    expect(resume).toMatchObject({ chainId: agent.chainId, hasPosition: true, resumeAfterSeq: 2n });
    expect(hex(resume.expectedHash)).toBe(hex(r2.recordHash));
    after.batch(agent.chainId, [alt3, alt4]);
    expect(await after.expect('ack')).toMatchObject({ chainId: agent.chainId, throughSeq: 4n });
    expect(await spool.getAgent(agent.agentId)).toMatchObject({ seq: '4', hash: hex(alt4.recordHash) });
    expect(hex((await spool.recordHashAt(agent.agentId, agent.chainId, 3n))!)).toBe(hex(alt3.recordHash));
    // What the collector had stored stays in the spool, beside the accepted history.
    expect(await storedSeqs(agent.agentId)).toEqual([0n, 1n, 2n, 3n, 4n, 3n, 4n]);
    const evidence = await violations(agent.agentId);
    expect(evidence.map((v) => v.fault)).toEqual(['fork', 'operator_accept_chain']);
    expect(evidence[0]).toMatchObject({ seq: '3', record_hash: hex(alt3.recordHash) });
    expect(evidence[1]).toMatchObject({ accepted: { fault: 'fork', chain_id: agent.chainId, seq: '3' } });
    // The stream keeps going from there.
    after.batch(agent.chainId, [agent.seal(5n, alt4.recordHash, agent.event(50))]);
    expect((await after.expect('ack')).throughSeq).toBe(5n);
  });
});
