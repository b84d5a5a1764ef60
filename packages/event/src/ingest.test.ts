import { describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  completeIngestEvent,
  ingestEventFast,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  validateIngestEvent,
} from './index.js';
import { draws } from './testkit/random.js';

const { rand, pick } = draws(20261201);

const minimal = () => ({ category: 'application', type: 'app.user.login', action: 'login' });

/** Posts of every shape the ingest schema allows. */
const valid: Record<string, unknown>[] = [
  minimal(),
  { ...minimal(), severity: 'critical', outcome: 'failure', message: 'ü'.repeat(MAX_MESSAGE_CHARS) },
  { ...minimal(), id: '01936c2e-8a00-7000-8000-000000000001', time: '2024-11-20T12:30:00.123456+02:00' },
  { ...minimal(), time: '2024-11-20T10:00:00Z', actor: { user: 'alice', ip: '10.0.0.1' } },
  { ...minimal(), actor: {}, resource: {}, attributes: {} },
  {
    ...minimal(),
    resource: { kind: 'file', name: '/etc/passwd', id: 'x' },
    attributes: { a: [1, null, { b: true }] },
  },
  { type: 'a.b', action: 'x'.repeat(MAX_FIELD_CHARS), category: 'agent', attributes: { '': '', n: 1.5 } },
];

const oddValues: unknown[] = [
  null,
  true,
  0,
  '',
  [],
  {},
  'login',
  'x'.repeat(MAX_FIELD_CHARS + 1),
  '😀'.repeat(MAX_FIELD_CHARS),
  `${'😀'.repeat(MAX_FIELD_CHARS)}x`,
  'y'.repeat(MAX_MESSAGE_CHARS + 1),
  'Auth.Login',
  'auth..login',
  `a${'.b'.repeat(64)}`,
  'info',
  'unknown',
  'nope',
  'application',
  '2024-11-20T10:00:00Z',
  '2024-11-20T10:00:00+0200',
  '2024-11-20 10:00:00Z',
  '2024-13-20T10:00:00Z',
  '01936c2e-8a00-7000-8000-000000000001',
  '01936c2e-8a00-7000-8000-00000000000g',
  { user: 'x' },
  { user: 1 },
  { kind: 'file', extra: 'x' },
  { user: 'x'.repeat(MAX_FIELD_CHARS + 1) },
  Object.fromEntries([['__proto__', 'x']]),
  JSON.parse('{"__proto__": {"a": 1}}'),
];
const fields = [
  'id',
  'time',
  'category',
  'type',
  'action',
  'severity',
  'outcome',
  'actor',
  'resource',
  'message',
  'attributes',
  'host',
  'source',
  'observed_time',
  'extra',
  '__proto__',
];

/** A valid post with 1–3 fields set to odd values, removed, or added. */
function mutant(): unknown {
  const e: Record<string, unknown> = JSON.parse(JSON.stringify(pick(valid)));
  for (let i = 0, n = 1 + rand(3); i < n; i++) {
    const f = pick(fields);
    if (rand(5) === 0) delete e[f];
    else if (f === '__proto__')
      Object.defineProperty(e, f, {
        value: pick(oddValues),
        enumerable: true,
        configurable: true,
        writable: true,
      });
    else e[f] = pick(oddValues);
  }
  return rand(20) === 0 ? pick([null, [], 'x', 1, [e]]) : e;
}

describe('ingestEventFast', () => {
  it('takes every valid shape without zod, as zod takes it', () => {
    for (const item of valid) {
      const fast = ingestEventFast(item);
      const zod = validateIngestEvent(item);
      expect(zod.ok).toBe(true);
      expect(fast).not.toBeNull();
      if (zod.ok) expect(fast).toEqual(zod.value);
    }
  });

  it('never accepts what zod refuses, nor differs where both accept (20,000 mutants)', () => {
    let fastTaken = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const item = mutant();
      const fast = ingestEventFast(item);
      const zod = validateIngestEvent(item);
      if (!zod.ok) {
        refused++;
        expect(fast, JSON.stringify(item)?.slice(0, 300)).toBeNull();
        continue;
      }
      if (fast === null) continue;
      fastTaken++;
      expect(fast).toEqual(zod.value);
      // What gets sealed is the same too (the id the agent fills in aside).
      const opts = {
        host: { id: '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b', name: 'h', os: 'linux' },
        source: { kind: 'http_ingest' as const, name: 'a' },
        now: new Date(0),
      };
      const a = completeIngestEvent(fast, opts);
      const b = { ...completeIngestEvent(zod.value, opts), id: a.id };
      expect(canonicalBytes(a)).toEqual(canonicalBytes(b));
    }
    // Both branches ran often: the corpus is not all refusals or all clean.
    expect(refused).toBeGreaterThan(5_000);
    expect(fastTaken).toBeGreaterThan(1_000);
  });

  it('leaves the caller its own object', () => {
    const item = { ...minimal(), attributes: { a: 1 } };
    const fast = ingestEventFast(item)!;
    expect(fast).not.toBe(item);
    expect(item).not.toHaveProperty('severity');
    expect(fast).toMatchObject({ severity: 'info', outcome: 'unknown' });
  });
});

describe('completeIngestEvent', () => {
  it('writes members in RFC 8785 order, so the canonical text is its JSON text', () => {
    const v = validateIngestEvent({
      type: 'app.x',
      message: 'm',
      resource: { kind: 'k' },
      category: 'application',
      actor: { user: 'u' },
      action: 'a',
      attributes: { z: 1 },
      time: '2024-11-20T12:30:00+02:00',
    });
    if (!v.ok) throw new Error(v.errors.join('; '));
    const e = completeIngestEvent(v.value, {
      host: { id: '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b', name: 'h', os: 'linux' },
      source: { kind: 'http_ingest', name: 'a' },
      observed: '2024-11-20T10:31:00.000Z',
    });
    expect(canonicalBytes(e).toString()).toBe(JSON.stringify(e));
    expect(e).toMatchObject({ time: '2024-11-20T10:30:00Z', observed_time: '2024-11-20T10:31:00.000Z' });
  });
});
