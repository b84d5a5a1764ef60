import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type ChainRecord,
  ChainVerifier,
  eventHash,
  eventHashLatin1,
  HASH_BYTES,
  RecordHasher,
  recordHash,
  sha256,
  u64be,
  uuidBytes,
  verifyChain,
  ZERO_HASH,
} from './index.js';

interface VectorRecord {
  seq: string;
  event: { type: string };
  canonical: string;
  event_hash: string;
  prev_hash: string;
  record_hash: string;
}
interface Vectors {
  record_domain: string;
  agent_id: string;
  chain_id: string;
  records: VectorRecord[];
  head: { seq: string; record_hash: string };
}

const vectors = JSON.parse(
  readFileSync(new URL('../testdata/vectors.json', import.meta.url), 'utf8'),
) as Vectors;
const identity = { agentId: vectors.agent_id, chainId: vectors.chain_id };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** The vector chain as records a verifier takes; each call returns fresh, mutable copies. */
function chain(): { seq: bigint; recordHash: Buffer; eventBytes: Buffer }[] {
  return vectors.records.map((r) => ({
    seq: BigInt(r.seq),
    recordHash: Buffer.from(r.record_hash, 'hex'),
    eventBytes: Buffer.from(r.canonical, 'utf8'),
  }));
}

/** A fresh record as an attacker who knows the formula would make it. */
function forge(seq: bigint, prev: Uint8Array, canonical: string): ChainRecord {
  const eventBytes = Buffer.from(canonical, 'utf8');
  return { seq, eventBytes, recordHash: new RecordHasher(identity).seal(seq, prev, eventBytes) };
}

describe('test vectors (testdata/vectors.json)', () => {
  it('has a fixed identity and a chain that starts with agent.chain.start', () => {
    expect(vectors.record_domain).toBe('sealtrail/v1/record');
    expect(vectors.records.length).toBeGreaterThanOrEqual(5);
    expect(vectors.records[0]!.event.type).toBe('agent.chain.start');
    expect(vectors.records[0]!.prev_hash).toBe('0'.repeat(64));
    vectors.records.forEach((r, i) => {
      expect(r.seq).toBe(String(i));
      expect(JSON.parse(r.canonical)).toEqual(r.event);
    });
  });

  it('reproduces every event hash and record hash', () => {
    const hasher = new RecordHasher(identity);
    let prev: Buffer = ZERO_HASH;
    for (const r of vectors.records) {
      const bytes = Buffer.from(r.canonical, 'utf8');
      const seq = BigInt(r.seq);
      expect(hex(eventHash(bytes)), `event_hash ${r.seq}`).toBe(r.event_hash);
      expect(hex(prev), `prev_hash ${r.seq}`).toBe(r.prev_hash);
      const rec = hasher.seal(seq, prev, bytes);
      expect(hex(rec), `record_hash ${r.seq}`).toBe(r.record_hash);
      expect(hex(hasher.hash(seq, prev, Buffer.from(r.event_hash, 'hex')))).toBe(r.record_hash);
      expect(hex(recordHash(identity, seq, prev, Buffer.from(r.event_hash, 'hex')))).toBe(r.record_hash);
      prev = rec;
    }
    expect(hex(prev)).toBe(vectors.head.record_hash);
    expect(vectors.head.seq).toBe(vectors.records.at(-1)!.seq);
  });

  it('pins the formula: one record hash recomputed by hand with node:crypto', () => {
    // Independent of RecordHasher, uuidBytes and u64be: every input is built from scratch here.
    const r = vectors.records[2]!;
    const uuid = (s: string) => Buffer.from(s.replace(/-/g, ''), 'hex');
    const seq = Buffer.alloc(8);
    seq.writeUInt32BE(0, 0);
    seq.writeUInt32BE(Number(r.seq), 4);
    const evHash = createHash('sha256').update(Buffer.from(r.canonical, 'utf8')).digest();
    const prev = Buffer.from(vectors.records[1]!.record_hash, 'hex');
    const input = Buffer.concat([
      Buffer.from('sealtrail/v1/record', 'ascii'),
      Buffer.from([0x00]),
      uuid(vectors.agent_id),
      uuid(vectors.chain_id),
      seq,
      prev,
      evHash,
    ]);
    expect(input.length).toBe(19 + 1 + 16 + 16 + 8 + 32 + 32);
    expect(evHash.toString('hex')).toBe(r.event_hash);
    expect(createHash('sha256').update(input).digest('hex')).toBe(r.record_hash);

    // Record 0 chains from 32 zero bytes.
    const r0 = vectors.records[0]!;
    const input0 = Buffer.concat([
      Buffer.from('sealtrail/v1/record\0', 'ascii'),
      uuid(vectors.agent_id),
      uuid(vectors.chain_id),
      Buffer.alloc(8),
      Buffer.alloc(32),
      createHash('sha256').update(r0.canonical, 'utf8').digest(),
    ]);
    expect(createHash('sha256').update(input0).digest('hex')).toBe(r0.record_hash);
  });

  it('verifies as a whole chain and reports the head', () => {
    const report = verifyChain(identity, chain());
    expect(report).toEqual({
      ok: true,
      count: vectors.records.length,
      head: { seq: BigInt(vectors.head.seq), hash: Buffer.from(vectors.head.record_hash, 'hex') },
    });
  });
});

