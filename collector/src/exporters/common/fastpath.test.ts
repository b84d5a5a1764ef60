/**
 * The hand-written encoders against the library code they replace, on seeded
 * random events (a small property test): the meta text against
 * `JSON.stringify`, the native splice against parse + spread, the syslog
 * escapes against plain replaces; and the lazy parse and pass-all filter.
 */
import { randomBytes } from 'node:crypto';
import {
  type AuditEvent,
  CATEGORIES,
  canonicalBytes,
  eventSchema,
  newEventId,
  OUTCOMES,
  SEVERITIES,
  SOURCE_KINDS,
} from '@sealtrail/event';
import { describe, expect, it } from 'vitest';
import type { StoredRecord } from '../../spool/spool.js';
import { mulberry32 } from '../../testkit/random.js';
import { encodeNativeLine } from '../file/encode.js';
import { cefHeader, cefValue, escapeParamValue } from '../syslog/encode.js';
import { Batcher } from './batcher.js';
import type { CommonExporterConfig } from './config.js';
import { filterSchema } from './config.js';
import { compileFilter, eventIdOf, toExportRecord } from './record.js';
import { nativeJson, sealtrailMeta, sealtrailMetaJson, toNative } from './schemas.js';

/** Seeded draws (mulberry32), so a failure can be replayed. */
function prng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const maybe = <T>(f: () => T): T | undefined => (next() < 0.5 ? f() : undefined);
  return { next, int, pick, maybe };
}

const PIECES = [
  'a',
  'Z',
  '0',
  ' ',
  '"',
  '\\',
  ']',
  '=',
  '|',
  '\n',
  '\r',
  '\t',
  '\u0001',
  'é',
  '✓',
  '😀',
  '/',
  '.',
  '_',
  '\u2028',
];

function text(r: ReturnType<typeof prng>, max = 12): string {
  let s = '';
  for (let i = r.int(max); i > 0; i--) s += r.pick(PIECES);
  return s;
}

function json(r: ReturnType<typeof prng>, depth = 0): unknown {
  const k = r.int(depth > 2 ? 4 : 6);
  if (k === 0) return r.int(1000) - 500;
  if (k === 1) return text(r);
  if (k === 2) return r.next() < 0.5;
  if (k === 3) return null;
  if (k === 4) return Array.from({ length: r.int(3) }, () => json(r, depth + 1));
  return Object.fromEntries(Array.from({ length: r.int(3) }, () => [text(r, 4), json(r, depth + 1)]));
}

const WORDS = ['login', 'logout', 'exec', 'write', 'read', 'created', 'deleted', 'modified', 'opened', 'x'];

function randomEvent(r: ReturnType<typeof prng>): AuditEvent {
  const type = Array.from({ length: 1 + r.int(3) }, () => r.pick(WORDS)).join('.');
  const actor = r.maybe(() => {
    const a: Record<string, string> = {};
    for (const k of ['user', 'uid', 'ip', 'session_id', 'user_agent', 'request_id']) {
      if (r.next() < 0.5) a[k] = text(r);
    }
    return a;
  });
  const resource = r.maybe(() => {
    const o: Record<string, string> = {};
    const kind = r.maybe(() => r.pick(['file', 'process', 'user', 'package', 'service', 'port', text(r)]));
    if (kind !== undefined) o.kind = kind;
    if (r.next() < 0.7) o.name = r.next() < 0.3 ? `/etc/${text(r)}/${text(r)}` : text(r);
    if (r.next() < 0.5) o.id = r.next() < 0.5 ? String(r.int(70000)) : text(r);
    return o;
  });
  const e: Record<string, unknown> = {
    id: newEventId(),
    time: new Date(Date.UTC(2026, 0, 1) + r.int(1e10)).toISOString(),
    observed_time: new Date(Date.UTC(2026, 0, 1) + r.int(1e10)).toISOString(),
    category: r.pick(CATEGORIES),
    type,
    severity: r.pick(SEVERITIES),
    outcome: r.pick(OUTCOMES),
    action: r.pick(WORDS) + text(r, 3),
    host: { id: newEventId(), name: text(r), os: text(r) },
    source: { kind: r.pick(SOURCE_KINDS), name: text(r) },
  };
  if (actor) e.actor = actor;
  if (resource) e.resource = resource;
  const message = r.maybe(() => text(r, 40));
  if (message !== undefined) e.message = message;
  const attributes = r.maybe(() => json(r, 1));
  if (attributes && typeof attributes === 'object' && !Array.isArray(attributes)) e.attributes = attributes;
  return eventSchema.parse(e);
}

