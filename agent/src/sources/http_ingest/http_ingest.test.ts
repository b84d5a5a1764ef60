import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditEvent, decodeEvent } from '@sealtrail/event';
import { createLogger, Registry } from '@sealtrail/telemetry';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rawPublicKey } from '../../identity/identity.js';
import { chainStartEvent } from '../../journal/events.js';
import { Journal } from '../../journal/journal.js';
import type { Source } from '../source.js';
import { httpIngestConfigSchema } from './config.js';
import { httpIngestSource, type ItemResult, splitBody } from './http_ingest.js';

const AGENT_ID = '0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b';
const HOST: AuditEvent['host'] = { id: AGENT_ID, name: 'web-1', os: 'linux' };
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Reply {
  accepted: number;
  rejected: number;
  results: ItemResult[];
}

let dir: string;
let journal: Journal;
let highWater: number;
let source: Source;
let registry: Registry;

function create(config: Record<string, unknown> = {}): Source {
  registry = new Registry();
  const s = httpIngestSource.create(
    {
      journal,
      host: HOST,
      log: createLogger('test', 'silent'),
      registry,
      maxEventBytes: 64 * 1024,
      overHighWater: () => journal.backlogRecords >= highWater,
      redact: (e) => e,
    },
    httpIngestConfigSchema.parse({ type: 'http_ingest', name: 'apps', ...config }),
  );
  return s;
}

function post(body: string, contentType = 'application/json', s = source): Promise<Response> {
  return Promise.resolve(
    s.routes!.request('/v1/events', { method: 'POST', body, headers: { 'content-type': contentType } }),
  );
}

/** Events sealed after record 0 (the chain start), decoded. */
async function stored(): Promise<AuditEvent[]> {
  const records = await journal.read({ chain: 0, seq: 0n }, 100_000, Number.MAX_SAFE_INTEGER);
  return records.map((r) => decodeEvent(r.eventBytes!));
}

const login = {
  category: 'authentication',
  type: 'auth.login.failure',
  action: 'login',
  outcome: 'failure',
  actor: { user: 'alice', ip: '203.0.113.9' },
};

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sealtrail-http-ingest-'));
  const publicKey = rawPublicKey(generateKeyPairSync('ed25519').publicKey);
  journal = new Journal({
    dir: join(dir, 'journal'),
    agentId: AGENT_ID,
    hooks: { chainStart: (start) => chainStartEvent(HOST, publicKey, start) },
  });
  await journal.open();
  highWater = 1_000_000;
  source = create();
  await source.start();
});

