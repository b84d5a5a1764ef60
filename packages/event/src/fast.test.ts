import { describe, expect, it, vi } from 'vitest';
import {
  canonicalBytes,
  decodeEvent,
  decodeEventFast,
  eventSchema,
  isEventFast,
  isUuidBytes,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  scanEvent,
  validateEvent,
} from './index.js';
import { UUID } from './patterns.js';
import { draws } from './testkit/random.js';

// mulberry32: an LCG's low bits repeat too soon to combine fields and values well.
const { rand, pick } = draws(20241120);

const base = () => ({
  id: '01936c2e-8a00-7000-8000-000000000001',
  time: '2024-11-20T10:00:00Z',
  observed_time: '2024-11-20T10:00:00.500123Z',
  category: 'authentication',
  type: 'auth.login.failure',
  severity: 'high',
  outcome: 'failure',
  action: 'login',
  host: { id: '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b', name: 'web-1', os: 'linux' },
  source: { kind: 'log_tail', name: 'auth' },
});

/** Valid events of every shape the schema allows. */
const valid: Record<string, unknown>[] = [
  base(),
  {
    ...base(),
    actor: { user: 'root', uid: '0', ip: '10.0.0.1', session_id: 's', user_agent: 'ua', request_id: 'r' },
  },
  { ...base(), actor: {}, resource: {}, attributes: {} },
  {
    ...base(),
    resource: { kind: 'file', name: '/etc/passwd', id: 'x' },
    message: 'ü'.repeat(MAX_MESSAGE_CHARS),
  },
  { ...base(), attributes: { nested: { a: [1, null, true] }, '': '', n: 1.5 } },
  { ...base(), type: 'agent.checkpoint', category: 'agent', attributes: { seq: '12', signature: 'AA==' } },
  { ...base(), action: 'x'.repeat(MAX_FIELD_CHARS), type: `a${'.b'.repeat(63)}z` },
  { ...base(), id: '00000000-0000-0000-0000-000000000000', time: '2024-02-29T23:59:59.9Z' },
  {
    ...base(),
    id: 'FFFFFFFF-FFFF-7FFF-BFFF-FFFFFFFFFFFF',
    host: { id: 'ffffffff-ffff-ffff-ffff-ffffffffffff', name: '', os: '' },
  },
];

/** Values that stress one field: near every limit and of every JSON type. */
const oddValues: unknown[] = [
  null,
  true,
  0,
  -1.5,
  '',
  [],
  {},
  ['login'],
  'x'.repeat(MAX_FIELD_CHARS),
  'x'.repeat(MAX_FIELD_CHARS + 1),
  'y'.repeat(MAX_MESSAGE_CHARS + 1),
  '😀'.repeat(513),
  '😀'.repeat(MAX_FIELD_CHARS),
  `${'😀'.repeat(MAX_FIELD_CHARS)}x`,
  '\ud800'.repeat(MAX_FIELD_CHARS + 1),
  `${'😀'.repeat(MAX_MESSAGE_CHARS - 1)}\ud83d`,
  'login',
  'auth.login.failure',
  'Auth.Login',
  'auth..login',
  'a'.repeat(128),
  'a'.repeat(129),
  'info',
  'critical',
  'success',
  'unknown',
  'application',
  'agent',
  'fim',
  'http_ingest',
  '01936c2e-8a00-7000-8000-000000000001',
  '01936c2e-8a00-9000-8000-000000000001',
  '01936c2e-8a00-7000-c000-000000000001',
  '01936c2e8a0070008000000000000001',
  ' 01936c2e-8a00-7000-8000-000000000001',
  '2024-11-20T10:00:00Z',
  '2024-11-20T10:00:00.123456789Z',
  '2024-11-20T10:00:00+00:00',
  '2024-11-20T10:00:00z',
  '2024-11-20T10:00Z',
  '2024-11-20 10:00:00Z',
  '2023-02-29T10:00:00Z',
  '2024-13-01T10:00:00Z',
  '2024-11-20T24:00:00Z',
  '2024-11-20T10:00:00Z\n',
  { id: '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b', name: 'h', os: 'linux' },
  { id: '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b', name: 'h' },
  { id: '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b', name: 'h', os: 'linux', extra: 1 },
  { id: 'nope', name: 'h', os: 'linux' },
  { kind: 'journald', name: 'j' },
  { kind: 'journald', name: 'j', x: 1 },
  { kind: 'syslog', name: 'j' },
  { kind: 'fim' },
  { user: 'u' },
  { user: 1 },
  { kind: 'file', name: 'x'.repeat(MAX_FIELD_CHARS + 1) },
  { user: 'u', unknown: 'v' },
  { __proto__: null, user: 'u' },
];

function mutate(event: Record<string, unknown>): Record<string, unknown> {
  const e = structuredClone(event);
  const keys = [...Object.keys(eventSchema.shape), 'extra'];
  for (let n = 1 + rand(2); n > 0; n--) {
    const k = pick(keys);
    const what = rand(4);
    if (what === 0) delete e[k];
    else if (what === 1 && isPlain(e[k])) {
      // Change one field inside an object (host, source, actor, resource, attributes).
      const inner = e[k] as Record<string, unknown>;
      const ik = pick([...Object.keys(inner), 'id', 'name', 'kind', 'user', 'extra']);
      if (rand(3) === 0) delete inner[ik];
      else inner[ik] = structuredClone(pick(oddValues));
    } else e[k] = structuredClone(pick(oddValues));
  }
  return e;
}

