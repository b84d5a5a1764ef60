/**
 * The collector's HTTP surface: health, readiness and metrics (open), and
 * `/api/v1/…` for operators behind admin API keys: agents, revocation,
 * accepting a chain after a fork, integrity evidence, enrollment tokens.
 */
import { healthRoutes, type Registry } from '@sealtrail/telemetry';
import { Hono } from 'hono';
import { createToken } from '../pki/tokens.js';
import type { Receiver } from '../receiver/receiver.js';
import type { Spool } from '../spool/spool.js';
import { requireApiKey } from './auth.js';

export interface ApiDeps {
  registry: Registry;
  spool: Spool;
  receiver: Receiver;
  apiKeyHashes: () => Buffer[];
  tokenSecret: () => Buffer | null;
  tokenTtlMs: number;
}

export function collectorApp(deps: ApiDeps): Hono {
  const { spool, receiver } = deps;
  const app = new Hono();
  app.route(
    '/',
    healthRoutes(deps.registry, () => [
      { name: 'spool', check: () => (spool.isOpen ? null : 'spool is not open') },
      { name: 'grpc_listener', check: () => (receiver.isListening ? null : 'gRPC listener is not up') },
    ]),
  );

  const api = new Hono();
  api.use('*', requireApiKey(deps.apiKeyHashes));
  api.get('/agents', async (c) => {
    const agents = [];
    for await (const a of spool.agents()) agents.push(a);
    return c.json({ agents });
  });
  api.get('/agents/:id', async (c) => {
    const a = await spool.getAgent(c.req.param('id')).catch(() => undefined);
    return a ? c.json(a) : c.json({ error: 'no such agent' }, 404);
  });
  api.post('/agents/:id/revoke', async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { reason?: string };
    const reason = body.reason ?? 'revoked by an operator';
    const st = await receiver
      .updateAgent(c.req.param('id'), (s) => {
        s.revoked = { at: new Date().toISOString(), reason };
      })
      .catch(() => undefined);
    if (!st) return c.json({ error: 'no such agent' }, 404);
    await spool.addViolation({
      time: new Date().toISOString(),
      agent_id: st.agent_id,
      fault: 'operator_revoke',
      detail: reason,
    });
    return c.json(st);
  });
  api.post('/agents/:id/accept-chain', async (c) => {
    const id = c.req.param('id');
    let accepted: unknown = null;
    const st = await receiver
      .updateAgent(id, (s) => {
        const b = s.blocked;
        if (!b) return;
        // The agent's history wins from the fork on: the collector rewinds to the record before it.
        // What it had stored there stays in the spool and in the evidence.
        accepted = b;
        s.blocked = null;
        s.chain_id = b.chain_id;
        s.seq = b.seq === '0' ? null : String(BigInt(b.seq) - 1n);
      })
      .catch(() => undefined);
    if (!st) return c.json({ error: 'no such agent' }, 404);
    if (!accepted) return c.json({ error: 'agent is not blocked' }, 409);
    if (st.seq !== null) {
      const h = await spool.recordHashAt(id, st.chain_id!, BigInt(st.seq));
      st.hash = h ? h.toString('hex') : null;
    } else st.hash = null;
    await spool.putAgent(st);
    await spool.addViolation({
      time: new Date().toISOString(),
      agent_id: id,
      fault: 'operator_accept_chain',
      detail: 'an operator accepted the agent chain after a fork',
      accepted,
    });
    return c.json(st);
  });
  api.get('/integrity', async (c) => {
    const violations = [];
    for await (const v of spool.violations()) violations.push(v);
    return c.json({ violations });
  });
  api.post('/tokens', async (c) => {
    const secret = deps.tokenSecret();
    if (!secret) return c.json({ error: 'no enrollment secret; run `sealtrail-collector init`' }, 409);
    const { token, claims } = createToken(secret, deps.tokenTtlMs);
    return c.json({ token, expires: new Date(claims.exp).toISOString() }, 201);
  });
  app.route('/api/v1', api);
  return app;
}