describe('verifyChain catches tampering and names the first bad seq', () => {
  it('an empty chain is valid with no head', () => {
    expect(verifyChain(identity, [])).toEqual({ ok: true, count: 0, head: null });
  });

  it('a changed event byte: record_hash_mismatch at that seq', () => {
    for (const at of [0, 2, 4]) {
      const records = chain();
      const bytes = records[at]!.eventBytes;
      const i = bytes.indexOf('"action":"') + 10;
      bytes[i] = bytes[i]! ^ 0x01;
      const report = verifyChain(identity, records);
      expect(report, `seq ${at}`).toMatchObject({
        ok: false,
        seq: BigInt(at),
        fault: 'record_hash_mismatch',
        count: at,
      });
    }
  });

  it('a changed record hash: mismatch at that seq', () => {
    const records = chain();
    records[3]!.recordHash[31] = records[3]!.recordHash[31]! ^ 0x80;
    expect(verifyChain(identity, records)).toMatchObject({
      ok: false,
      seq: 3n,
      fault: 'record_hash_mismatch',
    });
  });

  it('a removed record: seq_gap naming the missing seq', () => {
    const records = chain();
    records.splice(2, 1);
    const report = verifyChain(identity, records);
    expect(report).toMatchObject({ ok: false, count: 2, seq: 2n, fault: 'seq_gap' });
    expect(!report.ok && report.detail).toBe('expected seq 2, found 3');

    const noStart = chain().slice(1);
    expect(verifyChain(identity, noStart)).toMatchObject({ ok: false, count: 0, seq: 0n, fault: 'seq_gap' });
  });

  it('an inserted record: a copy is a regression; a well-formed forgery breaks the next record', () => {
    // A record replayed in the middle.
    const copy = chain();
    copy.splice(3, 0, chain()[2]!);
    expect(verifyChain(identity, copy)).toMatchObject({
      ok: false,
      count: 3,
      seq: 2n,
      fault: 'seq_regression',
    });

    // A new record with a correctly computed hash at seq 3: it chains, but the original 3 then cannot.
    const records = chain();
    const forged = forge(
      3n,
      records[2]!.recordHash,
      vectors.records[1]!.canonical.replace('alice', 'mallory'),
    );
    records.splice(3, 0, forged as (typeof records)[number]);
    expect(verifyChain(identity, records)).toMatchObject({
      ok: false,
      count: 4,
      seq: 3n,
      fault: 'seq_regression',
    });

    // The same, with every later record renumbered to make room: the first renumbered one breaks.
    const renumbered = chain();
    renumbered.splice(3, 0, forged as (typeof renumbered)[number]);
    for (let i = 4; i < renumbered.length; i++) renumbered[i]!.seq = BigInt(i);
    expect(verifyChain(identity, renumbered)).toMatchObject({
      ok: false,
      count: 4,
      seq: 4n,
      fault: 'record_hash_mismatch',
    });

    // A forged record whose hash is not recomputed (an attacker without the chain state).
    const bogus = chain();
    bogus.splice(5, 0, { seq: 5n, recordHash: Buffer.alloc(32, 7), eventBytes: bogus[4]!.eventBytes });
    expect(verifyChain(identity, bogus)).toMatchObject({
      ok: false,
      count: 5,
      seq: 5n,
      fault: 'record_hash_mismatch',
    });
  });

  it('two records swapped: named at the first out-of-place seq', () => {
    const records = chain();
    [records[2], records[3]] = [records[3]!, records[2]!];
    expect(verifyChain(identity, records)).toMatchObject({ ok: false, count: 2, seq: 2n, fault: 'seq_gap' });

    // Swapped and renumbered so the seqs look right: the hashes do not chain.
    const renumbered = chain();
    [renumbered[2], renumbered[3]] = [renumbered[3]!, renumbered[2]!];
    renumbered[2]!.seq = 2n;
    renumbered[3]!.seq = 3n;
    expect(verifyChain(identity, renumbered)).toMatchObject({
      ok: false,
      count: 2,
      seq: 2n,
      fault: 'record_hash_mismatch',
    });
  });

  it('a record renumbered to hide a removal: hash mismatch where the renumbering starts', () => {
    const records = chain();
    records.splice(2, 1);
    for (let i = 2; i < records.length; i++) records[i]!.seq = BigInt(i);
    const report = verifyChain(identity, records);
    expect(report).toMatchObject({ ok: false, count: 2, seq: 2n, fault: 'record_hash_mismatch' });
    expect(!report.ok && report.detail).toContain(vectors.records[3]!.record_hash);
  });

  it('a record from another agent or chain does not verify (the identity is in the hash)', () => {
    const otherChain = { ...identity, chainId: '0b9d8c7e-6f5a-4b3c-9d2e-1f0a9b8c7d6f' };
    expect(verifyChain(otherChain, chain())).toMatchObject({
      ok: false,
      seq: 0n,
      fault: 'record_hash_mismatch',
    });
    const otherAgent = { ...identity, agentId: vectors.chain_id, chainId: vectors.agent_id };
    expect(verifyChain(otherAgent, chain())).toMatchObject({
      ok: false,
      seq: 0n,
      fault: 'record_hash_mismatch',
    });
  });

  it('a truncated tail still verifies, but its head shows where it stops', () => {
    const report = verifyChain(identity, chain().slice(0, 3));
    expect(report).toEqual({
      ok: true,
      count: 3,
      head: { seq: 2n, hash: Buffer.from(vectors.records[2]!.record_hash, 'hex') },
    });
  });
});

