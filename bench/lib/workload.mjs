// The posted events. Each one, once the agent has completed it (id, times, host, source),
// serializes to `targetBytes` canonical (RFC 8785) bytes, like the rsyslog peer's 400-byte lines.
// Events are deterministic in their index; "bench event <10-digit index>" at the start of the message names each one.

import { appendFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { newEventId } from '@sealtrail/event';

export const BENCH_TYPE = 'app.bench.event';

const FILLER =
  'session adipiscing consectetur denied request checksum dolor kernel granted labore sed pid gid ' +
  'sit elit do quota eiusmod syscall lorem ipsum tempor incididunt ut magna aliqua enim minim veniam ';
const FILLER_LONG = FILLER.repeat(200);

const pad = (n, w) => String(n).padStart(w, '0');

/** RFC 8785 for what these events hold (objects and ASCII strings): sorted keys, JSON strings. */
export function canonicalJson(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v)
    .filter((k) => v[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
}

/**
 * Optional fields, added in this order while the size budget allows. At 400 bytes none fits:
 * what the agent adds (id, two times, host, source, severity, outcome) is already ~370 bytes.
 */
const OPTIONAL = [
  (h) => [
    'actor',
    { user: `user${pad(h % 1000, 4)}`, ip: `10.${100 + (h % 150)}.${100 + ((h >>> 8) % 150)}.1` },
  ],
  (h) => ['resource', { kind: 'file', name: `/srv/data/bench/file-${pad((h >>> 4) % 1_000_000, 6)}.dat` }],
];

const hashIndex = (i) => Math.imul(i + 1, 2654435761) >>> 0;

/** The bench sequence number of an exported event (from its message), or -1. */
export function benchSeq(event) {
  const m = /^bench event (\d{10}) /.exec(event?.message ?? '');
  return m ? Number(m[1]) : -1;
}

/**
 * Returns make(i) for events whose completed canonical form is `targetBytes` long, given what
 * the agent adds: a UUID id, two 24-char RFC 3339 times, severity, outcome, host, source.
 */
export function eventFactory({ targetBytes = 400, hostName, os = process.platform, sourceName }) {
  const uuid = '00000000-0000-7000-8000-000000000000';
  const time = new Date().toISOString();
  const prefixLen = 'bench event 0000000000 '.length;
  const completed = (e) => ({
    ...e,
    severity: 'info',
    outcome: 'unknown',
    id: uuid,
    time,
    observed_time: time,
    host: { id: uuid, name: hostName, os },
    source: { kind: 'http_ingest', name: sourceName },
  });
  const base = { category: 'application', type: BENCH_TYPE, action: 'write', message: '' };
  let fixed = Buffer.byteLength(canonicalJson(completed(base)));
  if (fixed + prefixLen > targetBytes) {
    throw new Error(`events cannot be as small as ${targetBytes} bytes (minimum ${fixed + prefixLen})`);
  }
  const extras = [];
  for (const opt of OPTIONAL) {
    const trial = { ...base };
    for (const x of [...extras, opt]) {
      const [k, v] = x(hashIndex(0));
      trial[k] = v;
    }
    const size = Buffer.byteLength(canonicalJson(completed(trial)));
    if (size + prefixLen > targetBytes) break;
    extras.push(opt);
    fixed = size;
  }
  const fillLen = targetBytes - fixed - prefixLen;
  return {
    fixedBytes: fixed,
    fields: ['category', 'type', 'action', 'message', ...extras.map((x) => x(0)[0])],
    make(i) {
      const e = { category: 'application', type: BENCH_TYPE, action: 'write' };
      const h = hashIndex(i);
      for (const x of extras) {
        const [k, v] = x(h);
        e[k] = v;
      }
      const off = (i * 7) % FILLER.length;
      e.message = `bench event ${pad(i, 10)} ${FILLER_LONG.slice(off, off + fillLen)}`;
      return e;
    },
  };
}

/** A request body: events [from, to) as one JSON array. */
export function requestBody(factory, from, to) {
  const events = [];
  for (let i = from; i < to; i++) events.push(factory.make(i));
  return Buffer.from(JSON.stringify(events));
}

/** An event of about 400 canonical bytes (host id and event id are UUIDs), as the transport and spool benches send. */
export function benchEvent(host, n) {
  const now = new Date().toISOString();
  return {
    id: newEventId(),
    time: now,
    observed_time: now,
    category: 'application',
    type: 'app.bench.event',
    severity: 'info',
    outcome: 'success',
    action: 'write',
    actor: { user: `u${n % 97}` },
    host,
    source: { kind: 'http_ingest', name: 'bench' },
    message: `bench ${String(n).padStart(9, '0')}`,
  };
}

const AUTH_SAMPLE = fileURLToPath(
  new URL('../../agent/src/sources/log_tail/testdata/auth.log', import.meta.url),
);

/** Appends `n` lines of the linux_auth testdata (40 lines, repeated) to `file`; returns its size. */
export function writeAuthLog(file, n) {
  const sample = readFileSync(AUTH_SAMPLE, 'utf8').split('\n').filter(Boolean);
  let text = '';
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    text += `${sample[i % sample.length]}\n`;
    if (text.length > 1 << 20) {
      appendFileSync(file, text);
      bytes += Buffer.byteLength(text);
      text = '';
    }
  }
  appendFileSync(file, text);
  return bytes + Buffer.byteLength(text);
}
