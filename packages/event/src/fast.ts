/**
 * `decodeEvent` for where volume matters (the collector checks every record it receives):
 * a hand-written check of exactly the shape `eventSchema` describes, about ten times
 * cheaper than running zod on every event. zod stays the reference and the fallback:
 * whatever the fast check does not accept on its own goes to `decodeEvent`, so every
 * refusal, and its message, is zod's. `fast.test.ts` fuzzes both against each other.
 */
import { decodeEvent } from './event.js';
import { EVENT_TYPE, MAX_TYPE_CHARS, OFFSET_TIME, UTC_TIME, UUID } from './patterns.js';
import {
  ACTOR_FIELDS,
  type AuditEvent,
  CATEGORIES,
  type IngestEvent,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  OUTCOMES,
  REQUIRED_EVENT_FIELDS,
  REQUIRED_INGEST_FIELDS,
  RESOURCE_FIELDS,
  SEVERITIES,
  SOURCE_KINDS,
} from './schema.js';

const categories = new Set<unknown>(CATEGORIES);
const severities = new Set<unknown>(SEVERITIES);
const outcomes = new Set<unknown>(OUTCOMES);
const sourceKinds = new Set<unknown>(SOURCE_KINDS);
const actorKeys = new Set(ACTOR_FIELDS);
const resourceKeys = new Set(RESOURCE_FIELDS);

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Code points, as zod counts a string's length: a surrogate pair is one. */
function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if ((s.charCodeAt(i) & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n--;
      i++;
    }
  }
  return n;
}

/** A string of at most `max` code points; counted only when its UTF-16 length is over. */
const isText = (v: unknown, max = MAX_FIELD_CHARS): boolean =>
  typeof v === 'string' && (v.length <= max || (v.length <= 2 * max && codePoints(v) <= max));

/** An object whose every key is one of `keys` and every value a capped string. */
function isTextRecord(v: unknown, keys: Set<string>): boolean {
  if (!isObject(v)) return false;
  for (const k in v) if (!keys.has(k) || !isText(v[k])) return false;
  return true;
}

/** The last host id that matched: one agent's events all carry the same one. */
let knownHostId = '';

function isHostId(id: unknown): boolean {
  if (id === knownHostId) return true;
  if (typeof id !== 'string' || !UUID.test(id)) return false;
  knownHostId = id;
  return true;
}

function isHost(v: unknown): boolean {
  if (!isObject(v)) return false;
  let n = 0;
  for (const _ in v) n++;
  return n === 3 && isHostId(v.id) && isText(v.name) && isText(v.os);
}

function isSource(v: unknown): boolean {
  if (!isObject(v)) return false;
  let n = 0;
  for (const _ in v) n++;
  return n === 2 && sourceKinds.has(v.kind) && isText(v.name);
}

/**
 * The verdict on a member a stored event and a posted item check alike, or undefined for the
 * other members (each function checks those itself).
 */
function sharedMember(k: string, x: unknown): boolean | undefined {
  switch (k) {
    case 'id':
      return typeof x === 'string' && UUID.test(x);
    case 'category':
      return categories.has(x);
    case 'type':
      // The pattern is ASCII only, so UTF-16 units are code points here.
      return typeof x === 'string' && x.length <= MAX_TYPE_CHARS && EVENT_TYPE.test(x);
    case 'severity':
      return severities.has(x);
    case 'outcome':
      return outcomes.has(x);
    case 'action':
      return isText(x) && (x as string).length > 0;
    case 'actor':
      return isTextRecord(x, actorKeys);
    case 'resource':
      return isTextRecord(x, resourceKeys);
    case 'message':
      return isText(x, MAX_MESSAGE_CHARS);
    default:
      return undefined;
  }
}

const STORED_REQUIRED = new Set(REQUIRED_EVENT_FIELDS);
const INGEST_REQUIRED = new Set(REQUIRED_INGEST_FIELDS);

/**
 * True only for what `eventSchema` accepts. False means "not sure", never "invalid":
 * the caller then asks zod. Unknown keys, `__proto__` included, are left to zod.
 */
export function isEventFast(v: unknown): v is AuditEvent {
  if (!isObject(v)) return false;
  let required = 0;
  for (const k in v) {
    const x = v[k];
    let ok = sharedMember(k, x);
    if (ok === undefined) {
      switch (k) {
        case 'time':
        case 'observed_time':
          ok = typeof x === 'string' && UTC_TIME.test(x);
          break;
        case 'host':
          ok = isHost(x);
          break;
        case 'source':
          ok = isSource(x);
          break;
        case 'attributes':
          ok = isObject(x);
          break;
        default:
          return false;
      }
    }
    if (!ok) return false;
    if (STORED_REQUIRED.has(k)) required++;
  }
  return required === STORED_REQUIRED.size;
}

/**
 * What `ingestEventSchema` makes of a posted item (its defaults filled), or null for "not
 * sure": the caller then asks zod, which also words every refusal. A plain object whose
 * members are all of the schema's, of the right shape, is the case of every well-formed post.
 * `ingest.test.ts` fuzzes it against the schema.
 */
export function ingestEventFast(v: unknown): IngestEvent | null {
  if (!isObject(v) || Object.getPrototypeOf(v) !== Object.prototype) return null;
  let required = 0;
  for (const k in v) {
    const x = v[k];
    let ok = sharedMember(k, x);
    if (ok === undefined) {
      if (k === 'time') ok = typeof x === 'string' && OFFSET_TIME.test(x);
      // A `__proto__` member is left to zod, whose copy of the record decides what it becomes.
      else if (k === 'attributes') ok = isObject(x) && !Object.hasOwn(x, '__proto__');
      else return null;
    }
    if (!ok) return null;
    if (INGEST_REQUIRED.has(k)) required++;
  }
  if (required !== INGEST_REQUIRED.size) return null;
  const out = { ...v } as IngestEvent;
  out.severity ??= 'info';
  out.outcome ??= 'unknown';
  return out;
}

// The same strict decoding as decodeEvent: invalid UTF-8 is an error, a BOM is kept.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Same result as `decodeEvent(bytes)`, the same errors too; cheap for the events that are valid. */
export function decodeEventFast(bytes: Uint8Array): AuditEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch {
    return decodeEvent(bytes);
  }
  return isEventFast(parsed) ? parsed : decodeEvent(bytes);
}
