/**
 * A hand-written encoder for the one message an agent sends at volume: a StreamRequest
 * holding a RecordBatch. protobuf-es encodes by reflection over the descriptor (about 0.7 µs
 * per record with the message objects), and grpc-js then copies its result into a Buffer;
 * this sizes the batch first and writes it into one Buffer, in the bytes `toBinary` writes
 * (fields in number order, proto3 defaults left out). Any other message, or one carrying
 * unknown fields, goes to `toBinary`, the reference; fast.test.ts compares the two on random
 * messages.
 */
import { toBinary } from '@bufbuild/protobuf';
import { type StreamRequest, StreamRequestSchema } from '../gen/sealtrail/v1/ingest_pb.js';

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function u64Size(v: bigint): number {
  if (v < 0x1_0000_0000n) return varintSize(Number(v));
  let size = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    size++;
  }
  return size;
}

function writeVarint(b: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    b[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[at++] = n;
  return at;
}

function writeU64(b: Buffer, at: number, v: bigint): number {
  if (v < 0x1_0000_0000n) return writeVarint(b, at, Number(v));
  while (v >= 0x80n) {
    b[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  b[at++] = Number(v);
  return at;
}

function bytesField(b: Buffer, at: number, tag: number, v: Uint8Array): number {
  if (v.length === 0) return at;
  b[at++] = tag;
  at = writeVarint(b, at, v.length);
  b.set(v, at);
  return at + v.length;
}

/** `Buffer.from(toBinary(StreamRequestSchema, m))`, by hand for a batch. */
export function encodeStreamRequest(m: StreamRequest): Buffer {
  const body = m.body;
  if (body.case !== 'batch' || m.$unknown || body.value.$unknown)
    return Buffer.from(toBinary(StreamRequestSchema, m));
  const batch = body.value;
  const records = batch.records;
  const sizes = new Array<number>(records.length);
  const chainIdBytes = Buffer.byteLength(batch.chainId, 'utf8');
  let batchSize = chainIdBytes > 0 ? 1 + varintSize(chainIdBytes) + chainIdBytes : 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.$unknown || r.seq < 0n || r.seq > 0xffff_ffff_ffff_ffffn)
      return Buffer.from(toBinary(StreamRequestSchema, m));
    let s = r.seq !== 0n ? 1 + u64Size(r.seq) : 0;
    if (r.recordHash.length > 0) s += 1 + varintSize(r.recordHash.length) + r.recordHash.length;
    if (r.eventBytes.length > 0) s += 1 + varintSize(r.eventBytes.length) + r.eventBytes.length;
    if (r.eventHash.length > 0) s += 1 + varintSize(r.eventHash.length) + r.eventHash.length;
    sizes[i] = s;
    batchSize += 1 + varintSize(s) + s;
  }
  const out = Buffer.allocUnsafe(1 + varintSize(batchSize) + batchSize);
  out[0] = 0x1a; // field 3 (batch), length-delimited
  let at = writeVarint(out, 1, batchSize);
  if (chainIdBytes > 0) {
    out[at++] = 0x0a;
    at = writeVarint(out, at, chainIdBytes);
    at += out.write(batch.chainId, at, 'utf8');
  }
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    out[at++] = 0x12;
    at = writeVarint(out, at, sizes[i]!);
    if (r.seq !== 0n) {
      out[at++] = 0x08;
      at = writeU64(out, at, r.seq);
    }
    at = bytesField(out, at, 0x12, r.recordHash);
    at = bytesField(out, at, 0x1a, r.eventBytes);
    at = bytesField(out, at, 0x22, r.eventHash);
  }
  return out;
}
