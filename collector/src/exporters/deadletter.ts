/**
 * `sealtrail-collector deadletter list|replay`, on a stopped collector's spool
 * (LevelDB admits one process). `replay` moves dead letters to the exporter's
 * replay queue; the exporter delivers them first when the collector starts,
 * and whatever the destination refuses again becomes a dead letter again.
 * `list` opens the spool read-only (an older format is refused, not migrated); `replay`
 * writes, so it upgrades an older spool as the collector would.
 */
import { join } from 'node:path';
import { Spool, type StoredDeadLetter } from '../spool/spool.js';

async function withSpool<T>(dataDir: string, readOnly: boolean, fn: (s: Spool) => Promise<T>): Promise<T> {
  const spool = new Spool(join(dataDir, 'spool'));
  await spool.open({ readOnly });
  try {
    return await fn(spool);
  } finally {
    await spool.close();
  }
}

export function listDeadLetters(
  dataDir: string,
  opts: { exporter?: string; queued?: boolean } = {},
): Promise<StoredDeadLetter[]> {
  return withSpool(dataDir, true, async (spool) => {
    const out: StoredDeadLetter[] = [];
    for await (const d of spool.deadLetters(opts.exporter, opts.queued)) out.push(d);
    return out;
  });
}

export function replayDeadLetters(dataDir: string, exporter: string, numbers?: string[]): Promise<number> {
  return withSpool(dataDir, false, (spool) => spool.queueReplay(exporter, numbers));
}

export function formatDeadLetter(d: StoredDeadLetter): string {
  return `${d.exporter}\t#${d.n}\toffset ${d.offset}\t${d.event_id ?? '-'}\t${d.time}\t${d.code ?? '-'}\t${d.reason}`;
}
