import { describe, expect, it } from 'vitest';
import { compareUtf8, sortEntries } from './order.js';

// Characters from every UTF-8 length class, and the ranges where UTF-16 order and UTF-8 order differ.
const POOL = ['a', 'z', '.', '/', '-', '0', '~', 'é', 'ß', '中', '\ue000', '\uffef', '😀', '𐀀', '\u{10ffff}'];
/** Every string of up to two characters from the pool: 241 strings, all 58,081 pairs compared. */
const STRINGS = ['', ...POOL, ...POOL.flatMap((a) => POOL.map((b) => a + b))];
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('compareUtf8', () => {
  it('orders strings exactly as Buffer.compare orders their UTF-8 bytes', () => {
    for (const a of STRINGS) {
      for (const b of STRINGS) {
        if (Math.sign(compareUtf8(a, b)) !== Math.sign(byBytes(a, b)))
          expect.fail(`${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
      }
    }
  });

  it('sorts directory entries so joined paths come in byte order, descendants included', () => {
    const names = STRINGS.filter((n) => n !== '' && !n.includes('/'));
    for (const phase of [0, 1, 2]) {
      const entries = names.map((name, i) => (i % 3 === phase ? `${name}/` : name));
      // A directory stands for its descendants: its own `name/` prefix and a child under it.
      const paths = sortEntries(entries).flatMap((e) =>
        e.endsWith('/') ? [`/r/${e}`, `/r/${e}a`] : [`/r/${e}`],
      );
      expect(paths).toEqual([...paths].sort(byBytes));
    }
  });
});
