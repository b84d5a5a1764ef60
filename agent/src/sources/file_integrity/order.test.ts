import { describe, expect, it } from 'vitest';
import { compareUtf8, sortEntries } from './order.js';

/** Deterministic PRNG (mulberry32), so a failure is reproducible from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Characters from every UTF-8 length class, and the ranges where UTF-16 order and UTF-8 order differ.
const POOL = ['a', 'z', '.', '/', '-', '0', '~', 'é', 'ß', '中', '\ue000', '\uffef', '😀', '𐀀', '\u{10ffff}'];

function randomName(next: () => number): string {
  let s = '';
  const n = Math.floor(next() * 6);
  for (let i = 0; i < n; i++) s += POOL[Math.floor(next() * POOL.length)];
  return s;
}

describe('compareUtf8', () => {
  it('orders strings exactly as Buffer.compare orders their UTF-8 bytes', () => {
    const next = rng(5);
    for (let i = 0; i < 20_000; i++) {
      const a = randomName(next);
      const b = next() < 0.2 ? a + randomName(next) : randomName(next);
      expect(Math.sign(compareUtf8(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(
        Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
    }
  });

  it('sorts directory entries so joined paths come in byte order, descendants included', () => {
    const next = rng(9);
    for (let round = 0; round < 200; round++) {
      const names = [...new Set(Array.from({ length: 12 }, () => randomName(next)).filter(Boolean))].filter(
        (n) => !n.includes('/'),
      );
      const entries = names.map((name) => ({ name, dir: next() < 0.4 }));
      // Each directory stands for its descendants; a child name from the pool probes the boundary.
      const paths = sortEntries(entries).flatMap((e) =>
        e.dir ? [`/r/${e.name}/`, `/r/${e.name}/a`] : [`/r/${e.name}`],
      );
      const bytes = [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      expect(paths).toEqual(bytes);
    }
  });
});
