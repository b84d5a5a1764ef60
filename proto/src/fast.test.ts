import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { StreamRequestSchema } from '../gen/sealtrail/v1/ingest_pb.js';
import { encodeStreamRequest } from './fast.js';

/** A small seeded PRNG (mulberry32): failures reproduce from the seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bytes(rand: () => number, max: number): Uint8Array {
  const b = new Uint8Array(Math.floor(rand() * max));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

function seq(rand: () => number): bigint {
  switch (Math.floor(rand() * 6)) {
    case 0:
      return 0n;
    case 1:
      return 0xffff_ffff_ffff_ffffn;
    case 2:
      return BigInt(Math.floor(rand() * 2 ** 32)) << BigInt(Math.floor(rand() * 33));
    case 3:
      return BigInt(Math.floor(rand() * 300));
    default:
      return BigInt(Math.floor(rand() * 1e9));
  }
}

function chainId(rand: () => number): string {
  const r = rand();
  if (r < 0.1) return '';
  if (r < 0.2) return 'chaîne \u{1f600} \ud800 lone surrogate';
  if (r < 0.3) return 'x'.repeat(Math.floor(rand() * 300));
  return crypto.randomUUID();
}

describe('encodeStreamRequest', () => {
  it('writes the bytes toBinary writes, on random batches (and on other messages)', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const rand = rng(seed);
      const records = [];
      const n = Math.floor(rand() * (seed % 50 === 0 ? 2000 : 20));
      for (let i = 0; i < n; i++) {
        const erased = rand() < 0.2;
        records.push({
          seq: seq(rand),
          recordHash: bytes(rand, 40),
          eventBytes: erased ? new Uint8Array() : bytes(rand, seed % 50 === 0 ? 600 : 300),
          eventHash: erased ? bytes(rand, 40) : new Uint8Array(),
        });
      }
      const m =
        seed % 10 === 0
          ? create(StreamRequestSchema, {
              body: { case: 'hello', value: { agentId: 'a', hostname: 'h', publicKey: bytes(rand, 32) } },
            })
          : create(StreamRequestSchema, {
              body: { case: 'batch', value: { chainId: chainId(rand), records } },
            });
      const got = encodeStreamRequest(m);
      expect(Buffer.isBuffer(got)).toBe(true);
      expect(got.equals(toBinary(StreamRequestSchema, m)), `seed ${seed}`).toBe(true);
    }
  });

  it('keeps unknown fields by handing such a message to toBinary', () => {
    const m = create(StreamRequestSchema, {
      body: {
        case: 'batch',
        value: { chainId: 'c', records: [{ seq: 1n, recordHash: new Uint8Array(32) }] },
      },
    });
    m.body.value!.records[0]!.$unknown = [{ no: 9, wireType: 0, data: new Uint8Array([1]) }];
    expect(encodeStreamRequest(m).equals(toBinary(StreamRequestSchema, m))).toBe(true);
  });
});
