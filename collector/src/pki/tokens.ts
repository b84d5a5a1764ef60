/**
 * One-time enrollment tokens: `st1.<payload>.<mac>`, where the payload is
 * base64url JSON `{jti, exp}` and the mac is HMAC-SHA256 over it with the
 * collector's token secret. `token create` needs only the secret file, so it
 * works while the collector runs; the collector records each used `jti` in
 * its spool, so a token enrolls one agent only.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SealtrailError } from '@sealtrail/errors';

export interface TokenClaims {
  jti: string;
  exp: number;
}

export function readTokenSecret(file: string): Buffer {
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
  } catch (cause) {
    throw new SealtrailError(
      'ST_TOKEN_SECRET',
      `cannot read the enrollment token secret ${file} (run \`sealtrail-collector init\` first)`,
      { cause },
    );
  }
}

function mac(secret: Buffer, payload: string): Buffer {
  return createHmac('sha256', secret).update(`st1.${payload}`).digest();
}

export function createToken(
  secret: Buffer,
  ttlMs: number,
  now = Date.now(),
): { token: string; claims: TokenClaims } {
  const claims: TokenClaims = { jti: randomUUID(), exp: now + ttlMs };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return { token: `st1.${payload}.${mac(secret, payload).toString('base64url')}`, claims };
}

export type TokenCheck =
  | { ok: true; claims: TokenClaims }
  | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' };

/** Checks form, signature and expiry; whether it was used already is the caller's (the spool's) to say. */
export function checkToken(secret: Buffer, token: string, now = Date.now()): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== 'st1') return { ok: false, reason: 'malformed' };
  const given = Buffer.from(parts[2]!, 'base64url');
  const want = mac(secret, parts[1]!);
  if (given.length !== want.length || !timingSafeEqual(given, want))
    return { ok: false, reason: 'bad_signature' };
  let claims: TokenClaims;
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof claims.jti !== 'string' || typeof claims.exp !== 'number')
    return { ok: false, reason: 'malformed' };
  if (claims.exp < now) return { ok: false, reason: 'expired' };
  return { ok: true, claims };
}
