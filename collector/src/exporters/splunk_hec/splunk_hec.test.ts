import { afterEach, describe, expect, it } from 'vitest';
import type { Exporter } from '../exporter.js';
import { conformance, metric, mockHttp, settingsFor, TestSpool, waitUntil } from '../testdata/kit.js';
import { splunkHecExporterConfigSchema } from './config.js';
import { splunkHecExporter } from './exporter.js';

const ORIGIN = 'http://splunk.test:8088';
const KEY = 'splunk_hec:splunk';

function config(extra: Record<string, unknown> = {}) {
  return splunkHecExporterConfigSchema.parse({
    type: 'splunk_hec',
    name: 'splunk',
    endpoint: ORIGIN,
    token: 'tok-123',
    index: 'security',
    batch_timeout: 0,
    retry_initial_backoff: 10,
    retry_max_backoff: 50,
    compression: 'none',
    ...extra,
  });
}

/** HEC bodies are JSON objects one after another, not an array. */
interface HecObject {
  event: { id: string; sealtrail: Record<string, string> };
  fields: Record<string, unknown>;
  [k: string]: unknown;
}

function hecObjects(body: string): HecObject[] {
  return body
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as HecObject);
}

const SUCCESS = { status: 200, body: { text: 'Success', code: 0 } };

