import { CATEGORIES, canonicalBytes, decodeEvent, eventSchema, OUTCOMES, SEVERITIES } from '@sealtrail/event';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtValid, type EventDraft, EventEncoder, fastEventId, isoUtc } from './emit.js';
import { compileRedaction, type RedactRule, redactRuleSchema } from './redact.js';
import { type Kit, makeKit } from './testkit.js';

let kit: Kit;
beforeAll(async () => {
  kit = await makeKit();
});
afterAll(async () => {
  await kit.close();
});

/** Mostly valid choices, sometimes not: both verdicts come up often. */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });
const text = mostly(fc.string({ maxLength: 8 }), fc.string({ minLength: 1020, maxLength: 1030 }));
const scalar = fc.oneof(text, fc.integer(), fc.constant(undefined), fc.constant(''));
const draft: fc.Arbitrary<EventDraft> = fc.record(
  {
    time: mostly(
      fc.date({ min: new Date(0), max: new Date('2100-01-01') }),
      fc.oneof(
        fc.date(),
        fc.integer({ min: -1e16, max: 1e16 }),
        fc.constantFrom('2024-03-03T10:15:01Z', 'not a time', '+010000-01-01T00:00:00Z', ''),
      ),
    ),
    category: fc.oneof(fc.constantFrom(...CATEGORIES), fc.constant('nonsense' as never)),
    type: fc.oneof(fc.constantFrom('log.line', 'auth.login.failure', 'a'), fc.string({ maxLength: 10 })),
    action: fc.oneof(fc.constantFrom('log', 'login'), fc.string({ maxLength: 3 })),
    severity: fc.oneof(fc.constantFrom(...SEVERITIES), fc.constant('loud' as never)),
    outcome: fc.oneof(fc.constantFrom(...OUTCOMES), fc.constant('maybe' as never)),
    actor: fc.dictionary(
      fc.constantFrom('user', 'uid', 'ip', 'session_id', 'user_agent', 'request_id', 'x'),
      scalar,
    ),
    resource: fc.dictionary(fc.constantFrom('kind', 'name', 'id', 'other'), scalar),
    message: fc.oneof(text, fc.string({ minLength: 8190, maxLength: 8200 })),
    attributes: fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(scalar, fc.jsonValue({ maxDepth: 2 }))),
  },
  { requiredKeys: ['category', 'type', 'action'] },
);

const rule: fc.Arbitrary<RedactRule> = fc
  .record({
    field: fc.constantFrom(
      'actor',
      'actor.user',
      'resource',
      'resource.name',
      'message',
      'action',
      'attributes',
    ),
    action: fc.constantFrom('drop', 'mask', 'hash'),
    with: fc.constantFrom('', '[REDACTED]', 'x'.repeat(1100)),
    key: fc.constant('0123456789abcdef0123'),
  })
  .map(({ field, action, with: w, key }) =>
    action === 'drop'
      ? { field, action }
      : action === 'mask'
        ? { field, action, with: w }
        : { field, action, key },
  )
  .filter((r) => redactRuleSchema.safeParse(r).success)
  .map((r) => redactRuleSchema.parse(r));

describe('fastEventId', () => {
  it('writes UUIDv7 ids carrying their millisecond, unique across pool refills', () => {
    const ids = new Set<string>();
    const t0 = 1_700_000_000_000;
    // 1,000 ids: two and a half pools of 400; the millisecond moves every 7 ids.
    for (let i = 0; i < 1000; i++) {
      const ms = t0 + Math.floor(i / 7);
      const id = fastEventId(ms);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(eventSchema.shape.id.safeParse(id).success).toBe(true);
      expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(ms);
      ids.add(id);
    }
    expect(ids.size).toBe(1000);
    expect(Number.parseInt(fastEventId(0).slice(0, 8), 16)).toBe(0);
    expect(fastEventId(2 ** 48 - 1).slice(0, 13)).toBe('ffffffff-ffff');
  });
});

describe('builtValid: the event schema’s verdict on built events, without zod', () => {
  it('agrees with eventSchema on random drafts after random redaction', () => {
    const enc = new EventEncoder(kit.settings, 'log_tail', 'prop');
    const { host } = kit.settings;
    const source = enc.source;
    let valid = 0;
    fc.assert(
      fc.property(draft, fc.array(rule, { maxLength: 1 }), (d, rules) => {
        const e = compileRedaction(rules)(enc.build(d, new Date()));
        const want = eventSchema.safeParse(e).success;
        expect(builtValid(e, host, source)).toBe(want);
        if (want) valid++;
      }),
      { numRuns: 5_000 },
    );
    // Both verdicts were exercised.
    expect(valid).toBeGreaterThan(100);
    expect(valid).toBeLessThan(4_900);
  });

  it('refuses a host or source it was not given as checked', () => {
    const enc = new EventEncoder(kit.settings, 'log_tail', 'prop');
    const e = enc.build({ category: 'system', type: 'log.line', action: 'log' });
    expect(builtValid(e, kit.settings.host, enc.source)).toBe(true);
    expect(builtValid(e, null, enc.source)).toBe(false);
    expect(builtValid(e, kit.settings.host, { ...enc.source })).toBe(false);
  });
});

