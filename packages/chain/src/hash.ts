/**
 * The record hash chain (design brief, "Chain record"):
 *
 *   event_hash(n)  = SHA-256(event_bytes(n))
 *   record_hash(n) = SHA-256("sealtrail/v1/record" || 0x00 || agent_id(16) || chain_id(16)
 *                            || u64be(seq n) || record_hash(n-1) || event_hash(n))
 *   record_hash(-1) = 32 zero bytes
 *
 * The record commits to the event's hash, not its bytes, so a payload can be
 * erased later while the chain still verifies.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';

export const HASH_BYTES = 32;
export const ZERO_HASH: Buffer = Buffer.alloc(HASH_BYTES);
const RECORD_DOMAIN = Buffer.from('sealtrail/v1/record\0', 'utf8');
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The 16 raw bytes of a UUID string. */
export function uuidBytes(uuid: string): Buffer {
  if (!UUID_RE.test(uuid)) throw new TypeError(`not a UUID: ${JSON.stringify(uuid)}`);
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

export function u64be(value: bigint): Buffer {
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError(`not a u64: ${value}`);
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(value);
  return b;
}

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function eventHash(eventBytes: Uint8Array): Buffer {
  // One-shot hashing avoids a Hash object per event (Node ≥ 21.7).
  return oneShotHash('sha256', eventBytes, 'buffer');
}

/** event_hash as a 32-character latin1 string (see RecordHasher.hashLatin1). */
export function eventHashLatin1(eventBytes: Uint8Array): string {
  return oneShotHash('sha256', eventBytes, 'binary');
}

/** Pre-encoded chain identity, so hashing a record does not re-parse two UUIDs. */
export interface ChainIdentity {
  readonly agentId: string;
  readonly chainId: string;
}

/**
 * The fixed start of every record_hash preimage of one chain: the domain, agent_id(16) and
 * chain_id(16). Code that lays out preimages itself (a worker thread that cannot load this
 * package) is given these bytes.
 */
export function recordHashPrefix(identity: ChainIdentity): Buffer {
  return Buffer.concat([RECORD_DOMAIN, uuidBytes(identity.agentId), uuidBytes(identity.chainId)]);
}

export class RecordHasher {
  private readonly prefix: Buffer;

  constructor(readonly identity: ChainIdentity) {
    this.prefix = recordHashPrefix(identity);
    this.prefix.copy(this.scratch);
  }

  private readonly scratch = Buffer.alloc(RECORD_DOMAIN.length + 32 + 8 + 2 * HASH_BYTES);

  hash(seq: bigint, prevHash: Uint8Array, evHash: Uint8Array): Buffer {
    if (prevHash.length !== HASH_BYTES || evHash.length !== HASH_BYTES) {
      throw new RangeError('hashes must be 32 bytes');
    }
    if (seq < 0n || seq > 0xffff_ffff_ffff_ffffn) throw new RangeError(`not a u64: ${seq}`);
    // The preimage is laid out in one reused buffer and hashed in one shot: this runs once per record.
    const b = this.scratch;
    let o = this.prefix.length;
    b.writeBigUInt64BE(seq, o);
    o += 8;
    b.set(prevHash, o);
    b.set(evHash, o + HASH_BYTES);
    return oneShotHash('sha256', b, 'buffer');
  }

  /**
   * `hash` for hot paths: the seq as its 8 big-endian bytes at `seq[offset..offset+8)` (e.g.
   * straight from a journal key, no BigInt), and the hashes in and out as 32-character latin1
   * strings, one character per byte. crypto.hash then returns a string, which costs about a
   * third of a Buffer per call.
   */
  hashLatin1(seq: Uint8Array, offset: number, prevHash: string, evHash: string): string {
    if (prevHash.length !== HASH_BYTES || evHash.length !== HASH_BYTES) {
      throw new RangeError('hashes must be 32 bytes');
    }
    if (offset < 0 || offset + 8 > seq.length) throw new RangeError('seq must be 8 bytes');
    const b = this.scratch;
    const o = this.prefix.length;
    for (let i = 0; i < 8; i++) b[o + i] = seq[offset + i]!;
    b.write(prevHash, o + 8, 'latin1');
    b.write(evHash, o + 8 + HASH_BYTES, 'latin1');
    return oneShotHash('sha256', b, 'binary'); // 'binary' is latin1
  }

  /** record_hash of `eventBytes` at `seq`, given the previous record's hash. */
  seal(seq: bigint, prevHash: Uint8Array, eventBytes: Uint8Array): Buffer {
    return this.hash(seq, prevHash, eventHash(eventBytes));
  }
}

export function recordHash(
  identity: ChainIdentity,
  seq: bigint,
  prevHash: Uint8Array,
  evHash: Uint8Array,
): Buffer {
  return new RecordHasher(identity).hash(seq, prevHash, evHash);
}