describe('splunk_hec exporter', () => {
  let ts: TestSpool;
  let exporter: Exporter | undefined;
  afterEach(async () => {
    await exporter?.stop();
    exporter = undefined;
    await ts?.close();
  });

  it('passes the conformance checks', async () => {
    const { agent } = mockHttp(ORIGIN, () => SUCCESS);
    await conformance((s) => splunkHecExporter.create({ ...s, dispatcher: agent }, config()));
  });

  it('sends several event objects per body with time/host/source/sourcetype/index and flat fields', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(5);
    const { agent, seen } = mockHttp(ORIGIN, () => SUCCESS);
    const s = settingsFor(ts.spool, { dispatcher: agent });
    exporter = splunkHecExporter.create(s, config({ compression: 'gzip' }));
    await exporter.start();
    await waitUntil('cursor at 4', async () => (await ts.cursor(KEY)) === '4');
    expect(seen).toHaveLength(1);
    const req = seen[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/services/collector/event');
    expect(req.headers.authorization).toBe('Splunk tok-123');
    expect(req.gzipped).toBe(true);
    expect(req.body.trimStart().startsWith('[')).toBe(false);
    const objs = hecObjects(req.body);
    expect(objs.map((o) => o.event.id)).toEqual(events.map((e) => e.id));
    expect(objs[0]).toMatchObject({
      time: Date.parse(events[0]!.time) / 1000,
      host: 'web-1',
      source: 'sealtrail',
      sourcetype: '_json',
      index: 'security',
      fields: { category: 'authentication', type: 'auth.login.failure', severity: 'medium', user: 'alice' },
    });
    for (const v of Object.values(objs[0]!.fields)) expect(typeof v).toBe('string');
    expect(objs[0]!.event.sealtrail).toMatchObject({ seq: '0' });
    expect(await metric(s.registry, 'sealtrail_exporter_events_sent_total', { exporter: 'splunk' })).toBe(5);
    expect(await metric(s.registry, 'sealtrail_exporter_lag_records', { exporter: 'splunk' })).toBe(0);
  });

  it('invalid-event-number: keeps what was indexed, dead-letters the bad event, resends only the rest', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(10);
    const { agent, seen } = mockHttp(ORIGIN, (_req, n) =>
      n === 0
        ? { status: 400, body: { text: 'Invalid data format', code: 6, 'invalid-event-number': 3 } }
        : SUCCESS,
    );
    const s = settingsFor(ts.spool, { dispatcher: agent });
    exporter = splunkHecExporter.create(s, config());
    await exporter.start();
    await waitUntil('cursor at 9', async () => (await ts.cursor(KEY)) === '9');
    expect(seen).toHaveLength(2);
    expect(hecObjects(seen[0]!.body)).toHaveLength(10);
    expect(hecObjects(seen[1]!.body).map((o) => o.event.id)).toEqual(events.slice(4).map((e) => e.id));
    const dead = await ts.deadLetters('splunk');
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ offset: '3', event_id: events[3]!.id, code: 'ST_SPLUNK_CODE_6' });
    expect(dead[0]!.reason).toContain('Invalid data format');
    expect(await metric(s.registry, 'sealtrail_exporter_events_sent_total', { exporter: 'splunk' })).toBe(9);
    expect(
      await metric(s.registry, 'sealtrail_exporter_events_dead_lettered_total', { exporter: 'splunk' }),
    ).toBe(1);
  });

  it('server busy (503, code 9) is retried after Retry-After, the cursor waiting meanwhile', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(3);
    let cursorDuringFailure: string | undefined = 'unread';
    const { agent, seen } = mockHttp(ORIGIN, async (_req, n) => {
      if (n === 0)
        return { status: 503, body: { text: 'Server is busy', code: 9 }, headers: { 'retry-after': '1' } };
      cursorDuringFailure = await ts.cursor(KEY);
      return SUCCESS;
    });
    const s = settingsFor(ts.spool, { dispatcher: agent });
    exporter = splunkHecExporter.create(s, config());
    const t0 = Date.now();
    await exporter.start();
    await waitUntil('cursor at 2', async () => (await ts.cursor(KEY)) === '2');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(cursorDuringFailure).toBeUndefined();
    expect(seen).toHaveLength(2);
    expect(seen[1]!.body).toBe(seen[0]!.body);
    expect(await ts.deadLetters()).toHaveLength(0);
    expect(await metric(s.registry, 'sealtrail_exporter_events_retried_total', { exporter: 'splunk' })).toBe(
      3,
    );
    expect(await metric(s.registry, 'sealtrail_exporter_events_failed_total', { exporter: 'splunk' })).toBe(
      3,
    );
  });

  it('code 8 (internal error) with HTTP 500 keeps retrying; nothing is lost across a restart', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(4);
    const down = mockHttp(ORIGIN, () => ({ status: 500, body: { text: 'Internal server error', code: 8 } }));
    const s = settingsFor(ts.spool, { dispatcher: down.agent });
    exporter = splunkHecExporter.create(s, config());
    await exporter.start();
    await waitUntil('three attempts', () => down.seen.length >= 3);
    expect(await metric(s.registry, 'sealtrail_exporter_lag_records', { exporter: 'splunk' })).toBe(4);
    expect(
      await metric(s.registry, 'sealtrail_exporter_lag_seconds', { exporter: 'splunk' }),
    ).toBeGreaterThan(0);
    expect(
      await metric(s.registry, 'sealtrail_exporter_request_duration_seconds', { exporter: 'splunk' }),
    ).toBeGreaterThanOrEqual(3);
    await exporter.stop();
    expect(await ts.cursor(KEY)).toBeUndefined();
    const up = mockHttp(ORIGIN, () => SUCCESS);
    exporter = splunkHecExporter.create(settingsFor(ts.spool, { dispatcher: up.agent }), config());
    await exporter.start();
    await waitUntil('cursor at 3', async () => (await ts.cursor(KEY)) === '3');
    expect(hecObjects(up.seen[0]!.body).map((o) => o.event.id)).toEqual(events.map((e) => e.id));
  });

  it('an invalid token (403, code 4) is permanent: dead letters with the reason, no retry', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(3);
    const { agent, seen } = mockHttp(ORIGIN, () => ({
      status: 403,
      body: { text: 'Invalid token', code: 4 },
    }));
    exporter = splunkHecExporter.create(settingsFor(ts.spool, { dispatcher: agent }), config());
    await exporter.start();
    await waitUntil('cursor at 2', async () => (await ts.cursor(KEY)) === '2');
    expect(seen).toHaveLength(1);
    const dead = await ts.deadLetters('splunk');
    expect(dead.map((d) => d.offset)).toEqual(['0', '1', '2']);
    expect(dead[0]!.reason).toContain('Invalid token');
  });

  it('indexer acknowledgement: the cursor waits until the ackId is acknowledged', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(2);
    let polls = 0;
    const channel = '11111111-2222-4333-8444-555555555555';
    const { agent, seen } = mockHttp(ORIGIN, (req) => {
      if (req.path.startsWith('/services/collector/ack')) {
        polls++;
        return { status: 200, body: { acks: { '7': polls >= 3 } } };
      }
      return { status: 200, body: { text: 'Success', code: 0, ackId: 7 } };
    });
    exporter = splunkHecExporter.create(
      settingsFor(ts.spool, { dispatcher: agent }),
      config({ ack: { enabled: true, channel, poll_interval: 20 } }),
    );
    await exporter.start();
    await waitUntil('cursor at 1', async () => (await ts.cursor(KEY)) === '1');
    expect(polls).toBe(3);
    expect(seen[0]!.headers['x-splunk-request-channel']).toBe(channel);
    const ack = seen.find((r) => r.path.startsWith('/services/collector/ack'))!;
    expect(ack.path).toBe(`/services/collector/ack?channel=${channel}`);
    expect(JSON.parse(ack.body)).toEqual({ acks: [7] });
  });

  it('filters by min severity and types; the cursor passes what it skips', async () => {
    ts = await new TestSpool().open();
    await ts.add([]);
    const events = await ts.addMany(6, (i) => ({
      severity: i % 2 === 0 ? 'high' : 'low',
      type: i < 4 ? 'auth.login.failure' : 'file.modified',
    }));
    const { agent, seen } = mockHttp(ORIGIN, () => SUCCESS);
    const s = settingsFor(ts.spool, { dispatcher: agent });
    exporter = splunkHecExporter.create(s, config({ filter: { min_severity: 'high', types: ['auth.*'] } }));
    await exporter.start();
    await waitUntil('cursor at 5', async () => (await ts.cursor(KEY)) === '5');
    expect(hecObjects(seen[0]!.body).map((o) => o.event.id)).toEqual([events[0]!.id, events[2]!.id]);
    expect(await metric(s.registry, 'sealtrail_exporter_events_filtered_total', { exporter: 'splunk' })).toBe(
      4,
    );
  });

  it('replays dead letters queued by the operator when it starts', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(2);
    const bad = mockHttp(ORIGIN, () => ({ status: 400, body: { text: 'Incorrect index', code: 7 } }));
    exporter = splunkHecExporter.create(settingsFor(ts.spool, { dispatcher: bad.agent }), config());
    await exporter.start();
    await waitUntil('cursor at 1', async () => (await ts.cursor(KEY)) === '1');
    await exporter.stop();
    expect(await ts.deadLetters('splunk')).toHaveLength(2);
    expect(await ts.spool.queueReplay('splunk')).toBe(2);
    const good = mockHttp(ORIGIN, () => SUCCESS);
    exporter = splunkHecExporter.create(settingsFor(ts.spool, { dispatcher: good.agent }), config());
    await exporter.start();
    await waitUntil('replayed', () => good.seen.length === 1);
    await waitUntil('queue empty', async () => {
      for await (const _ of ts.spool.deadLetters('splunk', true)) return false;
      return true;
    });
    expect(hecObjects(good.seen[0]!.body).map((o) => o.event.id)).toEqual(events.map((e) => e.id));
    expect(await ts.deadLetters('splunk')).toHaveLength(0);
    expect(await ts.cursor(KEY)).toBe('1');
  });
});
