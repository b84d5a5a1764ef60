import { afterEach, describe, expect, it } from 'vitest';
import type { Exporter } from '../exporter.js';
import {
  conformance,
  makeEvent,
  metric,
  mockHttp,
  settingsFor,
  TestSpool,
  waitUntil,
} from '../testdata/kit.js';
import { datadogExporterConfigSchema } from './config.js';
import { datadogExporter } from './exporter.js';

const ORIGIN = 'https://http-intake.logs.datadoghq.eu';
const KEY = 'datadog:dd';

function config(extra: Record<string, unknown> = {}) {
  return datadogExporterConfigSchema.parse({
    type: 'datadog',
    name: 'dd',
    site: 'datadoghq.eu',
    api_key: 'dd-key',
    tags: ['env:test'],
    batch_timeout: 0,
    retry_initial_backoff: 10,
    retry_max_backoff: 50,
    ...extra,
  });
}

const ACCEPTED = { status: 202, body: {} };
type Log = Record<string, unknown> & { id: string };

describe('datadog exporter', () => {
  let ts: TestSpool;
  let exporter: Exporter | undefined;
  afterEach(async () => {
    await exporter?.stop();
    exporter = undefined;
    await ts?.close();
  });

  it('passes the conformance checks', async () => {
    const { agent } = mockHttp(ORIGIN, () => ACCEPTED);
    await conformance((s) => datadogExporter.create({ ...s, dispatcher: agent }, config()));
  });

  it('posts a JSON array to /api/v2/logs with DD-API-KEY and reserved attributes', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(3);
    const { agent, seen } = mockHttp(ORIGIN, () => ACCEPTED);
    exporter = datadogExporter.create(settingsFor(ts.spool, { dispatcher: agent }), config());
    await exporter.start();
    await waitUntil('cursor at 2', async () => (await ts.cursor(KEY)) === '2');
    const req = seen[0]!;
    expect(req.path).toBe('/api/v2/logs');
    expect(req.headers['dd-api-key']).toBe('dd-key');
    expect(req.gzipped).toBe(true);
    const logs = JSON.parse(req.body) as Log[];
    expect(logs.map((l) => l.id)).toEqual(events.map((e) => e.id));
    expect(logs[0]).toMatchObject({
      ddsource: 'sealtrail',
      service: 'sealtrail',
      hostname: 'web-1',
      status: 'warning',
      ddtags: 'category:authentication,type:auth.login.failure,severity:medium,env:test',
      message: 'event 0',
      timestamp: Date.parse(events[0]!.time),
    });
  });

  it('enforces the limits before sending: 1000 logs per request, a log over 1 MB dead-lettered unsent', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(1200);
    const huge = await ts.add([makeEvent({ attributes: { blob: 'x'.repeat(1_100_000) } })]);
    const { agent, seen } = mockHttp(ORIGIN, () => ACCEPTED);
    const s = settingsFor(ts.spool, { dispatcher: agent });
    exporter = datadogExporter.create(s, config({ compression: 'none' }));
    await exporter.start();
    await waitUntil('cursor at 1200', async () => (await ts.cursor(KEY)) === '1200');
    const counts = seen.map((r) => (JSON.parse(r.body) as Log[]).length);
    expect(Math.max(...counts)).toBeLessThanOrEqual(1000);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1200);
    for (const r of seen) expect(Buffer.byteLength(r.body)).toBeLessThanOrEqual(5_000_000);
    expect(seen.some((r) => r.body.includes(huge[0]!.id))).toBe(false);
    const dead = await ts.deadLetters('dd');
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      offset: '1200',
      event_id: huge[0]!.id,
      code: 'ST_DATADOG_LOG_TOO_LARGE',
    });
    expect(await metric(s.registry, 'sealtrail_exporter_events_sent_total', { exporter: 'dd' })).toBe(1200);
  });

  it('413 splits the request in halves; a single log still refused is dead-lettered', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(4, (i) => ({
      message: i === 3 ? 'too big for this intake' : `event ${i}`,
    }));
    const { agent, seen } = mockHttp(ORIGIN, (req) => {
      const logs = JSON.parse(req.body) as Log[];
      if (logs.length > 1 || req.body.includes('too big')) {
        return { status: 413, body: { errors: [{ status: '413', title: 'Payload Too Large' }] } };
      }
      return ACCEPTED;
    });
    exporter = datadogExporter.create(
      settingsFor(ts.spool, { dispatcher: agent }),
      config({ compression: 'none' }),
    );
    await exporter.start();
    await waitUntil('cursor at 3', async () => (await ts.cursor(KEY)) === '3');
    const accepted = seen
      .filter((r) => !r.body.includes('too big') && (JSON.parse(r.body) as Log[]).length === 1)
      .map((r) => (JSON.parse(r.body) as Log[])[0]!.id);
    expect(accepted).toEqual(events.slice(0, 3).map((e) => e.id));
    const dead = await ts.deadLetters('dd');
    expect(dead.map((d) => d.event_id)).toEqual([events[3]!.id]);
    expect(dead[0]!.reason).toContain('413');
  });

  it('429 honours Retry-After; 403 is permanent', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(1);
    const { agent, seen } = mockHttp(ORIGIN, (_req, n) =>
      n === 0
        ? { status: 429, body: {}, headers: { 'retry-after': '1' } }
        : { status: 403, body: { errors: ['Forbidden'] } },
    );
    exporter = datadogExporter.create(settingsFor(ts.spool, { dispatcher: agent }), config());
    const t0 = Date.now();
    await exporter.start();
    await waitUntil('cursor at 0', async () => (await ts.cursor(KEY)) === '0');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(seen).toHaveLength(2);
    expect((await ts.deadLetters('dd'))[0]!.reason).toContain('HTTP 403');
  });

  it('refuses a config over the intake limits', () => {
    expect(() => config({ batch_max_records: 5000 })).toThrow(/at most 1000 logs/);
  });
});
