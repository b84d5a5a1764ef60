/**
 * What the collector needs of most received events, their `id` and `type`, read straight
 * from the bytes: one validating pass over exactly the JSON that `eventSchema` accepts,
 * building no objects (`JSON.parse` of each event and the garbage it leaves were the
 * largest cost on the collector's event loop). It takes ASCII with no whitespace between
 * tokens, which canonical (RFC 8785) bytes of ASCII events are; for anything else it
 * answers `null`, which means "not sure", never "invalid": the caller then decodes the
 * event in full (`decodeEventFast`, with zod as the reference), and that decides and words
 * every refusal. `fast.test.ts` fuzzes it against `decodeEvent`.
 *
 * Why byte lengths may stand in for zod's lengths: outside an escape every ASCII byte is
 * one character, and an escape is two or six bytes for one UTF-16 unit, so a string's
 * byte length is never less than its length in characters or code points.
 */
import { EVENT_TYPE, MAX_TYPE_CHARS, UTC_TIME, UUID } from './patterns.js';
import {
  ACTOR_FIELDS,
  CATEGORIES,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  OUTCOMES,
  RESOURCE_FIELDS,
  SEVERITIES,
  SOURCE_KINDS,
} from './schema.js';

export interface EventHead {
  id: string;
  type: string;
  /** `host.id`: the collector checks it names the agent that sent the event. */
  hostId: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;
/** Deeper `attributes` are left to `JSON.parse`. */
const MAX_DEPTH = 64;

const bytesOf = (xs: readonly string[]) => xs.map((x) => Buffer.from(x, 'latin1'));
const TOP_KEYS = bytesOf([
  // The ten required keys first: bits 0–9.
  'id',
  'time',
  'observed_time',
  'category',
  'type',
  'severity',
  'outcome',
  'action',
  'host',
  'source',
  'actor',
  'resource',
  'message',
  'attributes',
]);
const REQUIRED = (1 << 10) - 1;
const HOST_KEYS = bytesOf(['id', 'name', 'os']);
const SOURCE_KEYS = bytesOf(['kind', 'name']);
const ACTOR_KEYS = bytesOf(ACTOR_FIELDS);
const RESOURCE_KEYS = bytesOf(RESOURCE_FIELDS);
const CATEGORY_VALUES = bytesOf(CATEGORIES);
const SEVERITY_VALUES = bytesOf(SEVERITIES);
const OUTCOME_VALUES = bytesOf(OUTCOMES);
const SOURCE_KIND_VALUES = bytesOf(SOURCE_KINDS);

const HEX_DIGIT = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX_DIGIT[c.charCodeAt(0)] = 1;
const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;

/**
 * Text of ASCII bytes straight from a Uint8Array: `Buffer#toString('latin1')` calls this
 * method; wrapping each event's Uint8Array (as protobuf hands it over) in a Buffer to reach
 * it cost more than the rest of the scan's allocations together.
 */
const latin1Slice = (
  Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }
).latin1Slice;

// The scan's state: the bytes, whether the string just scanned held an escape, and the
// fields the caller gets.
const EMPTY = new Uint8Array(0);
let buf: Uint8Array = EMPTY;
let escaped = false;
let id = '';
let type = '';
/**
 * The bytes of the last time, type and host id that matched their patterns (`time` and
 * `observed_time` are often one, types repeat, one agent's events all carry the same host
 * id), compared before any string is made. null until one matched: an empty value must not
 * pass for a known one.
 */
let knownTime: Uint8Array | null = null;
let knownTypeBytes: Uint8Array | null = null;
let knownType = '';
let knownHostId: Uint8Array | null = null;
let knownHostIdText = '';
let host = '';

/**
 * zod's UUID pattern (patterns.ts), checked on the bytes without a string: 8-4-4-4-12 hex
 * digits with a version digit 1–8 and a variant digit 8, 9, a or b (either case), or the
 * nil or the max UUID (lower case). Used only while zod's pattern is the one this was
 * written for; otherwise the pattern itself is tested (uuid.test.ts compares the two).
 */
const UUID_SOURCE =
  '^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$';
const UUID_BY_HAND = UUID.source === UUID_SOURCE && UUID.flags === '';
const isDash = (j: number) => j === 8 || j === 13 || j === 18 || j === 23;

