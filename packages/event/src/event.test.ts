import { readFileSync } from 'node:fs';
import { SealtrailError } from '@sealtrail/errors';
import { describe, expect, it } from 'vitest';
import {
  type AuditEvent,
  canonicalBytes,
  completeIngestEvent,
  DEFAULT_MAX_EVENT_BYTES,
  decodeEvent,
  EventTooLargeError,
  encodeEvent,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  newEventId,
  validateEvent,
  validateIngestEvent,
} from './index.js';

const HOST = { id: '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b', name: 'web-1', os: 'linux' };
const SOURCE = { kind: 'log_tail' as const, name: 'auth' };

function baseEvent(overrides: Record<string, unknown> = {}): AuditEvent {
  return {
    id: '01936c2e-8a00-7000-8000-000000000001',
    time: '2024-11-20T10:00:00Z',
    observed_time: '2024-11-20T10:00:00.500Z',
    category: 'authentication',
    type: 'auth.login.failure',
    severity: 'high',
    outcome: 'failure',
    action: 'login',
    host: { ...HOST },
    source: { ...SOURCE },
    ...overrides,
  } as AuditEvent;
}

function errorsOf(input: unknown): string[] {
  const r = validateEvent(input);
  if (r.ok) throw new Error(`expected validation to fail for ${JSON.stringify(input)}`);
  return r.errors;
}