function stored(e: AuditEvent, offset: number): StoredRecord {
  return {
    offset: BigInt(offset),
    agentId: e.host.id,
    chainId: newEventId(),
    seq: BigInt(offset) * 7919n,
    recordHash: randomBytes(32),
    receivedMs: Date.UTC(2026, 5, 1) + offset * 13,
    duplicateId: false,
    erased: false,
    // as the spool hands it out: a view into a larger buffer
    eventBytes: Buffer.concat([Buffer.from('xx'), canonicalBytes(e)]).subarray(2),
  };
}

describe('hand-written encoders match the library encoding', () => {
  const r = prng(20261201);
  const cases = Array.from({ length: 3000 }, (_, i) => stored(randomEvent(r), i));

  it('meta text equals JSON.stringify(sealtrailMeta(r))', () => {
    for (const rec of cases) expect(sealtrailMetaJson(rec)).toBe(JSON.stringify(sealtrailMeta(rec)));
  });

  it('the native splice is the event plus `sealtrail`, and the file line is that text', () => {
    for (const rec of cases) {
      const x = toExportRecord(rec);
      const line = nativeJson(x);
      expect(JSON.parse(line)).toEqual(toNative(toExportRecord(rec)));
      expect(encodeNativeLine(rec).toString('utf8')).toBe(`${line}\n`);
    }
  });

  it('syslog escapes equal the plain replaces', () => {
    const ref = {
      param: (v: string) => v.replace(/["\\\]]/g, (c) => `\\${c}`),
      header: (v: string) => v.replace(/[\\|]/g, (c) => `\\${c}`).replace(/\r\n|\r|\n/g, ' '),
      value: (v: string) =>
        v
          .replace(/[\\=]/g, (c) => `\\${c}`)
          .replace(/\n/g, '\\n')
          .replace(/\r/g, '\\r'),
    };
    for (let i = 0; i < 3000; i++) {
      const v = text(r, 10);
      expect(escapeParamValue(v)).toBe(ref.param(v));
      expect(cefHeader(v)).toBe(ref.header(v));
      expect(cefValue(v)).toBe(ref.value(v));
    }
  });
});

describe('parse on demand', () => {
  const cfg: CommonExporterConfig = {
    type: 'file',
    name: 't',
    filter: filterSchema.parse({}),
    schema: 'native',
    batch_max_records: 100,
    batch_max_bytes: 1 << 20,
    batch_timeout: 0,
    retry_initial_backoff: 1,
    retry_max_backoff: 1,
  };
  const good = stored(randomEvent(prng(7)), 0);
  const notJson = { ...good, offset: 1n, eventBytes: Buffer.from('{not json}') };
  const notObject = { ...good, offset: 2n, eventBytes: Buffer.from('[1,2]') };

  it('parses the event only when asked, once', () => {
    const x = toExportRecord(notJson);
    expect(() => x.event).toThrow(SyntaxError);
    expect(eventIdOf(x)).toBeUndefined();
    const y = toExportRecord(good);
    expect(y.event).toBe(y.event);
    expect(eventIdOf(y)).toBe(JSON.parse(good.eventBytes.toString()).id);
  });

  it('a pass-all filter is no predicate at all; any condition is one', () => {
    expect(compileFilter(filterSchema.parse({}))).toBeUndefined();
    expect(compileFilter(filterSchema.parse({ types: ['*'] }))).toBeUndefined();
    const f = compileFilter(filterSchema.parse({ min_severity: 'high' }));
    expect(f?.({ ...JSON.parse(good.eventBytes.toString()), severity: 'low' })).toBe(false);
  });

  it('records that cannot be spliced or parsed become dead letters, the rest go on', () => {
    const native = new Batcher<string>(undefined as never, cfg, undefined, (x) => {
      const payload = nativeJson(x);
      return { x, payload, bytes: payload.length };
    });
    const a = native.build([good, notObject]);
    expect(a.items.map((i) => i.x.record.offset)).toEqual([0n]);
    expect(a.rejected.map((d) => [d.offset, d.code])).toEqual([['2', 'ST_EXPORT_EVENT_BYTES']]);
    expect(a.lastOffset).toBe(2n);

    const filtered = new Batcher<string>(
      undefined as never,
      cfg,
      compileFilter(filterSchema.parse({ min_severity: 'low' })),
      (x) => ({ x, payload: x.event.id, bytes: 1 }),
    );
    const b = filtered.build([notJson, { ...good, offset: 3n }]);
    expect(b.rejected.map((d) => [d.offset, d.event_id])).toEqual([['1', undefined]]);
    expect(b.items.length + b.skipped).toBe(1);
    expect(b.lastOffset).toBe(3n);
  });
});
