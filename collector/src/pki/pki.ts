/**
 * `sealtrail-collector init`: a private CA, a server certificate signed by it,
 * an admin API key and the enrollment-token secret. Keys are ECDSA P-256
 * (what every TLS stack, grpc-js included, speaks). Secrets are written mode
 * 0600, temp → fsync → rename; existing files are never overwritten.
 */
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { writeFileAtomic } from '@sealtrail/config';
import { SealtrailError } from '@sealtrail/errors';
import { hashApiKey } from '../api/auth.js';

x509.cryptoProvider.set(webcrypto as never);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface PkiPaths {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  apiKeys: string;
  tokenSecret: string;
}

export function pkiPaths(dir: string): PkiPaths {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    apiKeys: join(dir, 'api-keys'),
    tokenSecret: join(dir, 'token.secret'),
  };
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

export interface InitResult {
  paths: PkiPaths;
  apiKey: string;
  caFingerprint: string;
  sans: string[];
}

/** Creates the collector's PKI under `dir`; refuses to overwrite an existing one. */
export async function initPki(dir: string, extraSans: string[] = [], validDays = 825): Promise<InitResult> {
  const paths = pkiPaths(dir);
  for (const f of [paths.caKey, paths.serverKey, paths.apiKeys, paths.tokenSecret]) {
    if (existsSync(f)) {
      throw new SealtrailError(
        'ST_INIT_EXISTS',
        `${f} already exists; init never overwrites keys (remove ${dir} to start over)`,
      );
    }
  }
  const now = new Date(Date.now() - 60_000);
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Sealtrail collector CA (${hostname()})`,
    notBefore: now,
    notAfter: new Date(now.getTime() + 3650 * DAY),
    keys: caKeys as never,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey as never),
    ],
  });

  const sans = [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...extraSans])];
  const serverKeys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${sans.find((s) => !/^[\d.:]+$/.test(s)) ?? 'sealtrail-collector'}`,
    issuer: ca.subject,
    notBefore: now,
    notAfter: new Date(now.getTime() + validDays * DAY),
    publicKey: serverKeys.publicKey as never,
    signingKey: caKeys.privateKey as never,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        sans.map((s) =>
          /^[\d.]+$/.test(s) || s.includes(':')
            ? { type: 'ip' as const, value: s }
            : { type: 'dns' as const, value: s },
        ),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey as never),
    ],
  });

  const apiKey = `stk_${randomBytes(32).toString('base64url')}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(paths.caKey, await pkcs8Pem(caKeys.privateKey), 0o600);
  writeFileAtomic(paths.caCert, ca.toString('pem'), 0o644);
  writeFileAtomic(paths.serverKey, await pkcs8Pem(serverKeys.privateKey), 0o600);
  // The server presents its chain (leaf, then CA) so agents can pin the CA by fingerprint.
  writeFileAtomic(paths.serverCert, `${server.toString('pem')}\n${ca.toString('pem')}\n`, 0o644);
  writeFileAtomic(
    paths.apiKeys,
    `# sha256 of each admin API key, one per line\n${hashApiKey(apiKey)} admin\n`,
    0o600,
  );
  writeFileAtomic(paths.tokenSecret, randomBytes(32).toString('base64url'), 0o600);
  const fp = new X509Certificate(ca.toString('pem')).fingerprint256.replaceAll(':', '').toLowerCase();
  return { paths, apiKey, caFingerprint: `sha256:${fp}`, sans };
}