/** Whether the bytes from `start` to `end` are a UUID as `UUID` defines it. */
function uuidAt(start: number, end: number): boolean {
  const b = buf;
  if (!UUID_BY_HAND) return UUID.test(latin1Slice.call(b, start, end));
  if (end - start !== 36) return false;
  for (let j = 0; j < 36; j++) {
    const c = b[start + j]!;
    if (isDash(j) ? c !== 0x2d : !HEX_DIGIT[c]) return false;
  }
  const version = b[start + 14]!;
  const variant = b[start + 19]! | 0x20; // lower case
  if (
    version >= 0x31 &&
    version <= 0x38 &&
    (variant === 0x38 || variant === 0x39 || variant === 0x61 || variant === 0x62)
  )
    return true;
  // The nil UUID or the max UUID: every digit '0', or every digit 'f'.
  const d = b[start]!;
  if (d !== 0x30 && d !== 0x66) return false;
  for (let j = 1; j < 36; j++) if (!isDash(j) && b[start + j] !== d) return false;
  return true;
}

/** `uuidAt` for a whole array (tests compare it with the pattern). */
export function isUuidBytes(bytes: Uint8Array): boolean {
  buf = bytes;
  try {
    return uuidAt(0, bytes.length);
  } finally {
    buf = EMPTY;
  }
}

/** Where the JSON string at `i` ends (after its closing quote), or -1. */
function str(i: number): number {
  const b = buf;
  if (b[i] !== QUOTE) return -1;
  escaped = false;
  for (i++; i < b.length; i++) {
    const c = b[i]!;
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) {
      escaped = true;
      const e = b[++i];
      if (e === 0x75) {
        for (let k = 0; k < 4; k++) if (!HEX_DIGIT[b[++i] ?? 0]) return -1;
      } else if (
        e !== QUOTE &&
        e !== BACKSLASH &&
        e !== 0x2f && // /
        e !== 0x62 && // b
        e !== 0x66 && // f
        e !== 0x6e && // n
        e !== 0x72 && // r
        e !== 0x74 // t
      )
        return -1;
    } else if (c < 0x20 || c >= 0x80) return -1; // a control character (invalid), or not ASCII
  }
  return -1;
}

/** Where the string at `i` ends if it has no escape, or -1. */
function plain(i: number): number {
  const end = str(i);
  return end < 0 || escaped ? -1 : end;
}

/** A string of at most `max` characters and at least `min`. */
function text(i: number, max: number, min = 0): number {
  const end = str(i);
  const n = end - i - 2;
  return end < 0 || n > max || n < min ? -1 : end;
}

/** Whether the bytes from `start` to `end` are `word` (never when there is no word). */
function equals(start: number, end: number, word: Uint8Array | null): boolean {
  if (word === null || end - start !== word.length) return false;
  for (let j = 0; j < word.length; j++) if (buf[start + j] !== word[j]) return false;
  return true;
}

/** Index in `keys` of the bytes from `start` to `end`, or -1. */
function indexOf(start: number, end: number, keys: Uint8Array[]): number {
  for (let k = 0; k < keys.length; k++) if (equals(start, end, keys[k]!)) return k;
  return -1;
}

/** A string without escapes that is one of `values`. */
function oneOf(i: number, values: Uint8Array[]): number {
  const end = str(i);
  return end < 0 || escaped || indexOf(i + 1, end - 1, values) < 0 ? -1 : end;
}

function number(i: number): number {
  const b = buf;
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i])) while (isDigit(b[i])) i++;
  else return -1;
  if (b[i] === 0x2e) {
    if (!isDigit(b[++i])) return -1;
    while (isDigit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[i])) i++;
  }
  return i;
}

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

function literal(i: number, word: Uint8Array): number {
  return equals(i, i + word.length, word) ? i + word.length : -1;
}

/** Any JSON value (what `attributes` may hold). */
function value(i: number, depth: number): number {
  const c = buf[i];
  if (c === QUOTE) return str(i);
  if (c === OPEN || c === OPEN_LIST) {
    if (depth >= MAX_DEPTH) return -1;
    const close = c === OPEN ? CLOSE : CLOSE_LIST;
    if (buf[++i] === close) return i + 1;
    for (;;) {
      if (c === OPEN) {
        i = str(i);
        if (i < 0 || buf[i++] !== COLON) return -1;
      }
      i = value(i, depth + 1);
      if (i < 0) return -1;
      if (buf[i] === COMMA) i++;
      else return buf[i] === close ? i + 1 : -1;
    }
  }
  if (c === 0x74) return literal(i, TRUE);
  if (c === 0x66) return literal(i, FALSE);
  if (c === 0x6e) return literal(i, NULL);
  return number(i);
}

