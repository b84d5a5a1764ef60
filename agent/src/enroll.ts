/**
 * `sealtrail-agent enroll`: registers this agent's Ed25519 key with a collector
 * in exchange for a one-time token, over TLS verified against a CA file or a
 * pinned CA fingerprint, then stores the CA for later streams.
 */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { splitHostPort } from '@sealtrail/config';
import { ConfigError, SealtrailError } from '@sealtrail/errors';
import { createClient, EnrollRequestSchema, Ingest, message } from '@sealtrail/proto';
import { loadOrCreateIdentity, writeFileAtomic } from './identity/identity.js';
import { CA_FILE_NAME } from './shipper/credentials.js';

export interface EnrollOptions {
  collector: string;
  token: string;
  dataDir: string;
  hostname: string;
  caPem?: Buffer;
  caFingerprint?: string;
}

function normaliseFingerprint(fp: string): string {
  const hex = fp
    .replace(/^sha256:/i, '')
    .replaceAll(':', '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw new ConfigError(`--ca-fingerprint: expected sha256:<64 hex digits>, got "${fp}"`);
  return hex;
}

/** Fetches the collector's certificate chain and returns the CA whose SHA-256 fingerprint was pinned. */
export async function fetchPinnedCa(address: string, fingerprint: string): Promise<Buffer> {
  const want = normaliseFingerprint(fingerprint);
  const { host, port } = splitHostPort(address);
  const chain = await new Promise<PeerCertificate[]>((resolve, reject) => {
    const sock = connect({
      host,
      port,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      servername: /^[\d.:]+$/.test(host) ? undefined : host,
    });
    sock.once('secureConnect', () => {
      const out: PeerCertificate[] = [];
      let c = sock.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
      while (c?.raw && !out.some((o) => o.raw.equals(c.raw))) {
        out.push(c);
        c = c.issuerCertificate as typeof c;
      }
      sock.end();
      resolve(out);
    });
    sock.once('error', (err) =>
      reject(new SealtrailError('ST_ENROLL_TLS', `cannot reach ${address} over TLS: ${err.message}`)),
    );
    sock.setTimeout(10_000, () => sock.destroy(new Error('timed out')));
  });
  const certs = chain.map((c) => new X509Certificate(c.raw));
  const ca = certs.find((c) => c.fingerprint256.replaceAll(':', '').toLowerCase() === want);
  if (!ca) {
    throw new SealtrailError(
      'ST_ENROLL_FINGERPRINT',
      `no certificate presented by ${address} has fingerprint sha256:${want}: wrong collector, or the wrong fingerprint`,
    );
  }
  if (!certs[0]!.checkIssued(ca) && certs[0] !== ca) {
    throw new SealtrailError(
      'ST_ENROLL_FINGERPRINT',
      `the collector's certificate is not issued by the pinned CA`,
    );
  }
  return Buffer.from(ca.toString());
}

export async function enroll(o: EnrollOptions): Promise<{ agentId: string; caFile: string }> {
  const identity = loadOrCreateIdentity(o.dataDir);
  const ca = o.caPem ?? (o.caFingerprint ? await fetchPinnedCa(o.collector, o.caFingerprint) : null);
  if (!ca) throw new ConfigError('enroll needs the collector CA: --ca FILE or --ca-fingerprint sha256:…');
  const client = createClient(Ingest, o.collector, grpc.credentials.createSsl(ca));
  try {
    const res = await client
      .enroll(
        message(EnrollRequestSchema, {
          token: o.token,
          publicKey: identity.publicKey,
          hostname: o.hostname,
          agentId: identity.agentId,
        }),
        { deadline: Date.now() + 15_000 },
      )
      .catch((err: grpc.ServiceError) => {
        const details = err.details || err.message;
        if (err.code === grpc.status.UNAVAILABLE && /certificate|handshake|SSL|self.signed/i.test(details)) {
          throw new SealtrailError(
            'ST_ENROLL_TLS',
            `TLS with ${o.collector} failed: ${details} (is this the right CA?)`,
          );
        }
        throw new SealtrailError('ST_ENROLL_REFUSED', `enrollment refused by ${o.collector}: ${details}`);
      });
    const caFile = join(o.dataDir, CA_FILE_NAME);
    writeFileAtomic(caFile, ca, 0o644);
    writeFileAtomic(
      join(o.dataDir, 'enrollment.json'),
      `${JSON.stringify({ collector: o.collector, agent_id: res.agentId, enrolled_at: new Date().toISOString() }, null, 2)}\n`,
      0o644,
    );
    return { agentId: res.agentId, caFile };
  } finally {
    client.close();
  }
}