const isPlain = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);

function decoded(bytes: Uint8Array, decode: (b: Uint8Array) => unknown) {
  try {
    return { ok: true, value: decode(bytes) };
  } catch (err) {
    return { ok: false, code: (err as { code?: string }).code, message: (err as Error).message };
  }
}

describe('isEventFast, against eventSchema as the reference', () => {
  it('the fast check knows every key of the schema (a new field needs a new case)', () => {
    expect(Object.keys(eventSchema.shape).sort()).toEqual(
      [
        'action',
        'actor',
        'attributes',
        'category',
        'host',
        'id',
        'message',
        'observed_time',
        'outcome',
        'resource',
        'severity',
        'source',
        'time',
        'type',
      ].sort(),
    );
  });

  it('accepts every valid event shape (so the fast path is the one taken)', () => {
    for (const e of valid) {
      expect(validateEvent(e).ok, JSON.stringify(e).slice(0, 200)).toBe(true);
      expect(isEventFast(JSON.parse(JSON.stringify(e))), JSON.stringify(e).slice(0, 200)).toBe(true);
    }
  });

  it('agrees with zod on 20,000 mutated events: never accepts what zod refuses', () => {
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const e = JSON.parse(JSON.stringify(mutate(pick(valid))));
      const zod = eventSchema.safeParse(e).success;
      const fast = isEventFast(e);
      if (fast && !zod) throw new Error(`fast check accepted what zod refuses: ${JSON.stringify(e)}`);
      // The only cases left to zod are those zod refuses too.
      if (zod && !fast) throw new Error(`fast check left a valid event to zod: ${JSON.stringify(e)}`);
      if (zod) accepted++;
      else refused++;
    }
    // The corpus holds plenty of both.
    expect(accepted).toBeGreaterThan(1_000);
    expect(refused).toBeGreaterThan(1_000);
  });
});