describe('ChainVerifier', () => {
  const at = (i: number) => ({ seq: BigInt(i), hash: Buffer.from(vectors.records[i]!.record_hash, 'hex') });

  it('starts from a mid-chain position and continues from there', () => {
    const v = new ChainVerifier(identity, at(2));
    expect(v.head).toEqual(at(2));
    const records = chain();
    expect(v.push(records[3]!)).toEqual({ ok: true, position: at(3) });
    expect(v.push(records[4]!)).toEqual({ ok: true, position: at(4) });
    expect(v.head).toEqual(at(4));
    expect(verifyChain(identity, records.slice(3), at(2))).toEqual({ ok: true, count: 2, head: at(4) });
  });

  it('from a mid-chain position, refuses what it already has, a gap, and a wrong previous hash', () => {
    const records = chain();
    const v = new ChainVerifier(identity, at(2));
    expect(v.push(records[2]!)).toMatchObject({
      ok: false,
      seq: 2n,
      fault: 'seq_regression',
      detail: 'expected seq 3',
    });
    expect(v.push(records[0]!)).toMatchObject({ ok: false, seq: 0n, fault: 'seq_regression' });
    expect(v.push(records[4]!)).toMatchObject({ ok: false, seq: 3n, fault: 'seq_gap' });
    expect(v.head).toEqual(at(2));

    const wrongPrev = new ChainVerifier(identity, {
      seq: 2n,
      hash: Buffer.from(vectors.records[1]!.record_hash, 'hex'),
    });
    expect(wrongPrev.push(records[3]!)).toMatchObject({ ok: false, seq: 3n, fault: 'record_hash_mismatch' });
    expect(wrongPrev.head!.seq).toBe(2n);
  });

  it('check() does not advance; push() advances only on success', () => {
    const records = chain();
    const v = new ChainVerifier(identity);
    expect(v.head).toBeNull();
    expect(v.check(records[0]!)).toEqual({ ok: true, position: at(0) });
    expect(v.head).toBeNull();
    const bad = { ...records[0]!, recordHash: Buffer.alloc(32) };
    expect(v.push(bad).ok).toBe(false);
    expect(v.head).toBeNull();
    expect(v.push(records[0]!).ok).toBe(true);
    expect(v.head).toEqual(at(0));
  });

  it('verifies an erased payload through its event hash alone', () => {
    const records: ChainRecord[] = vectors.records.map((r, i) =>
      i === 1 || i === 3
        ? {
            seq: BigInt(r.seq),
            recordHash: Buffer.from(r.record_hash, 'hex'),
            eventHash: Buffer.from(r.event_hash, 'hex'),
          }
        : {
            seq: BigInt(r.seq),
            recordHash: Buffer.from(r.record_hash, 'hex'),
            eventBytes: Buffer.from(r.canonical),
          },
    );
    expect(verifyChain(identity, records)).toMatchObject({ ok: true, count: 5, head: at(4) });

    // A wrong event hash in place of the erased payload does not verify.
    const wrong = [...records];
    wrong[3] = { ...records[3]!, eventHash: Buffer.from(vectors.records[2]!.event_hash, 'hex') };
    expect(verifyChain(identity, wrong)).toMatchObject({ ok: false, seq: 3n, fault: 'record_hash_mismatch' });

    // Neither bytes nor hash: named as missing, not as a mismatch.
    const missing = [...records];
    missing[3] = { seq: 3n, recordHash: records[3]!.recordHash };
    expect(verifyChain(identity, missing)).toMatchObject({ ok: false, seq: 3n, fault: 'missing_payload' });
  });

  it('refuses event hashes that are not 32 bytes', () => {
    const r = vectors.records[0]!;
    const v = new ChainVerifier(identity);
    expect(() =>
      v.check({ seq: 0n, recordHash: Buffer.from(r.record_hash, 'hex'), eventHash: Buffer.alloc(31) }),
    ).toThrow(RangeError);
  });
});