function ingestErrorsOf(input: unknown): string[] {
  const r = validateIngestEvent(input);
  if (r.ok) throw new Error(`expected ingest validation to fail for ${JSON.stringify(input)}`);
  return r.errors;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

describe('validateEvent', () => {
  it('accepts a complete event and returns it unchanged', () => {
    const e = baseEvent({
      actor: {
        user: 'alice',
        uid: '1000',
        ip: '203.0.113.7',
        session_id: 's1',
        user_agent: 'curl',
        request_id: 'r1',
      },
      resource: { kind: 'user', name: 'alice', id: '1000' },
      message: 'failed password for alice',
      attributes: { tries: 3, nested: { a: [1, 'x', null] } },
    });
    const r = validateEvent(e);
    expect(r).toEqual({ ok: true, value: e });
  });

  it('names a nested field of the wrong type by its dotted path', () => {
    const errors = errorsOf(baseEvent({ actor: { user: 'alice', ip: 5 } }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^actor\.ip: /);
    expect(errors[0]).toMatch(/expected string, received number/);
  });

  it('names an unknown top-level key', () => {
    expect(errorsOf(baseEvent({ colour: 'red' }))).toEqual(['unknown key "colour"']);
  });

  it('names unknown keys inside nested objects with their path', () => {
    expect(errorsOf(baseEvent({ host: { ...HOST, rack: 'a1' } }))).toEqual(['host: unknown key "rack"']);
    expect(errorsOf(baseEvent({ actor: { user: 'a', email: 'a@x', phone: '1' } }))).toEqual([
      'actor: unknown keys "email", "phone"',
    ]);
  });

  it('names enum violations and lists the allowed values', () => {
    const sev = errorsOf(baseEvent({ severity: 'urgent' }));
    expect(sev).toHaveLength(1);
    expect(sev[0]).toMatch(/^severity: /);
    expect(sev[0]).toContain('"critical"');
    expect(errorsOf(baseEvent({ outcome: 'maybe' }))[0]).toMatch(/^outcome: .*"unknown"/);
    expect(errorsOf(baseEvent({ category: 'auth' }))[0]).toMatch(/^category: .*"authentication"/);
    expect(errorsOf(baseEvent({ source: { kind: 'syslog', name: 'x' } }))[0]).toMatch(/^source\.kind: /);
  });

  it('reports every problem, one line each', () => {
    const errors = errorsOf(baseEvent({ severity: 'urgent', actor: { ip: 5 }, extra: true }));
    expect(errors).toHaveLength(3);
    expect(errors.some((e) => e.startsWith('severity: '))).toBe(true);
    expect(errors.some((e) => e.startsWith('actor.ip: '))).toBe(true);
    expect(errors).toContain('unknown key "extra"');
  });

  it('requires every field the agent owns', () => {
    for (const key of ['id', 'time', 'observed_time', 'category', 'type', 'severity', 'outcome', 'action']) {
      const e: Record<string, unknown> = baseEvent();
      delete e[key];
      const errors = errorsOf(e);
      expect(errors, key).toHaveLength(1);
      expect(errors[0]!.startsWith(`${key}: `), errors[0]).toBe(true);
    }
    const noHost: Record<string, unknown> = baseEvent();
    delete noHost.host;
    expect(errorsOf(noHost)[0]).toMatch(/^host: /);
  });

  it('checks formats: UUID ids, UTC times, dotted lower-case type, non-empty action', () => {
    expect(errorsOf(baseEvent({ id: 'not-a-uuid' }))[0]).toMatch(/^id: /);
    expect(errorsOf(baseEvent({ host: { ...HOST, id: 'web-1' } }))[0]).toMatch(/^host\.id: /);
    // Stored events carry UTC with `Z`; an offset is refused here (ingest normalises it).
    expect(errorsOf(baseEvent({ time: '2024-11-20T12:00:00+02:00' }))[0]).toMatch(/^time: /);
    expect(errorsOf(baseEvent({ observed_time: '2024-11-20 10:00:00' }))[0]).toMatch(/^observed_time: /);
    expect(errorsOf(baseEvent({ type: 'Auth.Login' }))[0]).toMatch(/^type: expected dotted lower case/);
    expect(errorsOf(baseEvent({ type: 'auth..login' }))[0]).toMatch(/^type: /);
    expect(errorsOf(baseEvent({ action: '' }))[0]).toMatch(/^action: /);
    expect(validateEvent(baseEvent({ time: '2024-11-20T10:00:00.123456Z' })).ok).toBe(true);
  });

  it('caps message and field lengths', () => {
    expect(validateEvent(baseEvent({ message: 'm'.repeat(MAX_MESSAGE_CHARS) })).ok).toBe(true);
    expect(errorsOf(baseEvent({ message: 'm'.repeat(MAX_MESSAGE_CHARS + 1) }))[0]).toMatch(/^message: /);
    expect(validateEvent(baseEvent({ actor: { user: 'u'.repeat(MAX_FIELD_CHARS) } })).ok).toBe(true);
    expect(errorsOf(baseEvent({ actor: { user: 'u'.repeat(MAX_FIELD_CHARS + 1) } }))[0]).toMatch(
      /^actor\.user: /,
    );
  });

  it('refuses non-objects', () => {
    expect(validateEvent(null).ok).toBe(false);
    expect(validateEvent([]).ok).toBe(false);
    expect(validateEvent('{}').ok).toBe(false);
  });
});

describe('validateIngestEvent', () => {
  const minimal = { category: 'application', type: 'app.user.deleted', action: 'delete' };

  it('requires category, type and action and names each', () => {
    const errors = ingestErrorsOf({});
    expect(errors).toHaveLength(3);
    expect(errors.map((e) => e.split(':')[0]).sort()).toEqual(['action', 'category', 'type']);
    for (const key of ['category', 'type', 'action'] as const) {
      const input: Record<string, unknown> = { ...minimal };
      delete input[key];
      const errs = ingestErrorsOf(input);
      expect(errs, key).toHaveLength(1);
      expect(errs[0]!.startsWith(`${key}: `)).toBe(true);
    }
  });

  it('defaults severity to info and outcome to unknown', () => {
    const r = validateIngestEvent(minimal);
    expect(r).toEqual({ ok: true, value: { ...minimal, severity: 'info', outcome: 'unknown' } });
  });

  it('keeps a given severity and outcome, and validates them', () => {
    const r = validateIngestEvent({ ...minimal, severity: 'critical', outcome: 'success' });
    expect(r.ok && r.value.severity).toBe('critical');
    expect(r.ok && r.value.outcome).toBe('success');
    expect(ingestErrorsOf({ ...minimal, severity: 'urgent' })[0]).toMatch(/^severity: /);
  });

  it('refuses host and source as unknown keys: an application cannot pose as another host', () => {
    expect(ingestErrorsOf({ ...minimal, host: HOST })).toEqual(['unknown key "host"']);
    expect(ingestErrorsOf({ ...minimal, source: SOURCE })).toEqual(['unknown key "source"']);
    expect(ingestErrorsOf({ ...minimal, host: HOST, source: SOURCE })).toEqual([
      'unknown keys "host", "source"',
    ]);
  });

  it('refuses observed_time, which only the agent sets', () => {
    expect(ingestErrorsOf({ ...minimal, observed_time: '2024-11-20T10:00:00Z' })).toEqual([
      'unknown key "observed_time"',
    ]);
  });

  it('requires a given id to be a UUID, and keeps it', () => {
    expect(ingestErrorsOf({ ...minimal, id: 'order-42' })[0]).toMatch(/^id: /);
    const id = '01936c2e-8a00-7abc-8def-0123456789ab';
    const r = validateIngestEvent({ ...minimal, id });
    expect(r.ok && r.value.id).toBe(id);
    if (!r.ok) return;
    const e = completeIngestEvent(r.value, { host: HOST, source: SOURCE });
    expect(e.id).toBe(id);
  });

  it('accepts a time with an offset, and completion normalises it to UTC with Z', () => {
    const r = validateIngestEvent({ ...minimal, time: '2024-11-20T12:30:00+02:00' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const e = completeIngestEvent(r.value, {
      host: HOST,
      source: SOURCE,
      now: new Date('2024-11-21T00:00:00Z'),
    });
    expect(e.time).toBe('2024-11-20T10:30:00Z');
    expect(validateEvent(e).ok).toBe(true);
  });

  it('keeps the fraction of a second exactly when normalising (no cut to milliseconds)', () => {
    const cases: [string, string][] = [
      ['2024-11-20T12:30:00.123456+02:00', '2024-11-20T10:30:00.123456Z'],
      ['2024-11-20T23:59:59.5-05:30', '2024-11-21T05:29:59.5Z'],
      ['2024-12-31T23:00:00.000000001-01:00', '2025-01-01T00:00:00.000000001Z'],
      ['2024-11-20T10:00:00.250Z', '2024-11-20T10:00:00.250Z'],
    ];
    for (const [given, expected] of cases) {
      const r = validateIngestEvent({ ...minimal, time: given });
      expect(r.ok, given).toBe(true);
      if (!r.ok) continue;
      const e = completeIngestEvent(r.value, { host: HOST, source: SOURCE });
      expect(e.time, given).toBe(expected);
      expect(validateEvent(e).ok, given).toBe(true);
    }
  });

  it('refuses a time that is not RFC 3339', () => {
    expect(ingestErrorsOf({ ...minimal, time: '20/11/2024' })[0]).toMatch(/^time: /);
    expect(ingestErrorsOf({ ...minimal, time: '2024-02-30T10:00:00Z' })[0]).toMatch(/^time: /);
  });
});

describe('completeIngestEvent', () => {
  it('fills id, time, observed_time, host and source', () => {
    const now = new Date('2024-11-20T10:00:00.123Z');
    const r = validateIngestEvent({ category: 'application', type: 'app.login', action: 'login' });
    if (!r.ok) throw new Error(r.errors.join());
    const e = completeIngestEvent(r.value, { host: HOST, source: { kind: 'http_ingest', name: 'app' }, now });
    expect(e.observed_time).toBe('2024-11-20T10:00:00.123Z');
    expect(e.time).toBe(e.observed_time);
    expect(e.host).toEqual(HOST);
    expect(e.source).toEqual({ kind: 'http_ingest', name: 'app' });
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(validateEvent(e)).toEqual({ ok: true, value: e });
  });
});

describe('newEventId (UUIDv7)', () => {
  it('has version nibble 7 and the RFC 9562 variant', () => {
    for (let i = 0; i < 50; i++) {
      const id = newEventId();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(id[14]).toBe('7');
      expect('89ab').toContain(id[19]);
    }
  });

  it('carries the current unix milliseconds in its first 48 bits', () => {
    const before = Date.now();
    const id = newEventId();
    const after = Date.now();
    const ms = Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
  });

  it('is time-ordered and unique: ids sort in the order they were made', () => {
    // Many per millisecond: the counter, not the clock, orders most of them.
    const ids = Array.from({ length: 100_000 }, () => newEventId());
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});

/** A float64 from its IEEE 754 bit pattern, as RFC 8785 Appendix B lists them. */
function f64(hex: string): number {
  return Buffer.from(hex, 'hex').readDoubleBE(0);
}

const jcs = (v: unknown) => canonicalBytes(v).toString('utf8');

describe('canonicalBytes (RFC 8785 / JCS)', () => {
  it('reproduces the RFC 8785 section 3.2.2 example', () => {
    // The input JSON text exactly as the RFC prints it.
    const input = JSON.parse(String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`);
    expect(jcs(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('reproduces the RFC 8785 section 3.2.3 sorting example (UTF-16 code unit order)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    const out = canonicalBytes(input);
    expect(out.toString('utf8')).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",' +
        '"€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
    // The bytes are UTF-8: U+0080 is c2 80, not an escape.
    expect(out.subarray(0, 8).toString('hex')).toBe('7b225c72223a2243');
    expect(out.includes(Buffer.from('22c280223a', 'hex'))).toBe(true);
  });

  it('sorts keys at every depth, including inside arrays, and keeps array order', () => {
    expect(jcs({ b: 1, a: { d: [{ z: 1, y: 2 }, 3], c: null } })).toBe(
      '{"a":{"c":null,"d":[{"y":2,"z":1},3]},"b":1}',
    );
    // Code-unit order, not locale order and not "numeric keys first".
    expect(jcs({ b: 0, B: 0, a: 0, _: 0, '10': 0, '9': 0 })).toBe('{"10":0,"9":0,"B":0,"_":0,"a":0,"b":0}');
  });

  it('formats numbers as ECMAScript does (RFC 8785 Appendix B)', () => {
    const cases: [string, string][] = [
      ['0000000000000000', '0'],
      ['8000000000000000', '0'], // -0
      ['0000000000000001', '5e-324'],
      ['8000000000000001', '-5e-324'],
      ['7fefffffffffffff', '1.7976931348623157e+308'],
      ['4340000000000000', '9007199254740992'],
      ['c340000000000000', '-9007199254740992'],
      ['4430000000000000', '295147905179352830000'],
      ['44b52d02c7e14af5', '9.999999999999997e+22'],
      ['44b52d02c7e14af6', '1e+23'],
      ['44b52d02c7e14af7', '1.0000000000000001e+23'],
      ['444b1ae4d6e2ef4e', '999999999999999700000'],
      ['444b1ae4d6e2ef4f', '999999999999999900000'],
      ['444b1ae4d6e2ef50', '1e+21'],
      ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
      ['3eb0c6f7a0b5ed8d', '0.000001'],
      ['41b3de4355555553', '333333333.3333332'],
      ['41b3de4355555554', '333333333.33333325'],
      ['41b3de4355555555', '333333333.3333333'],
      ['41b3de4355555556', '333333333.3333334'],
      ['41b3de4355555557', '333333333.33333343'],
      ['becbf647612f3696', '-0.0000033333333333333333'],
      ['43143ff3c1cb0959', '1424953923781206.2'],
    ];
    for (const [bits, expected] of cases) expect(jcs([f64(bits)]), bits).toBe(`[${expected}]`);
    expect(jcs({ a: -0, b: 1.0, c: 1e21, d: 1e20, e: 0.1, f: 1e-7, g: -1.5e-7 })).toBe(
      '{"a":0,"b":1,"c":1e+21,"d":100000000000000000000,"e":0.1,"f":1e-7,"g":-1.5e-7}',
    );
  });

  it('escapes only what JSON requires, with lower-case hex', () => {
    expect(jcs('\u0000\u0001\u001f\b\t\n\f\r"\\/\u007f\u00e9\u2028')).toBe(
      '"\\u0000\\u0001\\u001f\\b\\t\\n\\f\\r\\"\\\\/\u007fé\u2028"',
    );
    expect(canonicalBytes('é€😀').toString('hex')).toBe('22c3a9e282acf09f988022');
  });

  it('drops undefined members and writes undefined array items as null, like JSON', () => {
    expect(jcs({ a: undefined, b: [undefined, 1] })).toBe('{"b":[null,1]}');
  });

  it('refuses values that have no I-JSON form with ST_EVENT_NOT_SERIALIZABLE', () => {
    for (const bad of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      { a: -Infinity },
      '\ud800',
      { k: 1n },
      undefined,
    ]) {
      const err = thrown(() => canonicalBytes(bad));
      expect(err).toBeInstanceOf(SealtrailError);
      expect((err as SealtrailError).code).toBe('ST_EVENT_NOT_SERIALIZABLE');
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect((thrown(() => canonicalBytes(cyclic)) as SealtrailError).code).toBe('ST_EVENT_NOT_SERIALIZABLE');
  });

  it('gives the same bytes for the same event whatever the key order it was built in', () => {
    const a = baseEvent({
      actor: { user: 'alice', ip: '192.0.2.1' },
      attributes: { z: 1, a: { y: 2, b: 3 } },
    });
    const reversed = Object.fromEntries(Object.entries(a).reverse());
    reversed.actor = { ip: '192.0.2.1', user: 'alice' };
    reversed.attributes = { a: { b: 3, y: 2 }, z: 1 };
    expect(canonicalBytes(reversed).equals(canonicalBytes(a))).toBe(true);
    expect(jcs(a)).toMatch(
      /^\{"action":"login","actor":\{"ip":"192\.0\.2\.1","user":"alice"\},"attributes":/,
    );
  });
});

/** An event whose canonical bytes are exactly `size`, padded through `message`. */
function eventOfSize(size: number): AuditEvent {
  const attributes: Record<string, string> = {};
  let e = baseEvent({ message: '' });
  // message is capped at MAX_MESSAGE_CHARS, so pad with attributes, then trim to size exactly.
  let i = 0;
  while (canonicalBytes({ ...e, attributes }).length < size) attributes[`k${i++}`] = 'x'.repeat(4000);
  e = { ...e, attributes };
  const over = canonicalBytes(e).length - size;
  const last = `k${i - 1}`;
  attributes[last] = attributes[last]!.slice(0, attributes[last]!.length - over);
  e = { ...e, attributes };
  expect(canonicalBytes(e).length).toBe(size);
  return e;
}

describe('encodeEvent', () => {
  it('returns the validated event with its canonical bytes', () => {
    const e = baseEvent({ attributes: { b: 2, a: 1 } });
    const { event, bytes } = encodeEvent(e);
    expect(event).toEqual(e);
    expect(bytes.equals(canonicalBytes(e))).toBe(true);
    expect(bytes.toString('utf8')).toContain('"attributes":{"a":1,"b":2}');
  });

  it('accepts an event of exactly 64 KiB and refuses one byte more', () => {
    expect(DEFAULT_MAX_EVENT_BYTES).toBe(65536);
    const atLimit = eventOfSize(65536);
    expect(encodeEvent(atLimit).bytes.length).toBe(65536);

    const over = eventOfSize(65537);
    const err = thrown(() => encodeEvent(over));
    expect(err).toBeInstanceOf(EventTooLargeError);
    expect(err).toBeInstanceOf(SealtrailError);
    const e = err as EventTooLargeError;
    expect(e.code).toBe('ST_EVENT_TOO_LARGE');
    expect(e.size).toBe(65537);
    expect(e.limit).toBe(65536);
    expect(e.message).toContain('65537');
  });

  it('honours a configured limit', () => {
    const e = baseEvent();
    const size = canonicalBytes(e).length;
    expect(encodeEvent(e, size).bytes.length).toBe(size);
    expect((thrown(() => encodeEvent(e, size - 1)) as SealtrailError).code).toBe('ST_EVENT_TOO_LARGE');
  });

  it('refuses an invalid event with ST_EVENT_INVALID naming the path', () => {
    const err = thrown(() => encodeEvent(baseEvent({ actor: { ip: 5 } }))) as SealtrailError;
    expect(err.code).toBe('ST_EVENT_INVALID');
    expect(err.message).toMatch(/actor\.ip: /);
  });
});

describe('decodeEvent', () => {
  it('round-trips canonical bytes, including from a view into a larger buffer', () => {
    const e = baseEvent({ message: 'héllo 😀', attributes: { n: 1e21 } });
    const { bytes } = encodeEvent(e);
    expect(decodeEvent(bytes)).toEqual(e);
    const padded = Buffer.concat([Buffer.from('garbage{'), bytes, Buffer.from('}trailing')]);
    const view = new Uint8Array(padded.buffer, padded.byteOffset + 8, bytes.length);
    expect(decodeEvent(view)).toEqual(e);
  });

  it('refuses bytes that are not JSON with ST_EVENT_MALFORMED', () => {
    const good = encodeEvent(baseEvent()).bytes;
    const cases: Uint8Array[] = [
      Buffer.alloc(0),
      Buffer.from('{"id":'),
      good.subarray(0, good.length - 1),
      Buffer.from('not json'),
      Buffer.concat([good, Buffer.from('x')]),
    ];
    for (const bytes of cases) {
      const err = thrown(() => decodeEvent(bytes)) as SealtrailError;
      expect(err.code, bytes.toString()).toBe('ST_EVENT_MALFORMED');
    }
  });

  it('refuses invalid UTF-8 instead of replacing it with U+FFFD', () => {
    const good = encodeEvent(baseEvent({ message: 'ab' })).bytes;
    const at = good.indexOf('"ab"') + 1;
    const bad = Buffer.from(good);
    bad[at] = 0xff;
    const err = thrown(() => decodeEvent(bad)) as SealtrailError;
    expect(err.code).toBe('ST_EVENT_MALFORMED');
    // An overlong encoding of "a" (c1 a1) must not decode either.
    const overlong = Buffer.concat([good.subarray(0, at), Buffer.from([0xc1, 0xa1]), good.subarray(at + 1)]);
    expect((thrown(() => decodeEvent(overlong)) as SealtrailError).code).toBe('ST_EVENT_MALFORMED');
  });

  it('refuses a byte order mark', () => {
    const good = encodeEvent(baseEvent()).bytes;
    const err = thrown(() => decodeEvent(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good])));
    expect((err as SealtrailError).code).toBe('ST_EVENT_MALFORMED');
  });

  it('refuses JSON that is not a valid event with ST_EVENT_INVALID naming the path', () => {
    const err = thrown(() =>
      decodeEvent(Buffer.from(JSON.stringify(baseEvent({ severity: 'x' })))),
    ) as SealtrailError;
    expect(err.code).toBe('ST_EVENT_INVALID');
    expect(err.message).toMatch(/^severity: /);
    expect((thrown(() => decodeEvent(Buffer.from('[1,2]'))) as SealtrailError).code).toBe('ST_EVENT_INVALID');
    expect((thrown(() => decodeEvent(Buffer.from('null'))) as SealtrailError).code).toBe('ST_EVENT_INVALID');
  });
});

describe('chain test vectors (packages/chain/testdata)', () => {
  const file = new URL('../../chain/testdata/vectors.json', import.meta.url);
  const vectors = JSON.parse(readFileSync(file, 'utf8')) as {
    records: { event: unknown; canonical: string }[];
  };

  it('each vector event is valid and canonicalises to its checked-in string', () => {
    expect(vectors.records.length).toBeGreaterThanOrEqual(5);
    for (const [i, r] of vectors.records.entries()) {
      expect(validateEvent(r.event).ok, `record ${i}`).toBe(true);
      expect(canonicalBytes(r.event).toString('utf8'), `record ${i}`).toBe(r.canonical);
      expect(decodeEvent(Buffer.from(r.canonical, 'utf8')), `record ${i}`).toEqual(r.event);
    }
  });
});
