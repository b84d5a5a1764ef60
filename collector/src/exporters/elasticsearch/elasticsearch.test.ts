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
import { elasticsearchExporterConfigSchema } from './config.js';
import { elasticsearchExporter } from './exporter.js';

const ORIGIN = 'http://es.test:9200';
const KEY = 'elasticsearch:es';

function config(extra: Record<string, unknown> = {}) {
  return elasticsearchExporterConfigSchema.parse({
    type: 'elasticsearch',
    name: 'es',
    endpoint: ORIGIN,
    auth: { type: 'basic', username: 'elastic', password: 's3cret' },
    batch_timeout: 0,
    retry_initial_backoff: 10,
    retry_max_backoff: 50,
    ...extra,
  });
}

interface BulkPair {
  action: { create: { _index: string; _id: string } };
  doc: Record<string, unknown>;
}

function bulkPairs(body: string): BulkPair[] {
  const lines = body.split('\n');
  expect(lines.pop()).toBe(''); // NDJSON ends with a newline
  const out: BulkPair[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    out.push({ action: JSON.parse(lines[i]!), doc: JSON.parse(lines[i + 1]!) });
  }
  return out;
}

function bulkReply(statuses: number[]) {
  return {
    status: 200,
    body: {
      took: 3,
      errors: statuses.some((s) => s >= 300),
      items: statuses.map((status) => ({
        create: {
          _index: '.ds-logs-sealtrail-default-2026.11.23-000001',
          status,
          ...(status === 400
            ? {
                error: {
                  type: 'mapper_parsing_exception',
                  reason: 'failed to parse field [user.name] of type [keyword]',
                },
              }
            : status === 409
              ? { error: { type: 'version_conflict_engine_exception', reason: 'document already exists' } }
              : status === 429
                ? {
                    error: {
                      type: 'es_rejected_execution_exception',
                      reason: 'rejected execution of coordinating operation',
                    },
                  }
                : status >= 500
                  ? { error: { type: 'unavailable_shards_exception', reason: 'primary shard is not active' } }
                  : {}),
        },
      })),
    },
  };
}

