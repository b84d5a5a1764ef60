/**
 * The agent's identity: a UUID and an Ed25519 key pair (RFC 8032), created on
 * first start under the data dir. The private key file is mode 0600 and written
 * temp → fsync → rename, so a crash never leaves a half-written key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { challengeMessage } from '@sealtrail/chain';
import { writeFileAtomic } from '@sealtrail/config';
import { SealtrailError } from '@sealtrail/errors';

export interface AgentIdentity {
  agentId: string;
  privateKey: KeyObject;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
}

export function signChallenge(id: AgentIdentity, nonce: Uint8Array): Buffer {
  return sign(null, challengeMessage(id.agentId, nonce), id.privateKey);
}

export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(jwk.x!, 'base64url');
}

export function loadOrCreateIdentity(dataDir: string): AgentIdentity {
  const keyFile = join(dataDir, 'agent.key');
  const idFile = join(dataDir, 'agent.json');
  let pem: string;
  let meta: { agent_id: string };
  try {
    pem = readFileSync(keyFile, 'utf8');
    meta = JSON.parse(readFileSync(idFile, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new SealtrailError(
        'ST_IDENTITY_UNREADABLE',
        `cannot read agent identity in ${dataDir}: ${(err as Error).message}`,
      );
    }
    const { privateKey } = generateKeyPairSync('ed25519');
    pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    meta = { agent_id: crypto.randomUUID() };
    writeFileAtomic(keyFile, pem, 0o600);
    writeFileAtomic(
      idFile,
      `${JSON.stringify({ ...meta, created: new Date().toISOString() }, null, 2)}\n`,
      0o644,
    );
  }
  const privateKey = createPrivateKey(pem);
  return { agentId: meta.agent_id, privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) };
}

export { writeFileAtomic };