describe('EventEncoder', () => {
  it('seals what the schema accepts and stands in for what it refuses, the same with the full check', () => {
    const fast = new EventEncoder(kit.settings, 'log_tail', 'same');
    const full = new EventEncoder(kit.settings, 'log_tail', 'same', [], { external: true });
    fc.assert(
      fc.property(draft, (d) => {
        const now = new Date();
        const [a] = fast.encodeAll([d], now).map((b) => decodeEvent(b));
        const [b] = full.encodeAll([d], now).map((x) => decodeEvent(x));
        const ok = eventSchema.safeParse(fast.build(d, now)).success;
        expect(a!.type).toBe(ok ? d.type : 'agent.event.invalid');
        expect({ ...b, id: a!.id }).toEqual(a);
      }),
      { numRuns: 1_000 },
    );
  });

  it('clips long actor and resource fields, naming them in the draft’s order', () => {
    const enc = new EventEncoder(kit.settings, 'log_tail', 't');
    const long = 'x'.repeat(1100);
    const e = enc.build({
      category: 'system',
      type: 'log.line',
      action: 'log',
      actor: { user: long, ip: long, uid: 7 },
      resource: { name: long, kind: 'file' },
    });
    expect(e.actor).toEqual({ ip: 'x'.repeat(1024), uid: '7', user: 'x'.repeat(1024) });
    expect(e.resource).toEqual({ kind: 'file', name: 'x'.repeat(1024) });
    expect(e.attributes).toEqual({ clipped_fields: ['actor.user', 'actor.ip', 'resource.name'] });
  });

  it('builds members in JCS order, so the canonical bytes are the JSON text of the event', () => {
    const enc = new EventEncoder(kit.settings, 'log_tail', 't');
    const e = enc.build({
      category: 'authentication',
      type: 'auth.login.failure',
      action: 'login',
      actor: { user: 'root', ip: '203.0.113.9' },
      resource: { name: 'sshd', kind: 'service' },
      message: 'm',
    });
    expect(Object.keys(e)).toEqual([...Object.keys(e)].sort());
    expect(Object.keys(e.actor!)).toEqual(['ip', 'user']);
    expect(canonicalBytes(e).toString()).toBe(JSON.stringify(e));
  });
});

describe('EventEncoder canonical bytes', () => {
  const canonicalOfItself = (b: Buffer) => canonicalBytes(JSON.parse(b.toString('utf8'))).toString('utf8');

  it('writes the canonical bytes of what it built, with and without redaction', () => {
    fc.assert(
      fc.property(draft, fc.array(rule, { maxLength: 1 }), (d, rules) => {
        const enc = new EventEncoder(kit.settings, 'log_tail', 'jcs', rules);
        const [b] = enc.encodeAll([d], new Date());
        expect(b!.toString('utf8')).toBe(canonicalOfItself(b!));
      }),
      { numRuns: 3_000 },
    );
  });

  it('orders attributes the walk has to leave to the library, and stands in for what JCS refuses', () => {
    const enc = new EventEncoder(kit.settings, 'log_tail', 'jcs');
    const base = { category: 'system', type: 'log.line', action: 'log' } as const;
    const odd = [
      { z: 1, a: { y: [{ b: 1, a: 2 }], x: null } },
      { '10': 'ten', '2': 'two', b: 1 },
      JSON.parse('{"__proto__":{"b":1,"a":2},"a":1}'),
      { a: 1e21, b: -0, c: 5e-324 },
    ];
    for (const attributes of odd) {
      const [b] = enc.encodeAll([{ ...base, attributes }]);
      expect(b!.toString('utf8')).toBe(canonicalOfItself(b!));
      expect(JSON.parse(b!.toString('utf8')).attributes).toEqual(JSON.parse(JSON.stringify(attributes)));
    }
    for (const d of [
      { ...base, attributes: { lone: '\ud800' } },
      { ...base, message: 'x\udc00' },
    ]) {
      const [b] = enc.encodeAll([d]);
      expect(decodeEvent(b!).type).toBe('agent.event.invalid');
    }
  });
});

describe('isoUtc', () => {
  it('writes what toISOString writes', () => {
    const edges = [
      0, 1, 999, 951_782_400_000, 4_107_542_399_999, 253_402_300_799_999, 253_402_300_800_000, -1,
    ];
    for (const ms of edges) expect(isoUtc(ms), String(ms)).toBe(new Date(ms).toISOString());
    fc.assert(
      fc.property(fc.integer({ min: -62_198_755_200_000, max: 253_402_300_799_999 }), (ms) => {
        expect(isoUtc(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 20_000 },
    );
  });
});
