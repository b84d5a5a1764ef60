/** Seeded draws (mulberry32) for this package's property tests: the same corpus every run, so a failure replays. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `rand(n)`: an integer in [0, n); `pick(xs)`: one of `xs`; both from one seeded sequence. */
export function draws(seed: number) {
  const next = mulberry32(seed);
  const rand = (n: number): number => Math.floor(next() * n);
  return { rand, pick: <T>(xs: readonly T[]): T => xs[rand(xs.length)]! };
}
