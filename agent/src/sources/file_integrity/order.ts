/**
 * Byte order of UTF-8 strings without encoding them. LevelDB sorts the baseline's keys by
 * their UTF-8 bytes; the scan walks the tree in that same order so it can merge the two
 * streams instead of holding either in memory.
 */

/**
 * Compares two strings as `Buffer.compare` compares their UTF-8 encodings. UTF-8 order is
 * code point order; JS `<` compares UTF-16 units, which differs only where a surrogate
 * (a code point past U+FFFF) meets a unit in U+E000–U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/**
 * Sorts the names of one directory's entries, each directory's with a trailing `/` (where its
 * descendants' paths fall), so that joining them to their directory gives paths in UTF-8 byte
 * order. Plain strings, not objects: a walk holds one listing per level.
 */
export function sortEntries(names: string[]): string[] {
  return names.sort(compareUtf8);
}
