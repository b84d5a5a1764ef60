import { randomFillSync } from 'node:crypto';
import { formatIssue, type IssueLike, SealtrailError } from '@sealtrail/errors';
import { v7 as uuidv7 } from 'uuid';
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

// UUIDv7 ids from a pool of random bytes: the library's default asks the OS for
// 16 fresh bytes per id, a tenth of the agent's CPU at volume. The pool is
// refilled from the same CSPRNG; msecs/seq keep ids monotonic as the library's
// own state does (RFC 9562 §6.2, method 1).
const POOL_IDS = 1024;
const pool = new Uint8Array(16 * POOL_IDS);
let poolAt = POOL_IDS;
const v7State = { msecs: -1, seq: 0 };

export function newEventId(): string {
  if (poolAt === POOL_IDS) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const random = pool.subarray(poolAt * 16, ++poolAt * 16);
  const now = Date.now();
  if (now > v7State.msecs) {
    v7State.msecs = now;
    v7State.seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
  } else {
    v7State.seq = (v7State.seq + 1) | 0;
    if (v7State.seq === 0) v7State.msecs++;
  }
  return uuidv7({ random, msecs: v7State.msecs, seq: v7State.seq });
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
  const observed = (opts.now ?? new Date()).toISOString();
  const { id, time, ...rest } = input;
  return {
    ...rest,
    id: id ?? newEventId(),
    time: time ? toUtcTime(time) : observed,
    observed_time: observed,
    host: opts.host,
    source: opts.source,
  };
}
