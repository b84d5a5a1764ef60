import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChainVerifier } from '@sealtrail/chain';
import { SealtrailError } from '@sealtrail/errors';
import { Journal } from './journal.js';

export type JournalVerifyReport =
  | { ok: true; chain_id: string | null; records: number; first_seq: string | null; head_seq: string | null }
  | { ok: false; chain_id: string | null; records: number; seq: string; fault: string; detail: string };

/**
 * Offline check of a stopped agent's journal: every kept record recomputed and
 * chained from the last acknowledged position up to the recorded head.
 */
export async function verifyJournal(dataDir: string): Promise<JournalVerifyReport> {
  let agentId: string;
  try {
    agentId = JSON.parse(readFileSync(join(dataDir, 'agent.json'), 'utf8')).agent_id;
  } catch (cause) {
    throw new SealtrailError('ST_VERIFY_NO_AGENT', `${dataDir} holds no agent identity (agent.json)`, {
      cause,
    });
  }
  const journal = new Journal({
    dir: join(dataDir, 'journal'),
    agentId,
    chainStartEvent: () => Buffer.alloc(0),
  });
  await journal.open({ startChain: false });
  try {
    const head = journal.head;
    if (!head) return { ok: true, chain_id: null, records: 0, first_seq: null, head_seq: null };
    const chainId = journal.chainId;
    const v = new ChainVerifier({ agentId, chainId }, journal.ackedHead);
    let records = 0;
    let first: bigint | null = null;
    for await (const r of journal.records()) {
      first ??= r.seq;
      const step = v.push(r);
      if (!step.ok) {
        return {
          ok: false,
          chain_id: chainId,
          records,
          seq: String(step.seq),
          fault: step.fault,
          detail: step.detail,
        };
      }
      records++;
    }
    const end = v.head;
    if (!end || end.seq !== head.seq || !Buffer.from(end.hash).equals(head.hash)) {
      const seq = end ? end.seq + 1n : journal.ackedHead ? journal.ackedHead.seq + 1n : 0n;
      if (!end || end.seq < head.seq) {
        return {
          ok: false,
          chain_id: chainId,
          records,
          seq: String(seq),
          fault: 'truncated',
          detail: `journal head is ${head.seq} but records end before it`,
        };
      }
      return {
        ok: false,
        chain_id: chainId,
        records,
        seq: String(head.seq),
        fault: 'head_mismatch',
        detail: 'recorded head does not match the last record',
      };
    }
    return {
      ok: true,
      chain_id: chainId,
      records,
      first_seq: first === null ? null : String(first),
      head_seq: String(head.seq),
    };
  } finally {
    await journal.close();
  }
}
