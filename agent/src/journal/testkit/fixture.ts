/** Builds real journals in temp dirs for tests: an identity, events, and raw LevelDB access for tampering. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalBytes, newEventId } from '@sealtrail/event';
import { ClassicLevel } from 'classic-level';
import { loadOrCreateIdentity } from '../../identity/identity.js';
import { chainStartEvent, gapEvent } from '../events.js';
import { Journal, type JournalHooks, type JournalLimits } from '../journal.js';
import { journalPaths } from '../verify.js';

export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'sealtrail-journal-'));
}

export function fixture(dataDir = tempDataDir()) {
  const identity = loadOrCreateIdentity(dataDir);
  const host = { id: identity.agentId, name: 'test-host', os: 'linux' };
  const paths = journalPaths(dataDir);
  const make = (
    opts: {
      limits?: Partial<JournalLimits>;
      hooks?: Partial<JournalHooks>;
      verifyOnOpen?: number;
      parallelVerifyMin?: number;
    } = {},
  ) =>
    new Journal({
      dir: paths.journal,
      agentId: identity.agentId,
      hooks: {
        chainStart: (s) => chainStartEvent(host, identity.publicKey, s),
        gap: (info) => gapEvent(host, info),
        ...opts.hooks,
      },
      limits: opts.limits,
      verifyOnOpen: opts.verifyOnOpen,
      parallelVerifyMin: opts.parallelVerifyMin,
    });
  let n = 0;
  const event = (extra: Record<string, unknown> = {}) => {
    const now = new Date().toISOString();
    return canonicalBytes({
      id: newEventId(),
      time: now,
      observed_time: now,
      category: 'application',
      type: 'app.test.event',
      severity: 'info',
      outcome: 'success',
      action: 'write',
      host,
      source: { kind: 'http_ingest', name: 'test' },
      message: `event ${n++}`,
      ...extra,
    });
  };
  return { dataDir, identity, host, paths, make, event };
}

/** Raw access to the journal's LevelDB, for tampering with a closed journal. */
export async function withRawDb<T>(
  dir: string,
  fn: (db: ClassicLevel<Buffer, Buffer>) => Promise<T>,
): Promise<T> {
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
