import { join } from 'node:path';
import { ChainVerifier } from '@sealtrail/chain';
import { Spool } from './spool.js';

export interface AgentVerifyReport {
  agent_id: string;
  ok: boolean;
  chains: number;
  records: number;
  head: { chain_id: string | null; seq: string | null };
  fault?: { chain_id: string; seq: string; fault: string; detail: string };
}

export interface SpoolVerifyReport {
  ok: boolean;
  records: number;
  agents: AgentVerifyReport[];
  violations: number;
}

/**
 * Offline re-verification of a stopped collector's spool: every stored record's
 * hashes recomputed from its bytes, every chain walked contiguously from seq 0,
 * and each agent's recorded head matched against what the records prove.
 */
export async function verifySpool(dataDir: string, onlyAgent?: string): Promise<SpoolVerifyReport> {
  const spool = new Spool(join(dataDir, 'spool'));
  // Verifying evidence must not change it: an older spool is refused, not migrated.
  await spool.open({ readOnly: true });
  try {
    const verifiers = new Map<string, ChainVerifier>();
    const reports = new Map<string, AgentVerifyReport>();
    const report = (agentId: string) => {
      let r = reports.get(agentId);
      if (!r) {
        r = { agent_id: agentId, ok: true, chains: 0, records: 0, head: { chain_id: null, seq: null } };
        reports.set(agentId, r);
      }
      return r;
    };
    let total = 0;
    let after = -1n;
    for (;;) {
      const batch = await spool.read(after, 5000);
      if (batch.length === 0) break;
      for (const rec of batch) {
        after = rec.offset;
        if (onlyAgent && rec.agentId !== onlyAgent) continue;
        const r = report(rec.agentId);
        if (!r.ok) continue;
        const k = `${rec.agentId}/${rec.chainId}`;
        let v = verifiers.get(k);
        if (!v) {
          v = new ChainVerifier({ agentId: rec.agentId, chainId: rec.chainId });
          verifiers.set(k, v);
          r.chains++;
        }
        const step = v.push(
          rec.erased ? { seq: rec.seq, recordHash: rec.recordHash, eventHash: rec.eventBytes } : rec,
        );
        if (!step.ok) {
          r.ok = false;
          r.fault = { chain_id: rec.chainId, seq: String(step.seq), fault: step.fault, detail: step.detail };
          continue;
        }
        r.records++;
        total++;
      }
    }
    for await (const state of spool.agents()) {
      if (onlyAgent && state.agent_id !== onlyAgent) continue;
      const r = report(state.agent_id);
      r.head = { chain_id: state.chain_id, seq: state.seq };
      if (!r.ok || !state.chain_id) continue;
      const v = verifiers.get(`${state.agent_id}/${state.chain_id}`);
      const proven = v?.head;
      if (
        !proven ||
        String(proven.seq) !== state.seq ||
        Buffer.from(proven.hash).toString('hex') !== state.hash
      ) {
        r.ok = false;
        r.fault = {
          chain_id: state.chain_id,
          seq: state.seq ?? '-',
          fault: 'head_mismatch',
          detail: `recorded head ${state.seq} is not where the stored records end (${proven ? proven.seq : 'none'})`,
        };
      }
    }
    let violations = 0;
    for await (const _ of spool.violations()) violations++;
    const agents = [...reports.values()];
    return { ok: agents.every((a) => a.ok), records: total, agents, violations };
  } finally {
    await spool.close();
  }
}
