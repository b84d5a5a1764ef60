/**
 * Members of a stored event read straight from its canonical (RFC 8785) text,
 * without `JSON.parse`: key → the member's value as JSON text. JCS writes no
 * whitespace and serializes strings and numbers exactly as `JSON.stringify`
 * does, so a value's text can be spliced into an encoder's output as it is.
 * Encoders use this where they need a few fields and fall back to the parsed
 * event when it answers undefined (text that is not what JCS writes).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Index just past the string that opens at `i` (a `"`), or -1. */
function skipString(s: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = s.indexOf('"', j);
    if (q < 0) return -1;
    let k = q - 1;
    while (s.charCodeAt(k) === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q + 1; // an even run of backslashes: the quote is not escaped
    j = q + 1;
  }
}

/** Index just past the value that starts at `i`, or -1. */
function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === QUOTE) return skipString(s, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let k = i; k < s.length; k++) {
      const ch = s.charCodeAt(k);
      if (ch === QUOTE) {
        k = skipString(s, k) - 1;
        if (k < 0) return -1;
      } else if (ch === 0x7b || ch === 0x5b) depth++;
      else if (ch === 0x7d || ch === 0x5d) {
        depth--;
        if (depth === 0) return k + 1;
      }
    }
    return -1;
  }
  let k = i;
  while (k < s.length) {
    const ch = s.charCodeAt(k);
    if (ch === 0x2c || ch === 0x7d || ch === 0x5d) break;
    k++;
  }
  return k > i ? k : -1;
}

export type RawMembers = Record<string, string | undefined>;

/** The members of the JSON object text `s` (no whitespace), or undefined when `s` is not one. */
export function rawMembers(s: string | undefined): RawMembers | undefined {
  if (s === undefined || s.charCodeAt(0) !== 0x7b) return undefined;
  const out: RawMembers = Object.create(null);
  let i = 1;
  if (s.charCodeAt(i) === 0x7d) return i + 1 === s.length ? out : undefined;
  for (;;) {
    if (s.charCodeAt(i) !== QUOTE) return undefined;
    const ke = skipString(s, i);
    if (ke < 0 || s.charCodeAt(ke) !== 0x3a) return undefined;
    let key = s.slice(i + 1, ke - 1);
    if (key.includes('\\')) key = JSON.parse(s.slice(i, ke)) as string;
    const ve = skipValue(s, ke + 1);
    if (ve < 0) return undefined;
    out[key] = s.slice(ke + 1, ve);
    const c = s.charCodeAt(ve);
    if (c === 0x2c) i = ve + 1;
    else if (c === 0x7d && ve + 1 === s.length) return out;
    else return undefined;
  }
}

/** The string a JSON string text stands for; undefined when absent, null when the text is not a string. */
export function rawString(v: string | undefined): string | undefined | null {
  if (v === undefined) return undefined;
  if (v.charCodeAt(0) !== QUOTE) return null;
  return v.includes('\\') ? (JSON.parse(v) as string) : v.slice(1, -1);
}
