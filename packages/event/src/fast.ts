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
 * True only for what `eventSchema` accepts. False means "not sure", never "invalid":
 * the caller then asks zod. Unknown keys, `__proto__` included, are left to zod.
 */
export function isEventFast(v: unknown): v is AuditEvent {
  if (!isObject(v)) return false;
  let required = 0;
  for (const k in v) {
    const x = v[k];
    switch (k) {
      case 'id':
        if (typeof x !== 'string' || !UUID.test(x)) return false;
        required++;
        break;
      case 'time':
      case 'observed_time':
        if (typeof x !== 'string' || !UTC_TIME.test(x)) return false;
        required++;
        break;
      case 'category':
        if (!categories.has(x)) return false;
        required++;
        break;
      case 'type':
        // The pattern is ASCII only, so UTF-16 units are code points here.
        if (typeof x !== 'string' || x.length > MAX_TYPE_CHARS || !EVENT_TYPE.test(x)) return false;
        required++;
        break;
      case 'severity':
        if (!severities.has(x)) return false;
        required++;
        break;
      case 'outcome':
        if (!outcomes.has(x)) return false;
        required++;
        break;
      case 'action':
        if (!isText(x) || (x as string).length === 0) return false;
        required++;
        break;
      case 'host':
        if (!isHost(x)) return false;
        required++;
        break;
      case 'source':
        if (!isSource(x)) return false;
        required++;
        break;
      case 'actor':
        if (!isTextRecord(x, actorKeys)) return false;
        break;
      case 'resource':
        if (!isTextRecord(x, resourceKeys)) return false;
        break;
      case 'message':
        if (!isText(x, MAX_MESSAGE_CHARS)) return false;
        break;
      case 'attributes':
        if (!isObject(x)) return false;
        break;
      default:
        return false;
    }
  }
  return required === 10;
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
    switch (k) {
      case 'id':
        if (typeof x !== 'string' || !UUID.test(x)) return null;
        break;
      case 'time':
        if (typeof x !== 'string' || !OFFSET_TIME.test(x)) return null;
        break;
      case 'category':
        if (!categories.has(x)) return null;
        required++;
        break;
      case 'type':
        if (typeof x !== 'string' || x.length > MAX_TYPE_CHARS || !EVENT_TYPE.test(x)) return null;
        required++;
        break;
      case 'action':
        if (!isText(x) || (x as string).length === 0) return null;
        required++;
        break;
      case 'severity':
        if (!severities.has(x)) return null;
        break;
      case 'outcome':
        if (!outcomes.has(x)) return null;
        break;
      case 'actor':
        if (!isTextRecord(x, actorKeys)) return null;
        break;
      case 'resource':
        if (!isTextRecord(x, resourceKeys)) return null;
        break;
      case 'message':
        if (!isText(x, MAX_MESSAGE_CHARS)) return null;
        break;
      case 'attributes':
        // A `__proto__` member is left to zod, whose copy of the record decides what it becomes.
        if (!isObject(x) || Object.hasOwn(x, '__proto__')) return null;
        break;
      default:
        return null;
    }
  }
  if (required !== 3) return null;
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
