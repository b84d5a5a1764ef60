import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SealtrailError } from '@sealtrail/errors';
import { readAnchor } from './checkpoint.js';
import { Journal } from './journal.js';
import { checkAnchor } from './recovery.js';

export type JournalVerifyReport =
  | { ok: true; chain_id: string | null; records: number; head_seq: string | null; quarantined: number }
  | {
      ok: false;
      chain_id: string | null;
      records: number;
      seq: string;
      fault: string;
      detail: string;
      quarantined: number;
    };

export function journalPaths(dataDir: string) {
  return {
    journal: join(dataDir, 'journal'),
    anchor: join(dataDir, 'journal.anchor.json'),
    identity: join(dataDir, 'agent.json'),
  };
}

export function readAgentId(dataDir: string): string {
  try {
    return JSON.parse(readFileSync(journalPaths(dataDir).identity, 'utf8')).agent_id;
  } catch (cause) {
    throw new SealtrailError('ST_VERIFY_NO_AGENT', `${dataDir} holds no agent identity (agent.json)`, {
      cause,
    });
  }
}

/**
 * Offline check of a stopped agent's journal: every kept record recomputed and
 * chained from the last acknowledged position to the recorded head, and the
 * journal compared with its anchor to catch a rollback. Writes nothing.
 * `onProgress` is called with the number of records checked so far.
 */
export async function verifyJournal(
  dataDir: string,
  onProgress?: (records: number, total: number) => void,
): Promise<JournalVerifyReport> {
  const agentId = readAgentId(dataDir);
  const paths = journalPaths(dataDir);
  const journal = new Journal({ dir: paths.journal, agentId, hooks: { chainStart: () => Buffer.alloc(0) } });
  await journal.open({ startChain: false });
  try {
    let records = 0;
    const total = journal.backlogRecords;
    const fault = await journal.verifyTail((n) => {
      records = n;
      onProgress?.(n, total);
    });
    let quarantined = 0;
    for await (const _ of journal.records('q')) quarantined++;
    const head = journal.head;
    const chainId = head ? (journal.chainMeta(head.chain)?.chainId ?? null) : null;
    if (fault) {
      return {
        ok: false,
        chain_id: journal.chainMeta(fault.position.chain)?.chainId ?? null,
        records,
        seq: String(fault.position.seq),
        fault: fault.fault,
        detail: fault.detail,
        quarantined,
      };
    }
    const rollback = checkAnchor(journal, readAnchor(paths.anchor));
    if (rollback) {
      return {
        ok: false,
        chain_id: chainId,
        records,
        seq: String(rollback.seq),
        fault: 'rollback',
        detail: rollback.detail,
        quarantined,
      };
    }
    return { ok: true, chain_id: chainId, records, head_seq: head ? String(head.seq) : null, quarantined };
  } finally {
    await journal.close();
  }
}