describe('decodeEventFast', () => {
  it('returns what decodeEvent returns, and throws what it throws, for canonical and broken bytes', () => {
    const inputs: Uint8Array[] = [
      ...valid.map((e) => canonicalBytes(e)),
      Buffer.from('not json'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('\ufeff{}'),
      Buffer.from('[]'),
      Buffer.from('null'),
      Buffer.from('{"__proto__":{"id":"x"}}'),
    ];
    // A lone surrogate has no canonical form; such an event still travels as (escaped) JSON.
    const bytesOf = (e: unknown) => {
      try {
        return canonicalBytes(e);
      } catch {
        return Buffer.from(JSON.stringify(e));
      }
    };
    for (let i = 0; i < 2_000; i++) inputs.push(bytesOf(mutate(pick(valid))));
    for (const bytes of inputs) {
      expect(decoded(bytes, decodeEventFast)).toEqual(decoded(bytes, decodeEvent));
    }
  });
});

describe('scanEvent, against decodeEvent as the reference', () => {
  /** The scan's answer is either "not sure" or exactly the reference's id, type and host id. */
  function agrees(bytes: Uint8Array): 'scanned' | 'left' {
    const head = scanEvent(bytes);
    if (!head) return 'left';
    const ref = decoded(bytes, decodeEvent);
    if (!ref.ok) throw new Error(`scan accepted what decodeEvent refuses: ${Buffer.from(bytes).toString()}`);
    const e = ref.value as { id: string; type: string; host: { id: string } };
    expect(head, Buffer.from(bytes).toString()).toEqual({ id: e.id, type: e.type, hostId: e.host.id });
    return 'scanned';
  }
  const bytesOf = (e: unknown) => {
    try {
      return canonicalBytes(e);
    } catch {
      return Buffer.from(JSON.stringify(e));
    }
  };
  const isAscii = (b: Uint8Array) => b.every((c) => c < 0x80);

  it('scans every valid ASCII event shape (so the scan is the path taken)', () => {
    for (const e of valid) {
      const bytes = canonicalBytes(e);
      if (isAscii(bytes)) expect(agrees(bytes), bytes.toString().slice(0, 200)).toBe('scanned');
    }
    // Escapes in free text, subarrays of a larger buffer (as protobuf hands them over).
    const escapes = Buffer.from(
      JSON.stringify({ ...base(), message: 'a "quoted"\\ \n\t\u0001 \ud800 line' }),
    );
    expect(agrees(escapes)).toBe('scanned');
    const framed = Buffer.concat([Buffer.from('xx'), escapes, Buffer.from('yy')]);
    expect(agrees(new Uint8Array(framed.buffer, framed.byteOffset + 2, escapes.length))).toBe('scanned');
  });

  it('never answers for what decodeEvent refuses: 20,000 mutated events', () => {
    const seen = { scanned: 0, left: 0, refused: 0 };
    for (let i = 0; i < 20_000; i++) {
      const bytes = bytesOf(mutate(pick(valid)));
      const r = agrees(bytes);
      seen[r]++;
      if (!decoded(bytes, decodeEvent).ok) seen.refused++;
    }
    expect(seen.scanned).toBeGreaterThan(1_000);
    expect(seen.refused).toBeGreaterThan(1_000);
  });

  it('never answers for what decodeEvent refuses: 50,000 byte-level mutations of canonical events', () => {
    // Bytes that matter to JSON's grammar and to the schema, and some that do not.
    const alphabet = Buffer.from('{}[]:,"\\/ 0123456789-+.eEuabfnrtlsx\t\n\u007f');
    let scanned = 0;
    for (let i = 0; i < 50_000; i++) {
      const base = Buffer.from(canonicalBytes(pick(valid)));
      let b: Buffer = base;
      for (let n = 1 + rand(3); n > 0; n--) {
        const at = rand(b.length + 1);
        const c = rand(8) === 0 ? rand(256) : alphabet[rand(alphabet.length)]!;
        const what = rand(4);
        if (what === 0) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
        else if (what === 1) b = Buffer.concat([b.subarray(0, at), Buffer.from([c]), b.subarray(at)]);
        else if (what === 2) b = b.subarray(0, at);
        else if (at < b.length) b = Buffer.from(b).fill(c, at, at + 1);
      }
      if (agrees(b) === 'scanned') scanned++;
    }
    // Many mutations (inside free text) leave a valid event.
    expect(scanned).toBeGreaterThan(1_000);
  });

  it('leaves to the full decode what it does not take: whitespace, non-ASCII, deep nesting, repeated keys', () => {
    const e = base();
    const cases = [
      JSON.stringify(e, null, 1),
      JSON.stringify({ ...e, message: 'ü' }),
      `\ufeff${JSON.stringify(e)}`,
      JSON.stringify({ ...e, attributes: { a: JSON.parse('['.repeat(70) + ']'.repeat(70)) } }),
      JSON.stringify(e).replace('{', '{"action":"x",'),
      JSON.stringify(e).replace('"action"', '"\\u0061ction"'),
      JSON.stringify({ ...e, message: 'x'.repeat(MAX_MESSAGE_CHARS + 1) }),
    ];
    for (const c of cases) expect(scanEvent(Buffer.from(c)), c.slice(0, 80)).toBeNull();
    // And refuses nothing by itself: each of these is for decodeEvent to judge.
    expect(decodeEvent(Buffer.from(cases[0]!)).id).toBe(e.id);
  });
});

describe('scanEvent, first event of a process', () => {
  // The scan remembers the last time, type and host id that matched, and compares the next
  // one's bytes first: before any matched, an empty value must not pass for a known one.
  for (const [field, change] of [
    ['host.id', (e: ReturnType<typeof base>) => ({ ...e, host: { ...e.host, id: '' } })],
    ['time', (e: ReturnType<typeof base>) => ({ ...e, time: '' })],
    ['observed_time', (e: ReturnType<typeof base>) => ({ ...e, observed_time: '' })],
    ['type', (e: ReturnType<typeof base>) => ({ ...e, type: '' })],
  ] as const) {
    it(`does not take an empty ${field} before any event was scanned`, async () => {
      vi.resetModules();
      const fresh = await import('./scan.js');
      const bytes = canonicalBytes(change(base()));
      expect(() => decodeEvent(bytes)).toThrow();
      expect(fresh.scanEvent(bytes)).toBeNull();
      // And after a good event, the same.
      expect(fresh.scanEvent(canonicalBytes(base()))).not.toBeNull();
      expect(fresh.scanEvent(bytes)).toBeNull();
    });
  }
});

describe('isUuidBytes, against the schema pattern', () => {
  it('agrees with UUID on 200,000 mutated UUIDs', () => {
    const alphabet = '0123456789abcdefABCDEFgG-xz\u0000 ';
    const seeds = [
      '01936c2e-8a00-7000-8000-000000000001',
      '6f1c2a4e-3b5d-4e8f-9a1b-2c3d4e5f6a7b',
      '00000000-0000-0000-0000-000000000000',
      'ffffffff-ffff-ffff-ffff-ffffffffffff',
      'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
      'A0B1C2D3-E4F5-8A6B-BC7D-8E9F0A1B2C3D',
    ];
    let valid = 0;
    for (let i = 0; i < 200_000; i++) {
      let s = pick(seeds);
      for (let n = rand(3); n > 0; n--) {
        const at = rand(s.length + 1);
        const c = alphabet[rand(alphabet.length)]!;
        const what = rand(6);
        if (what === 0) s = s.slice(0, at) + s.slice(at + 1);
        else if (what === 1) s = s.slice(0, at) + c + s.slice(at);
        else s = s.slice(0, at) + c + s.slice(at + 1);
      }
      const want = UUID.test(s);
      if (want) valid++;
      expect(isUuidBytes(Buffer.from(s, 'latin1')), s).toBe(want);
    }
    expect(valid).toBeGreaterThan(20_000);
  });
});
