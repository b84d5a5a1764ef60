import { statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Kit, makeKit } from '../common/testkit.js';
import { httpIngestConfigSchema } from './config.js';
import { httpIngestSource } from './http_ingest.js';

const TOKEN = 'a-long-enough-test-token';
const event = { category: 'application', type: 'app.user.login', action: 'login', actor: { ip: '10.1.2.3' } };

function post(socketPath: string, body: unknown, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(
      {
        socketPath,
        agent: false,
        path: '/v1/events',
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    // A 401 may be answered before the body is read; the write then fails with EPIPE while the answer arrives.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    req.end(data);
  });
}

describe('http_ingest', () => {
  let kit: Kit;
  beforeEach(async () => {
    kit = await makeKit({ redact: [{ field: 'actor.ip', action: 'hash', key: 'sixteen-char-key!' }] });
  });
  afterEach(async () => {
    await kit.close();
  });

  const create = (extra: Record<string, unknown> = {}) =>
    httpIngestSource.create(
      kit.settings,
      httpIngestConfigSchema.parse({ type: 'http_ingest', name: 'apps', ...extra }),
    );

  it('requires the bearer token when one is configured', async () => {
    const src = create({ auth_token: TOKEN });
    const send = (auth?: string) =>
      src.routes!.request('/v1/events', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: JSON.stringify(event),
      });
    expect((await send()).status).toBe(401);
    expect((await send('Bearer wrong-token-of-some-length')).status).toBe(401);
    expect((await send(`Basic ${TOKEN}`)).status).toBe(401);
    const ok = await send(`Bearer ${TOKEN}`);
    expect(ok.status).toBe(202);
    expect(await kit.events()).toHaveLength(1);
    await src.stop();
  });

  it('applies agent-wide and per-source redaction before sealing', async () => {
    const src = create({ redact: [{ field: 'attributes.password', action: 'drop' }] });
    const res = await src.routes!.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...event, attributes: { password: 'hunter2', keep: 1 } }),
    });
    expect(res.status).toBe(202);
    const [e] = await kit.events();
    expect(e!.actor!.ip).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(e!.attributes).toEqual({ keep: 1 });
    await src.stop();
  });

  it('serves a Unix socket with the configured mode instead of the TCP listener', async () => {
    const path = join(kit.dir, 'ingest.sock');
    const src = create({ unix_socket: path, unix_socket_mode: '0600', auth_token: TOKEN });
    expect(src.routes).toBeUndefined();
    await src.start();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await post(path, event)).status).toBe(401);
    const ok = await post(path, [event, event], { authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(202);
    expect(JSON.parse(ok.body)).toMatchObject({ accepted: 2, rejected: 0 });
    expect(await kit.events()).toHaveLength(2);
    await src.stop();
    // a stale socket from a killed agent does not stop the next start
    const again = create({ unix_socket: path });
    await again.start();
    expect((await post(path, event)).status).toBe(202);
    await again.stop();
  });

  it('a short token is a config error', () => {
    const r = httpIngestConfigSchema.safeParse({ type: 'http_ingest', name: 'a', auth_token: 'short' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toBe('the token must be at least 16 characters');
  });
});
