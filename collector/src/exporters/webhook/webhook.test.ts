import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Exporter } from '../exporter.js';
import { conformance, mockHttp, settingsFor, TestSpool, waitUntil } from '../testdata/kit.js';
import { webhookExporterConfigSchema } from './config.js';
import { webhookExporter } from './exporter.js';

const ORIGIN = 'https://hooks.test';
const KEY = 'webhook:hook';
const SECRET = 'a-long-shared-secret-0123456789';

function config(extra: Record<string, unknown> = {}) {
  return webhookExporterConfigSchema.parse({
    type: 'webhook',
    name: 'hook',
    url: `${ORIGIN}/sealtrail/events?src=collector`,
    secret: SECRET,
    headers: { authorization: 'Bearer abc' },
    batch_timeout: 0,
    retry_initial_backoff: 10,
    retry_max_backoff: 50,
    ...extra,
  });
}

describe('webhook exporter', () => {
  let ts: TestSpool;
  let exporter: Exporter | undefined;
  afterEach(async () => {
    await exporter?.stop();
    exporter = undefined;
    await ts?.close();
  });

  it('passes the conformance checks', async () => {
    const { agent } = mockHttp(ORIGIN, () => ({ status: 204 }));
    await conformance((s) => webhookExporter.create({ ...s, dispatcher: agent }, config()));
  });

  it('posts a JSON array signed with HMAC-SHA256 over "<timestamp>.<body>"', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(3);
    const { agent, seen } = mockHttp(ORIGIN, () => ({ status: 204 }));
    exporter = webhookExporter.create(
      settingsFor(ts.spool, { dispatcher: agent }),
      config({ schema: 'ocsf' }),
    );
    await exporter.start();
    await waitUntil('cursor at 2', async () => (await ts.cursor(KEY)) === '2');
    const req = seen[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/sealtrail/events?src=collector');
    expect(req.headers.authorization).toBe('Bearer abc');
    const ts0 = req.headers['x-sealtrail-timestamp']!;
    expect(Math.abs(Number(ts0) - Date.now() / 1000)).toBeLessThan(60);
    const expected = createHmac('sha256', SECRET).update(`${ts0}.${req.body}`).digest('hex');
    expect(req.headers['x-sealtrail-signature']).toBe(`sha256=${expected}`);
    const body = JSON.parse(req.body) as { metadata: { uid: string }; class_uid: number }[];
    expect(body.map((b) => b.metadata.uid)).toEqual(events.map((e) => e.id));
    expect(body[0]!.class_uid).toBe(3002);
  });

  it('retries 500 and 408, dead-letters a 404', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(2);
    const statuses = [500, 408, 404];
    const { agent, seen } = mockHttp(ORIGIN, (_req, n) => ({ status: statuses[n] ?? 200 }));
    exporter = webhookExporter.create(
      settingsFor(ts.spool, { dispatcher: agent }),
      config({ batch_max_records: 2 }),
    );
    await exporter.start();
    await waitUntil('cursor at 1', async () => (await ts.cursor(KEY)) === '1');
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((r) => r.body)).size).toBe(1);
    const dead = await ts.deadLetters('hook');
    expect(dead.map((d) => d.offset)).toEqual(['0', '1']);
    expect(dead[0]!.reason).toContain('HTTP 404');
  });

  it('a network error is retried like a 5xx', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(1);
    let calls = 0;
    const { agent } = mockHttp(ORIGIN, () => {
      calls++;
      if (calls === 1) throw Object.assign(new Error('socket hang up'), { code: 'UND_ERR_SOCKET' });
      return { status: 200 };
    });
    exporter = webhookExporter.create(settingsFor(ts.spool, { dispatcher: agent }), config());
    await exporter.start();
    await waitUntil('cursor at 0', async () => (await ts.cursor(KEY)) === '0');
    expect(calls).toBe(2);
    expect(await ts.deadLetters()).toHaveLength(0);
  });
});
