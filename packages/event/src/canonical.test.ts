import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalJsonOrderedBut } from './canonical.js';

/** The library's answer, or its error message. */
function reference(v: unknown): { text: string | undefined } | { error: string } {
  try {
    return { text: canonicalize(v) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function fast(v: unknown): { text: string | undefined } | { error: string } {
  try {
    return { text: canonicalJson(v) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** Any UTF-16 code unit, so lone surrogates too (which the library refuses). */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

/** Keys that stress the ordering: integer-like, digits first, code-unit order, astral, `__proto__`. */
const key = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.string({ unit: codeUnit, maxLength: 3 }),
  fc.constantFrom('0', '1', '10', '9', '01', '4294967294', '4294967295', '-1', '1.5', '1a', '__proto__', ''),
  fc.constantFrom('a', 'B', '_', 'é', '\u20ac', '\ufb33', '\ud83d\ude00', '\r', 'toJSON', 'constructor'),
);

const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY),
);

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: codeUnit, maxLength: 8 }),
  fc.constantFrom('\\ud800', '\\\\ud800', 'C:\\udata', '\u2028', '\u0000\u001f"\\/'),
);

/** Random JSON-ish values: nested, unicode, odd numbers, odd keys, empty containers, undefined. */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(text, number, fc.boolean(), fc.constant(null), fc.constant(undefined)),
  array: fc.array(tie('node'), { maxLength: 5 }),
  object: fc.dictionary(key, tie('node'), { maxKeys: 6 }),
  node: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('array'), tie('object')),
})).node;

describe('canonicalJson: the same text as the canonicalize library', () => {
  it('agrees with the library on random JSON values, errors included', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(fast(v)).toEqual(reference(v));
      }),
      { numRuns: 20_000 },
    );
  });

  it('agrees on wide objects (the insertion sort and the built-in sort)', () => {
    fc.assert(
      fc.property(fc.dictionary(key, value, { minKeys: 0, maxKeys: 40 }), (v) => {
        expect(fast(v)).toEqual(reference(v));
      }),
      { numRuns: 2_000 },
    );
  });

  it('agrees on values parsed from random JSON text (own __proto__ keys, key order as written)', () => {
    fc.assert(
      fc.property(fc.json({ depthSize: 'small' }), (t) => {
        const v = JSON.parse(t);
        expect(fast(v)).toEqual(reference(v));
      }),
      { numRuns: 10_000 },
    );
  });

  it('agrees on event-shaped objects built in any key order', () => {
    const event = fc.record(
      {
        id: fc.uuid(),
        time: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        category: fc.constantFrom('authentication', 'file'),
        type: fc.stringMatching(/^[a-z]+(\.[a-z]+){0,3}$/),
        actor: fc.record({ user: fc.string(), ip: fc.ipV4() }, { requiredKeys: [] }),
        message: text,
        attributes: fc.dictionary(key, value, { maxKeys: 8 }),
      },
      { requiredKeys: ['id', 'time'] },
    );
    fc.assert(
      fc.property(event, fc.boolean(), (e, reverse) => {
        const v = reverse ? Object.fromEntries(Object.entries(e).reverse()) : e;
        expect(fast(v)).toEqual(reference(v));
      }),
      { numRuns: 5_000 },
    );
  });

  it('leaves the odd cases to the library and gives its answer', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const deep: unknown[] = [];
    let at = deep;
    for (let i = 0; i < 200; i++) {
      const next: unknown[] = [];
      at.push(next, { b: 1, a: i });
      at = next;
    }
    class Point {
      constructor(
        readonly y: number,
        readonly x: number,
      ) {}
    }
    const protoKey = JSON.parse('{"z":1,"__proto__":{"b":1,"a":2}}');
    const cases: unknown[] = [
      cyclic,
      [cyclic],
      deep,
      { t: new Date(0), b: 1 },
      { toJSON: () => ({ b: 1, a: 2 }) },
      new Date(0),
      Object.assign(Object.create(null), { b: 1, a: 2 }),
      new Point(1, 2),
      new String('ab'),
      new Number(5),
      new Map([['a', 1]]),
      // biome-ignore lint/suspicious/noSparseArray: a hole is what is tested
      [1, , 3],
      [1, undefined, 3],
      { f: () => 1, a: 1 },
      [() => 1],
      { s: Symbol('x'), a: 1 },
      [Symbol('x')],
      { b: 1n },
      1n,
      undefined,
      () => 1,
      protoKey,
      { b: protoKey, a: 1 },
      { '2': 'two', '10': 'ten', b: 1, a: 0 },
      { b: '\ud800', a: 1 },
      { '\udc00': 1 },
      '\\ud800 is text, not a surrogate',
      'é\ud83d\ude00',
    ];
    for (const [i, v] of cases.entries()) expect(fast(v), `case ${i}`).toEqual(reference(v));
  });

  it('visits each member once: 60 levels that each need re-ordering (exponential work would never end)', () => {
    let v: Record<string, unknown> = { z: 1, a: 0 };
    for (let i = 0; i < 60; i++) v = { z: v, a: i };
    expect(fast(v)).toEqual(reference(v));
  });

  it('an enumerable key on Object.prototype (pollution) does not leak into the text', () => {
    const v = { b: 1, a: { d: 2, c: 3 } };
    const want = reference(v);
    Object.defineProperty(Object.prototype, 'polluted', {
      value: 1,
      enumerable: true,
      configurable: true,
      writable: true,
    });
    try {
      expect(fast(v)).toEqual(want);
      expect(fast({ a: 1, b: 2 })).toEqual({ text: '{"a":1,"b":2}' });
    } finally {
      delete (Object.prototype as Record<string, unknown>).polluted;
    }
  });

  it('does not change its input', () => {
    const v = { b: { d: 1, c: [{ f: 1, e: 2 }] }, a: 1 };
    const before = JSON.stringify(v);
    canonicalJson(v);
    expect(JSON.stringify(v)).toBe(before);
  });
});

describe('canonicalJsonOrderedBut: canonicalJson when all but one member is already in order', () => {
  it('agrees with the library on ordered objects with a random member, errors included', () => {
    fc.assert(
      fc.property(text, value, text, (a, part, z) => {
        // Members in JCS order and plain as they stand, but `attributes`, which can be anything.
        const v = { action: a, attributes: part, category: 'x', z };
        let got: { text: string | undefined } | { error: string };
        try {
          got = { text: canonicalJsonOrderedBut(v, 'attributes') };
        } catch (err) {
          got = { error: (err as Error).message };
        }
        expect(got).toEqual(reference(v));
      }),
      { numRuns: 20_000 },
    );
  });
});
