import { randomBytes, randomUUID } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { StreamRequestSchema } from '../gen/sealtrail/v1/ingest_pb.js';
import { type BatchRecord, encodeBatchRequest } from './batch.js';

/** The reference: what protobuf-es writes for the same batch. */
function reference(chainId: string, records: BatchRecord[]): Uint8Array {
  return toBinary(
    StreamRequestSchema,
    create(StreamRequestSchema, { body: { case: 'batch', value: { chainId, records } } }),
  );
}

const int = (n: number) => Math.floor(Math.random() * n);

function randomSeq(): bigint {
  switch (int(5)) {
    case 0:
      return 0n;
    case 1:
      return BigInt(int(200)); // one and two varint bytes
    case 2:
      return BigInt(Number.MAX_SAFE_INTEGER) + BigInt(int(3)) - 1n; // the number/bigint boundary
    case 3:
      return 2n ** 64n - 1n - BigInt(int(3));
    default:
      return BigInt(int(2 ** 31)) * BigInt(int(2 ** 20));
  }
}

function randomRecord(): BatchRecord {
  const sizes = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000];
  const r: BatchRecord = { seq: randomSeq(), recordHash: randomBytes(int(4) === 0 ? 0 : 32) };
  if (int(4) === 0) r.eventHash = randomBytes(int(3) === 0 ? 0 : 32);
  else r.eventBytes = randomBytes(sizes[int(sizes.length)]!);
  return r;
}

describe('encodeBatchRequest', () => {
  it('writes exactly the bytes protobuf-es writes, on random batches', () => {
    for (let n = 0; n < 300; n++) {
      const chainId = int(10) === 0 ? '' : int(10) === 0 ? 'chaîne-ünïcode-☃' : randomUUID();
      const records = Array.from({ length: int(40) }, randomRecord);
      const ours = encodeBatchRequest(chainId, records);
      expect(Buffer.from(reference(chainId, records)).equals(ours)).toBe(true);
    }
  });

  it('decodes back to the same batch', () => {
    const records = Array.from({ length: 1000 }, randomRecord);
    const msg = fromBinary(StreamRequestSchema, encodeBatchRequest('c', records));
    expect(msg.body.case).toBe('batch');
    if (msg.body.case !== 'batch') return;
    expect(msg.body.value.records.map((r) => r.seq)).toEqual(records.map((r) => r.seq));
    expect(msg.body.value.records.map((r) => Buffer.from(r.eventBytes).toString('hex'))).toEqual(
      records.map((r) => Buffer.from(r.eventBytes ?? []).toString('hex')),
    );
  });
});