/**
 * An object whose keys are among `keys`, each at most once, with every bit of `required`
 * among them; `field(k, i)` scans the value of key number k and returns where it ends.
 */
function object(
  i: number,
  keys: Uint8Array[],
  required: number,
  field: (k: number, i: number) => number,
): number {
  if (buf[i] !== OPEN) return -1;
  if (buf[++i] === CLOSE) return required === 0 ? i + 1 : -1;
  let seen = 0;
  for (;;) {
    const end = str(i);
    if (end < 0 || escaped) return -1;
    const k = indexOf(i + 1, end - 1, keys);
    // An unknown key, or a repeated one (JSON.parse keeps the last): left to the full decode.
    if (k < 0 || seen & (1 << k)) return -1;
    seen |= 1 << k;
    if (buf[end] !== COLON) return -1;
    i = field(k, end + 1);
    if (i < 0) return -1;
    if (buf[i] === COMMA) i++;
    else return buf[i] === CLOSE && (seen & required) === required ? i + 1 : -1;
  }
}

function hostId(i: number): number {
  const end = plain(i);
  if (end < 0) return -1;
  if (!equals(i + 1, end - 1, knownHostId)) {
    if (!uuidAt(i + 1, end - 1)) return -1;
    knownHostId = buf.slice(i + 1, end - 1);
    knownHostIdText = latin1Slice.call(buf, i + 1, end - 1);
  }
  host = knownHostIdText;
  return end;
}

const hostField = (k: number, i: number) => (k === 0 ? hostId(i) : text(i, MAX_FIELD_CHARS));
const sourceField = (k: number, i: number) =>
  k === 0 ? oneOf(i, SOURCE_KIND_VALUES) : text(i, MAX_FIELD_CHARS);
const textField = (_k: number, i: number) => text(i, MAX_FIELD_CHARS);

function topField(k: number, i: number): number {
  switch (k) {
    case 0: {
      const end = plain(i);
      if (end < 0 || !uuidAt(i + 1, end - 1)) return -1;
      id = latin1Slice.call(buf, i + 1, end - 1);
      return end;
    }
    case 1:
    case 2: {
      const end = plain(i);
      if (end < 0) return -1;
      if (equals(i + 1, end - 1, knownTime)) return end;
      if (!UTC_TIME.test(latin1Slice.call(buf, i + 1, end - 1))) return -1;
      knownTime = buf.slice(i + 1, end - 1);
      return end;
    }
    case 3:
      return oneOf(i, CATEGORY_VALUES);
    case 4: {
      const end = plain(i);
      if (end < 0) return -1;
      if (!equals(i + 1, end - 1, knownTypeBytes)) {
        const t = latin1Slice.call(buf, i + 1, end - 1);
        if (t.length > MAX_TYPE_CHARS || !EVENT_TYPE.test(t)) return -1;
        knownType = t;
        knownTypeBytes = buf.slice(i + 1, end - 1);
      }
      type = knownType;
      return end;
    }
    case 5:
      return oneOf(i, SEVERITY_VALUES);
    case 6:
      return oneOf(i, OUTCOME_VALUES);
    case 7:
      return text(i, MAX_FIELD_CHARS, 1);
    case 8:
      return object(i, HOST_KEYS, 0b111, hostField);
    case 9:
      return object(i, SOURCE_KEYS, 0b11, sourceField);
    case 10:
      return object(i, ACTOR_KEYS, 0, textField);
    case 11:
      return object(i, RESOURCE_KEYS, 0, textField);
    case 12:
      return text(i, MAX_MESSAGE_CHARS);
    default:
      return buf[i] === OPEN ? value(i, 1) : -1; // attributes: any object
  }
}

/**
 * The id and type of an event `decodeEvent` accepts, or `null` when this scan is not sure
 * (then decode it in full). Never an answer for bytes `decodeEvent` refuses.
 */
export function scanEvent(bytes: Uint8Array): EventHead | null {
  buf = bytes;
  try {
    const end = object(0, TOP_KEYS, REQUIRED, topField);
    return end === bytes.length ? { id, type, hostId: host } : null;
  } finally {
    buf = EMPTY; // not to keep the batch's bytes alive
  }
}
