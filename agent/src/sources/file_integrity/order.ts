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

/** One directory entry; a directory sorts as `name/`, where its descendants' paths fall. */
export interface DirEntry {
  name: string;
  dir: boolean;
}

/** Sorts entries so that joining them to their directory gives paths in UTF-8 byte order. */
export function sortEntries(entries: DirEntry[]): DirEntry[] {
  const keyed = entries.map((e) => ({ e, k: e.dir ? `${e.name}/` : e.name }));
  keyed.sort((a, b) => compareUtf8(a.k, b.k));
  return keyed.map((x) => x.e);
}