describe('hash primitives', () => {
  it('uuidBytes gives the 16 bytes in textual order, any case', () => {
    const id = '00112233-4455-6677-8899-aabbccddeeff';
    expect(hex(uuidBytes(id))).toBe('00112233445566778899aabbccddeeff');
    expect(uuidBytes(id.toUpperCase()).equals(uuidBytes(id))).toBe(true);
    expect(uuidBytes('00000000-0000-0000-0000-000000000000').equals(Buffer.alloc(16))).toBe(true);
    expect(uuidBytes('ffffffff-ffff-ffff-ffff-ffffffffffff').equals(Buffer.alloc(16, 0xff))).toBe(true);
    expect(uuidBytes(id)).toHaveLength(16);
  });

  it('uuidBytes refuses anything that is not a hyphenated UUID', () => {
    for (const bad of [
      '',
      '00112233445566778899aabbccddeeff',
      '{00112233-4455-6677-8899-aabbccddeeff}',
      '00112233-4455-6677-8899-aabbccddeef',
      '00112233-4455-6677-8899-aabbccddeeff0',
      '00112233-4455-6677-8899-aabbccddeefg',
      ' 00112233-4455-6677-8899-aabbccddeeff',
      '0011223-34455-6677-8899-aabbccddeeff',
    ]) {
      expect(() => uuidBytes(bad), bad).toThrow(TypeError);
    }
  });

  it('u64be writes big-endian and refuses values outside u64', () => {
    expect(hex(u64be(0n))).toBe('0000000000000000');
    expect(hex(u64be(1n))).toBe('0000000000000001');
    expect(hex(u64be(0x0102030405060708n))).toBe('0102030405060708');
    expect(hex(u64be(2n ** 32n))).toBe('0000000100000000');
    expect(hex(u64be(2n ** 53n + 1n))).toBe('0020000000000001');
    expect(hex(u64be(2n ** 64n - 1n))).toBe('ffffffffffffffff');
    expect(() => u64be(2n ** 64n)).toThrow(RangeError);
    expect(() => u64be(-1n)).toThrow(RangeError);
  });

  it('sha256 hashes the concatenation of its parts; eventHash is SHA-256 of the bytes', () => {
    expect(hex(sha256())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(sha256(Buffer.from('ab'), Buffer.from('c')))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(hex(eventHash(Buffer.from('abc')))).toBe(hex(sha256(Buffer.from('abc'))));
    expect(ZERO_HASH.equals(Buffer.alloc(HASH_BYTES))).toBe(true);
    expect(HASH_BYTES).toBe(32);
  });

  it('RecordHasher refuses a bad identity and hashes of the wrong length', () => {
    expect(() => new RecordHasher({ agentId: 'agent-1', chainId: vectors.chain_id })).toThrow(TypeError);
    const h = new RecordHasher(identity);
    expect(() => h.hash(0n, Buffer.alloc(31), Buffer.alloc(32))).toThrow(RangeError);
    expect(() => h.hash(0n, Buffer.alloc(32), Buffer.alloc(33))).toThrow(RangeError);
    expect(() => h.hash(-1n, Buffer.alloc(32), Buffer.alloc(32))).toThrow(RangeError);
  });

  it('hashLatin1 and eventHashLatin1 match hash and eventHash, the test vectors included', () => {
    const h = new RecordHasher(identity);
    const l1 = (hexHash: string) => Buffer.from(hexHash, 'hex').toString('latin1');
    for (const r of vectors.records) {
      const key = Buffer.alloc(13, 0xee);
      key.writeBigUInt64BE(BigInt(r.seq), 5);
      const got = h.hashLatin1(key, 5, l1(r.prev_hash), l1(r.event_hash));
      expect(Buffer.from(got, 'latin1').toString('hex')).toBe(r.record_hash);
      expect(eventHashLatin1(Buffer.from(r.canonical, 'utf8'))).toBe(l1(r.event_hash));
    }
    // Random seqs (all 64 bits), previous and event hashes: the same bytes as the reference.
    let x = 0x9e3779b9;
    const next = () => {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      return x;
    };
    for (let i = 0; i < 500; i++) {
      const seq = (BigInt(next()) << 32n) | BigInt(next());
      const prev = sha256(Buffer.from(`p${next()}`));
      const ev = sha256(Buffer.from(`e${next()}`));
      const bytes = Buffer.alloc(8);
      bytes.writeBigUInt64BE(seq);
      const got = h.hashLatin1(bytes, 0, prev.toString('latin1'), ev.toString('latin1'));
      expect(Buffer.from(got, 'latin1').equals(h.hash(seq, prev, ev))).toBe(true);
    }
    const z = ZERO_HASH.toString('latin1');
    expect(() => h.hashLatin1(Buffer.alloc(7), 0, z, z)).toThrow(RangeError);
    expect(() => h.hashLatin1(Buffer.alloc(8), 0, z, z.slice(1))).toThrow(RangeError);
  });

  it('every input changes the record hash', () => {
    const h = new RecordHasher(identity);
    const ev = sha256(Buffer.from('event'));
    const base = hex(h.hash(5n, ZERO_HASH, ev));
    expect(hex(h.hash(6n, ZERO_HASH, ev))).not.toBe(base);
    expect(hex(h.hash(5n, Buffer.alloc(32, 1), ev))).not.toBe(base);
    expect(hex(h.hash(5n, ZERO_HASH, sha256(Buffer.from('Event'))))).not.toBe(base);
    expect(hex(recordHash({ ...identity, chainId: identity.agentId }, 5n, ZERO_HASH, ev))).not.toBe(base);
    expect(hex(recordHash(identity, 5n, ZERO_HASH, ev))).toBe(base);
  });
});
