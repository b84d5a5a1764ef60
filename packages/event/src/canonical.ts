/**
 * RFC 8785 (JCS) text, fast. JCS writes strings and numbers exactly as ECMAScript's
 * JSON.stringify does and differs from it only in member order (keys sorted by UTF-16
 * code units), so a value whose objects are put in that order is serialized by one
 * native JSON.stringify: several times faster than the `canonicalize` library, which
 * builds the text piece by piece (the agent's largest CPU cost per event).
 *
 * The fast path covers plain JSON data (plain objects, arrays, strings, finite numbers,
 * booleans, null; undefined members dropped). Anything else is left to the library,
 * which stays the reference and the source of every error (NaN, Infinity, BigInt, a
 * lone surrogate, a cycle):
 *   - an object with an integer-like key ("0", "10"): JS enumerates those first in
 *     numeric order, whatever order they were added in, so no object can hold them sorted;
 *   - `__proto__` as a key of an object that must be re-ordered (assignment would set the
 *     prototype), `toJSON`, non-plain objects (boxed primitives, class instances), sparse
 *     arrays, functions, symbols, BigInt, NaN and ±Infinity;
 *   - more than MAX_DEPTH levels (a cycle, or data no event has);
 *   - output that has a `\ud` escape, which JSON.stringify writes for a lone surrogate
 *     (or that is the text of one, which the library then writes as it should).
 * canonical.test.ts checks the two give the same text over many random JSON values.
 */
import canonicalize from 'canonicalize';

/** Returned (never thrown: no stack to capture) where the library must take over. */
const SLOW = Symbol('slow');
const MAX_DEPTH = 64;

/** The value with every object in JCS key order (the same objects where already so), or SLOW. */
function ordered(v: unknown, depth: number): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : SLOW;
    case 'object':
      if (v === null) return v;
      if (depth > MAX_DEPTH) return SLOW;
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return SLOW;
      return Array.isArray(v) ? orderedArray(v, depth) : orderedObject(v as Record<string, unknown>, depth);
    default:
      return SLOW;
  }
}

function orderedArray(a: unknown[], depth: number): unknown {
  let out: unknown[] | undefined;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    // A present `undefined` is written as null by both; a hole the library writes as nothing.
    const y = x === undefined ? (i in a ? x : SLOW) : ordered(x, depth + 1);
    if (y === SLOW) return SLOW;
    if (y !== x) out ??= a.slice(0, i);
    if (out) out.push(y);
  }
  return out ?? a;
}

function orderedObject(o: Record<string, unknown>, depth: number): unknown {
  const proto = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) return SLOW;
  const keys = Object.keys(o);
  const n = keys.length;
  if (n === 0) return o;
  // Integer-like keys are always enumerated first, so only the first key needs a look.
  const c = keys[0]!.charCodeAt(0);
  if (c >= 48 && c <= 57) return SLOW;
  let sorted = true;
  for (let i = 1; i < n; i++) {
    if (keys[i - 1]! > keys[i]!) {
      sorted = false;
      break;
    }
  }
  let out: Record<string, unknown> | undefined;
  if (!sorted) {
    sortKeys(keys);
    out = {};
  }
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    const x = o[k];
    if (x === undefined) continue; // dropped by both
    const y = ordered(x, depth + 1);
    if (y === SLOW) return SLOW;
    if (y !== x && !out) {
      // Keys already in order, a member changed: copy what came before it.
      out = {};
      for (let j = 0; j < i; j++) {
        const kj = keys[j]!;
        if (kj === '__proto__') return SLOW;
        if (o[kj] !== undefined) out[kj] = o[kj];
      }
    }
    if (out) {
      if (k === '__proto__') return SLOW;
      out[k] = y;
    }
  }
  return out ?? o;
}

/**
 * Sorts by UTF-16 code units, as `Array.prototype.sort()` does: insertion sort for the few
 * keys an object has, which is several times cheaper than the built-in there.
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 16) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/** RFC 8785 text of `value`, or undefined where JSON has none; throws the library's errors. */
export function canonicalJson(value: unknown): string | undefined {
  const o = ordered(value, 0);
  if (o !== SLOW) {
    const s = JSON.stringify(o);
    if (!s.includes('\\ud')) return s;
  }
  return canonicalize(value);
}

/**
 * `canonicalJson` of a plain object whose members are all in JCS order and plain JSON as
 * they stand except `value[key]`, which is ordered here. The caller vouches for the rest: the
 * agent builds its own events in member order (EventEncoder.build), all but the attributes a
 * parser hands in, and this skips the walk over what it already knows (about a third of the
 * canonical cost of a log_tail event). The same fallbacks to the library as canonicalJson.
 */
export function canonicalJsonOrderedBut(value: Record<string, unknown>, key: string): string | undefined {
  let v = value;
  const part = value[key];
  if (part !== undefined) {
    const o = ordered(part, 1);
    if (o === SLOW) return canonicalize(value);
    // The spread keeps the member order; the member keeps its place.
    if (o !== part) v = { ...value, [key]: o };
  }
  const s = JSON.stringify(v);
  return s.includes('\\ud') ? canonicalize(value) : s;
}