describe('elasticsearch exporter', () => {
  let ts: TestSpool;
  let exporter: Exporter | undefined;
  afterEach(async () => {
    await exporter?.stop();
    exporter = undefined;
    await ts?.close();
  });

  it('passes the conformance checks', async () => {
    const { agent } = mockHttp(ORIGIN, () => bulkReply([]));
    await conformance((s) => elasticsearchExporter.create({ ...s, dispatcher: agent }, config()));
  });

  it('sends _bulk NDJSON with create, _id = event id, into the data stream, as ECS', async () => {
    ts = await new TestSpool().open();
    const events = await ts.add([
      makeEvent(),
      makeEvent({
        category: 'file',
        type: 'file.modified',
        action: 'write',
        resource: { kind: 'file', name: '/etc/passwd' },
      }),
    ]);
    const { agent, seen } = mockHttp(ORIGIN, () => bulkReply([201, 201]));
    const s = settingsFor(ts.spool, { dispatcher: agent });
    exporter = elasticsearchExporter.create(s, config());
    await exporter.start();
    await waitUntil('cursor at 1', async () => (await ts.cursor(KEY)) === '1');
    const req = seen[0]!;
    expect(req.path).toBe('/_bulk');
    expect(req.headers['content-type']).toBe('application/x-ndjson');
    expect(req.headers.authorization).toBe(`Basic ${Buffer.from('elastic:s3cret').toString('base64')}`);
    expect(req.gzipped).toBe(true);
    const pairs = bulkPairs(req.body);
    expect(pairs.map((p) => p.action)).toEqual(
      events.map((e) => ({ create: { _index: 'logs-sealtrail-default', _id: e.id } })),
    );
    expect(pairs[0]!.doc).toMatchObject({
      '@timestamp': events[0]!.time,
      event: { id: events[0]!.id, category: ['authentication'], action: 'login', outcome: 'failure' },
      user: { name: 'alice' },
      source: { ip: '198.51.100.7' },
      host: { name: 'web-1', id: events[0]!.host.id },
      agent: { id: events[0]!.host.id },
      message: 'bad password',
    });
    expect(pairs[1]!.doc).toMatchObject({
      event: { category: ['file'], type: ['change'] },
      file: { path: '/etc/passwd', name: 'passwd' },
    });
  });

  it('walks items[]: 409 counts as delivered, 429/503 items alone are retried, 400 is dead-lettered', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(6);
    const { agent, seen } = mockHttp(ORIGIN, (_req, n) =>
      n === 0 ? bulkReply([201, 429, 400, 409, 503, 201]) : bulkReply([201, 201]),
    );
    const s = settingsFor(ts.spool, { dispatcher: agent });
    exporter = elasticsearchExporter.create(s, config({ compression: 'none' }));
    await exporter.start();
    await waitUntil('cursor at 5', async () => (await ts.cursor(KEY)) === '5');
    expect(seen).toHaveLength(2);
    expect(bulkPairs(seen[0]!.body)).toHaveLength(6);
    expect(bulkPairs(seen[1]!.body).map((p) => p.action.create._id)).toEqual([events[1]!.id, events[4]!.id]);
    const dead = await ts.deadLetters('es');
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ offset: '2', event_id: events[2]!.id, code: 'ST_ELASTIC_400' });
    expect(dead[0]!.reason).toContain('mapper_parsing_exception');
    const m = (name: string) => metric(s.registry, name, { exporter: 'es' });
    expect(await m('sealtrail_exporter_events_sent_total')).toBe(5);
    expect(await m('sealtrail_exporter_events_retried_total')).toBe(2);
    expect(await m('sealtrail_exporter_events_dead_lettered_total')).toBe(1);
  });

  it('a whole-request 429 waits for Retry-After and sends the same body again', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(2);
    const { agent, seen } = mockHttp(ORIGIN, (_req, n) =>
      n === 0
        ? { status: 429, body: { error: 'too many requests' }, headers: { 'retry-after': '1' } }
        : bulkReply([201, 201]),
    );
    exporter = elasticsearchExporter.create(settingsFor(ts.spool, { dispatcher: agent }), config());
    const t0 = Date.now();
    await exporter.start();
    await waitUntil('cursor at 1', async () => (await ts.cursor(KEY)) === '1');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(seen).toHaveLength(2);
    expect(seen[1]!.body).toBe(seen[0]!.body);
  });

  it('413 splits the batch until each part fits', async () => {
    ts = await new TestSpool().open();
    const events = await ts.addMany(4);
    const { agent, seen } = mockHttp(ORIGIN, (req) => {
      const n = bulkPairs(req.body).length;
      return n > 2 ? { status: 413, body: '' } : bulkReply(Array(n).fill(201));
    });
    exporter = elasticsearchExporter.create(settingsFor(ts.spool, { dispatcher: agent }), config());
    await exporter.start();
    await waitUntil('cursor at 3', async () => (await ts.cursor(KEY)) === '3');
    expect(seen.map((r) => bulkPairs(r.body).length)).toEqual([4, 2, 2]);
    expect(seen.slice(1).flatMap((r) => bulkPairs(r.body).map((p) => p.action.create._id))).toEqual(
      events.map((e) => e.id),
    );
    expect(await ts.deadLetters()).toHaveLength(0);
  });

  it('a 401 is permanent; API-key auth and OCSF documents with @timestamp (OpenSearch path prefix)', async () => {
    ts = await new TestSpool().open();
    await ts.addMany(1);
    const { agent, seen } = mockHttp(ORIGIN, () => ({ status: 401, body: { error: 'unauthorized' } }));
    exporter = elasticsearchExporter.create(
      settingsFor(ts.spool, { dispatcher: agent }),
      config({
        endpoint: `${ORIGIN}/opensearch/`,
        auth: { type: 'api_key', api_key: 'aWQ6a2V5' },
        schema: 'ocsf',
        index: 'sealtrail-ocsf',
      }),
    );
    await exporter.start();
    await waitUntil('cursor at 0', async () => (await ts.cursor(KEY)) === '0');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.path).toBe('/opensearch/_bulk');
    expect(seen[0]!.headers.authorization).toBe('ApiKey aWQ6a2V5');
    const [pair] = bulkPairs(seen[0]!.body);
    expect(pair!.action.create._index).toBe('sealtrail-ocsf');
    expect(pair!.doc).toMatchObject({
      class_uid: 3002,
      activity_id: 1,
      type_uid: 300201,
      severity_id: 3,
      status_id: 2,
    });
    expect(pair!.doc['@timestamp']).toBeDefined();
    const dead = await ts.deadLetters('es');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.reason).toContain('HTTP 401');
  });
});
