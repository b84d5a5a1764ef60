import { randomBytes } from 'node:crypto';
import { formatIssue, type IssueLike, SealtrailError } from '@sealtrail/errors';
import { canonicalJson, canonicalJsonOrderedBut } from './canonical.js';
import { type AuditEvent, eventSchema, type IngestEvent, ingestEventSchema } from './schema.js';

/** Default cap on one event's canonical bytes (64 KiB, design brief). */
export const DEFAULT_MAX_EVENT_BYTES = 64 * 1024;

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

function validate<T>(
  schema: {
    safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: IssueLike[] } };
  },
  input: unknown,
): ValidationResult<T> {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, errors: r.error.issues.map((i) => formatIssue(i)) };
}

export function validateEvent(input: unknown): ValidationResult<AuditEvent> {
  return validate(eventSchema, input);
}

export function validateIngestEvent(input: unknown): ValidationResult<IngestEvent> {
  return validate(ingestEventSchema, input);
}

/** RFC 8785 (JCS) bytes: what is hashed, stored, sent and verified. */
export function canonicalBytes(value: unknown): Buffer {
  return bytesOf(() => canonicalJson(value));
}

/**
 * `canonicalBytes` of an object whose members are in JCS order and plain JSON, all but
 * `value[key]` (see canonicalJsonOrderedBut): for the agent's own built events.
 */
export function canonicalBytesOrderedBut(value: Record<string, unknown>, key: string): Buffer {
  return bytesOf(() => canonicalJsonOrderedBut(value, key));
}

function bytesOf(json: () => string | undefined): Buffer {
  let s: string | undefined;
  try {
    s = json();
  } catch (cause) {
    // NaN, Infinity, a lone surrogate, a BigInt or a cycle: not I-JSON, so no canonical form.
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new SealtrailError('ST_EVENT_NOT_SERIALIZABLE', `event cannot be canonicalized: ${detail}`, {
      cause,
    });
  }
  if (s === undefined) throw new SealtrailError('ST_EVENT_NOT_SERIALIZABLE', 'event cannot be canonicalized');
  return Buffer.from(s, 'utf8');
}

/**
 * UUIDv7 (RFC 9562): 48-bit Unix ms, version 7, a 31-bit counter in the bits after it
 * (12 in rand_a, 14 after the variant, 5 more), 43 random bits. The counter starts at a
 * random value each millisecond and counts up within it (§6.2, method 1), so ids made by
 * one process sort in the order they were made, and a collector sees each one above the
 * last (its dedupe then skips the lookup); on overflow the millisecond moves on. The
 * random bytes come from a pool refilled from the CSPRNG, as hex text; the time part's
 * text is kept for its millisecond: an id is a few string pieces, about a fifth of the
 * `uuid` library's formatting. event.test.ts checks layout, time, order and uniqueness.
 */
const POOL_IDS = 1024;
const POOL_BYTES = 10; // 4 for the counter's start, 5 for the last random bits, 1 for 3 more
let poolHex = '';
let poolAt = POOL_IDS;
let lastMs = -1;
let seq = 0;
let timeMs = -1;
let timeText = '';
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function newEventId(): string {
  if (poolAt === POOL_IDS) {
    poolHex = randomBytes(POOL_BYTES * POOL_IDS).toString('hex');
    poolAt = 0;
  }
  const p = poolAt++ * POOL_BYTES * 2;
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    seq = Number.parseInt(poolHex.slice(p, p + 8), 16) & 0x3fff_ffff; // top bit clear: room to count
  } else {
    seq = (seq + 1) & 0x7fff_ffff;
    if (seq === 0) lastMs++;
  }
  if (lastMs !== timeMs) {
    const t = lastMs.toString(16).padStart(12, '0');
    timeText = `${t.slice(0, 8)}-${t.slice(8, 12)}-`;
    timeMs = lastMs;
  }
  const a = 0x7000 | (seq >>> 19); // version 7, counter bits 30..19
  const b = 0x8000 | ((seq >>> 5) & 0x3fff); // variant 10, counter bits 18..5
  const c = ((seq & 0x1f) << 3) | (Number.parseInt(poolHex[p + 18]!, 16) & 7); // counter bits 4..0, 3 random
  return `${timeText}${HEX2[a >>> 8]}${HEX2[a & 0xff]}-${HEX2[b >>> 8]}${HEX2[b & 0xff]}-${HEX2[c]}${poolHex.slice(p + 8, p + 18)}`;
}

export class EventTooLargeError extends SealtrailError {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super('ST_EVENT_TOO_LARGE', `event is ${size} canonical bytes, over the limit of ${limit}`);
  }
}

export interface SealedEventBytes {
  event: AuditEvent;
  bytes: Buffer;
}

/** Validates a complete event and returns it with its canonical bytes, enforcing the size cap. */
export function encodeEvent(event: unknown, maxBytes = DEFAULT_MAX_EVENT_BYTES): SealedEventBytes {
  const v = validateEvent(event);
  if (!v.ok) throw new SealtrailError('ST_EVENT_INVALID', v.errors.join('; '));
  const bytes = canonicalBytes(v.value);
  if (bytes.length > maxBytes) throw new EventTooLargeError(bytes.length, maxBytes);
  return { event: v.value, bytes };
}

// Strict: invalid UTF-8 is an error, not U+FFFD, and a BOM is kept (so JSON.parse refuses it).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses stored/received canonical bytes back into a validated event. */
export function decodeEvent(bytes: Uint8Array): AuditEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    throw new SealtrailError('ST_EVENT_MALFORMED', 'event bytes are not UTF-8 JSON', { cause });
  }
  const v = validateEvent(parsed);
  if (!v.ok) throw new SealtrailError('ST_EVENT_INVALID', v.errors.join('; '));
  return v.value;
}

export interface CompleteOptions {
  host: AuditEvent['host'];
  source: AuditEvent['source'];
  now?: Date;
  /** `now` as RFC 3339, when the caller has it already (one request's events share it). */
  observed?: string;
}

/**
 * RFC 3339 with any offset → UTC `Z`. The fraction of a second is kept exactly as
 * given (a `Date` would cut it to milliseconds).
 */
function toUtcTime(time: string): string {
  const m = /^(.+T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.exec(time);
  if (!m) return new Date(time).toISOString();
  const whole = new Date(`${m[1]}${m[3]}`).toISOString().replace(/\.\d{3}Z$/, '');
  return `${whole}${m[2] ?? ''}Z`;
}

/** Fills what the agent owns (design brief, "Ingest defaults"). */
export function completeIngestEvent(input: IngestEvent, opts: CompleteOptions): AuditEvent {
  const observed = opts.observed ?? (opts.now ?? new Date()).toISOString();
  // Members in RFC 8785 order (optional ones only when present): canonicalization then has
  // nothing to re-order at the top level.
  const e = { action: input.action } as AuditEvent;
  if (input.actor !== undefined) e.actor = input.actor;
  if (input.attributes !== undefined) e.attributes = input.attributes;
  e.category = input.category;
  e.host = opts.host;
  e.id = input.id ?? newEventId();
  if (input.message !== undefined) e.message = input.message;
  e.observed_time = observed;
  e.outcome = input.outcome;
  if (input.resource !== undefined) e.resource = input.resource;
  e.severity = input.severity;
  e.source = opts.source;
  e.time = input.time ? toUtcTime(input.time) : observed;
  e.type = input.type;
  return e;
}