afterEach(async () => {
  await source.stop();
  await journal.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('http_ingest POST /v1/events', () => {
  it('accepts one object with 202, fills what the agent owns, and seals it before replying', async () => {
    const res = await post(JSON.stringify(login));
    expect(res.status).toBe(202);
    const body = (await res.json()) as Reply;
    expect(body.accepted).toBe(1);
    expect(body.rejected).toBe(0);
    expect(body.results).toHaveLength(1);
    const r = body.results[0]!;
    expect(r).toMatchObject({ index: 0, status: 'accepted' });
    const id = (r as { id: string }).id;
    expect(id).toMatch(UUID_V7);

    const events = await stored();
    expect(events).toHaveLength(1);
    const ev = events[0]!;
    expect(ev).toMatchObject({
      ...login,
      id,
      severity: 'info',
      host: HOST,
      source: { kind: 'http_ingest', name: 'apps' },
    });
    expect(ev.time).toBe(ev.observed_time);
    expect(journal.head?.seq).toBe(1n);

    const metrics = await registry.metrics();
    expect(metrics).toMatch(/sealtrail_http_ingest_items_total\{source="apps",outcome="accepted"\} 1/);
  });

  it('keeps a given id and time, and applies defaults for severity and outcome', async () => {
    const id = '01920000-0000-7000-8000-000000000abc';
    const res = await post(
      JSON.stringify({
        category: 'application',
        type: 'app.order.created',
        action: 'create',
        id,
        time: '2026-01-02T03:04:05+02:00',
      }),
    );
    expect(res.status).toBe(202);
    const body = (await res.json()) as Reply;
    expect(body.results[0]).toEqual({ index: 0, status: 'accepted', id });
    const [ev] = await stored();
    expect(ev!.id).toBe(id);
    // Normalised to UTC with Z; the fraction of a second is kept as given (none here).
    expect(ev!.time).toBe('2026-01-02T01:04:05Z');
    expect(ev!.severity).toBe('info');
    expect(ev!.outcome).toBe('unknown');
  });

  it('answers a mixed array with 207, per-item results, and seals only the valid items in order', async () => {
    const items = [
      { ...login, actor: { user: 'a' } },
      { category: 'authentication', type: 'auth.login.failure' }, // no action
      { ...login, actor: { user: 'b' } },
      { ...login, severity: 'apocalyptic' },
      { ...login, id: 'not-a-uuid' },
      { ...login, actor: { user: 'c' } },
    ];
    const res = await post(JSON.stringify(items));
    expect(res.status).toBe(207);
    const body = (await res.json()) as Reply;
    expect(body.accepted).toBe(3);
    expect(body.rejected).toBe(3);
    expect(body.results.map((r) => [r.index, r.status])).toEqual([
      [0, 'accepted'],
      [1, 'rejected'],
      [2, 'accepted'],
      [3, 'rejected'],
      [4, 'rejected'],
      [5, 'accepted'],
    ]);
    const rejected = body.results.filter((r) => r.status === 'rejected');
    for (const r of rejected) expect(r.code).toBe('invalid');
    expect(rejected[0]!.error).toMatch(/^action: /);
    expect(rejected[1]!.error).toMatch(/^severity: /);
    expect(rejected[2]!.error).toMatch(/^id: /);

    const events = await stored();
    expect(events.map((e) => e.actor?.user)).toEqual(['a', 'b', 'c']);
    const acceptedIds = body.results.flatMap((r) => (r.status === 'accepted' ? [r.id] : []));
    expect(events.map((e) => e.id)).toEqual(acceptedIds);
  });

  it('treats a malformed NDJSON line as one malformed item; the others are accepted', async () => {
    const ndjson = [
      JSON.stringify({ ...login, actor: { user: 'a' } }),
      '{"category": "authentication", "type":',
      '',
      JSON.stringify({ ...login, actor: { user: 'b' } }),
      '',
    ].join('\n');
    const res = await post(ndjson, 'application/x-ndjson');
    expect(res.status).toBe(207);
    const body = (await res.json()) as Reply;
    expect(body.accepted).toBe(2);
    expect(body.results[0]).toMatchObject({ index: 0, status: 'accepted' });
    expect(body.results[1]).toMatchObject({ index: 1, status: 'rejected', code: 'malformed' });
    expect((body.results[1] as { error: string }).error).toMatch(/^not JSON: /);
    expect(body.results[2]).toMatchObject({ index: 2, status: 'accepted' });
    expect((await stored()).map((e) => e.actor?.user)).toEqual(['a', 'b']);
  });

  it('refuses a body that is not JSON with 400 and stores nothing', async () => {
    const res = await post('{"category": "authentication",');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/request body is not JSON/);
    expect(await stored()).toEqual([]);
  });

  it('refuses a JSON body that is not an object or array with 400', async () => {
    for (const body of ['42', '"login"', 'null', 'true']) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/must be a JSON object, an array/);
    }
    expect(await stored()).toEqual([]);
  });

  it('answers 400 when every item is invalid, naming each reason', async () => {
    const res = await post(JSON.stringify([{}, 'text']));
    expect(res.status).toBe(400);
    const body = (await res.json()) as Reply;
    expect(body.accepted).toBe(0);
    expect(body.results.every((r) => r.status === 'rejected' && r.code === 'invalid')).toBe(true);
    expect((body.results[0] as { error: string }).error).toMatch(/category/);
    expect(await stored()).toEqual([]);
  });

  it('refuses host and source in the input: they are the agent’s to set', async () => {
    const res = await post(
      JSON.stringify([
        { ...login, host: { id: '0190a0b1-7c2d-7e3f-8a4b-000000000000', name: 'other', os: 'linux' } },
        { ...login, source: { kind: 'fim', name: 'etc' } },
      ]),
    );
    expect(res.status).toBe(400);
    const body = (await res.json()) as Reply;
    expect(body.results[0]).toMatchObject({ status: 'rejected', code: 'invalid' });
    expect((body.results[0] as { error: string }).error).toMatch(/unknown key "host"/);
    expect((body.results[1] as { error: string }).error).toMatch(/unknown key "source"/);
    expect(await stored()).toEqual([]);
  });

  it('refuses an item with a lone surrogate (no canonical form) as invalid, not as a server error', async () => {
    // `\ud800` is valid JSON text for a string JCS cannot write.
    const res = await post(
      `[${JSON.stringify(login)},{"category":"application","type":"app.x","action":"a","message":"\\ud800"}]`,
    );
    expect(res.status).toBe(207);
    const body = (await res.json()) as Reply;
    expect(body.results[0]).toMatchObject({ status: 'accepted' });
    expect(body.results[1]).toMatchObject({ status: 'rejected', code: 'invalid' });
    expect((body.results[1] as { error: string }).error).toMatch(/surrogate/i);
    expect((await stored()).map((e) => e.type)).toEqual(['auth.login.failure']);
  });

  it('refuses an item that redaction made invalid, and seals what redaction left valid', async () => {
    await source.stop();
    source = create({ redact: [{ field: 'actor', action: 'mask' }] });
    await source.start();
    const res = await post(JSON.stringify([login, { ...login, actor: undefined }]));
    expect(res.status).toBe(207);
    const body = (await res.json()) as Reply;
    expect(body.results[0]).toMatchObject({ status: 'rejected', code: 'invalid' });
    expect((body.results[0] as { error: string }).error).toMatch(/after redaction.*actor/);
    expect(body.results[1]).toMatchObject({ status: 'accepted' });
    expect(await stored()).toHaveLength(1);
  });

  it('refuses an event over 64 KiB canonical with 413 per item and stores nothing', async () => {
    const big = { ...login, attributes: { blob: 'x'.repeat(70 * 1024) } };
    const res = await post(JSON.stringify(big));
    expect(res.status).toBe(413);
    const body = (await res.json()) as Reply;
    expect(body.results).toEqual([
      {
        index: 0,
        status: 'rejected',
        code: 'too_large',
        error: expect.stringMatching(/^event is \d+ canonical bytes, over the limit of 65536$/),
      },
    ]);
    expect(await stored()).toEqual([]);
    expect(journal.head?.seq).toBe(0n);

    // Beside a valid item, only the large one is refused (207); nothing is truncated.
    const mixed = await post(JSON.stringify([big, login]));
    expect(mixed.status).toBe(207);
    const mixedBody = (await mixed.json()) as Reply;
    expect(mixedBody.results.map((r) => (r.status === 'rejected' ? r.code : r.status))).toEqual([
      'too_large',
      'accepted',
    ]);
    const events = await stored();
    expect(events).toHaveLength(1);
    expect(events[0]!.attributes).toBeUndefined();
  });

  it('refuses a body over max_body_bytes with 413 and stores nothing', async () => {
    const small = create({ max_body_bytes: '1KiB' });
    const items = Array.from({ length: 20 }, () => login);
    const res = await post(JSON.stringify(items), 'application/json', small);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/request body over 1024 bytes/);
    expect(await stored()).toEqual([]);
    // The same source takes a body under the limit.
    expect((await post(JSON.stringify(login), 'application/json', small)).status).toBe(202);
    await small.stop();
  });

  it('refuses more items than max_events_per_request with 413', async () => {
    const few = create({ max_events_per_request: 2 });
    const res = await post(JSON.stringify([login, login, login]), 'application/json', few);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/3 events in one request/);
    expect(await stored()).toEqual([]);
    await few.stop();
  });

  it('answers 429 with Retry-After while the journal is over its high-water mark', async () => {
    highWater = 3; // record 0 + 2 events reach it
    expect((await post(JSON.stringify([login, login]))).status).toBe(202);
    expect(journal.backlogRecords).toBe(3);
    const res = await post(JSON.stringify(login));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { error: string }).error).toMatch(/high-water/);
    expect(await stored()).toHaveLength(2);

    // Once the collector acknowledged records, producers get through again.
    await journal.ack({ chain: 0, seq: 1n });
    expect((await post(JSON.stringify(login))).status).toBe(202);
  });

  it('answers 503 with Retry-After once stopped', async () => {
    await source.stop();
    const res = await post(JSON.stringify(login));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await stored()).toEqual([]);
  });

  it('only serves POST /v1/events', async () => {
    expect((await source.routes!.request('/v1/events')).status).toBe(404);
    expect((await source.routes!.request('/v1/other', { method: 'POST', body: '{}' })).status).toBe(404);
  });
});

describe('splitBody', () => {
  it('splits NDJSON by line, skipping blank lines, and marks bad lines by item index', () => {
    const r = splitBody('{"a":1}\n\nnope\r\n{"b":2}\n', 'application/x-ndjson; charset=utf-8');
    expect(typeof r).toBe('object');
    const { items, malformed } = r as Exclude<typeof r, string>;
    expect(items).toEqual([{ a: 1 }, undefined, { b: 2 }]);
    expect([...malformed.keys()]).toEqual([1]);
  });

  it('reads a JSON object or array by default', () => {
    expect(splitBody('{"a":1}', '')).toEqual({ items: [{ a: 1 }], malformed: new Map() });
    expect(splitBody('[{"a":1},2]', 'application/json')).toEqual({
      items: [{ a: 1 }, 2],
      malformed: new Map(),
    });
    expect(typeof splitBody('7', 'application/json')).toBe('string');
  });
});
