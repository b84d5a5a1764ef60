/**
 * The byte strings an agent signs with its Ed25519 key (RFC 8032). Each starts
 * with its own domain string so a signature for one can never pass as another.
 */
import { u64be, uuidBytes } from './hash.js';

const CHECKPOINT_DOMAIN = Buffer.from('sealtrail/v1/checkpoint\0', 'utf8');
const CHALLENGE_DOMAIN = Buffer.from('sealtrail/v1/challenge\0', 'utf8');

/**
 * "sealtrail/v1/checkpoint" || 0x00 || agent_id(16) || chain_id(16) || u64be(seq)
 *   || record_hash(seq) || u64be(unix_ms) || collector_nonce
 */
export function checkpointMessage(cp: {
  agentId: string;
  chainId: string;
  seq: bigint;
  recordHash: Uint8Array;
  unixMs: number;
  nonce: Uint8Array;
}): Buffer {
  return Buffer.concat([
    CHECKPOINT_DOMAIN,
    uuidBytes(cp.agentId),
    uuidBytes(cp.chainId),
    u64be(cp.seq),
    cp.recordHash,
    u64be(BigInt(cp.unixMs)),
    cp.nonce,
  ]);
}

/** "sealtrail/v1/challenge" || 0x00 || agent_id(16) || nonce: the stream's proof of key. */
export function challengeMessage(agentId: string, nonce: Uint8Array): Buffer {
  return Buffer.concat([CHALLENGE_DOMAIN, uuidBytes(agentId), nonce]);
}
