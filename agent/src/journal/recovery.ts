/**
 * Opening the journal never blocks start-up on damage. On open it verifies the
 * newest records of the tail it has not shipped yet (`Journal.verifyOnOpen`: the
 * head region, 20,000 records by default; the whole tail when it is shorter or the
 * region shows damage) and checks itself against its anchor. The older unshipped
 * records are verified by `Journal.read` before they are shipped; damage found
 * there is handled the same way, from inside the journal (its `integrity` event):
 *   - a corrupt, missing or reordered record: that record and everything after
 *     it are quarantined (kept under 'q' keys, never shipped), and a new chain
 *     starts that names the last good record;
 *   - a journal behind its anchor (its files replaced by an older copy): a new
 *     chain starts, naming the rollback;
 *   - a LevelDB that cannot be opened at all: the directory is moved aside
 *     (kept) and a fresh journal starts.
 * Each finding becomes a sealed `integrity` event, and the agent keeps running.
 */
import { SealtrailError } from '@sealtrail/errors';
import type { Anchor } from './checkpoint.js';
import { type IntegrityFinding, type Journal, quarantineDirectory } from './journal.js';

export type Finding = IntegrityFinding;

/** Compares the journal with its anchor; a description of the rollback, or null. */
export function checkAnchor(journal: Journal, anchor: Anchor | null): { seq: bigint; detail: string } | null {
  if (!anchor) return null;
  const no = journal.chainNo(anchor.chain_id);
  const head = journal.head;
  const anchorSeq = BigInt(anchor.seq);
  if (no === undefined) {
    return {
      seq: 0n,
      detail: `journal has no chain ${anchor.chain_id}, which the anchor names at seq ${anchor.seq}`,
    };
  }
  const meta = journal.chainMeta(no)!;
  const endSeq = head && head.chain === no ? head.seq : meta.end ? BigInt(meta.end.seq) : -1n;
  if (endSeq < anchorSeq) {
    return {
      seq: endSeq + 1n,
      detail: `journal of chain ${anchor.chain_id} ends at seq ${endSeq} but its anchor was written at seq ${anchor.seq}: the journal files were rolled back`,
    };
  }
  return null;
}

export async function openWithRecovery(
  make: () => Journal,
  anchor: Anchor | null,
): Promise<{ journal: Journal; findings: Finding[] }> {
  const findings: Finding[] = [];
  let journal = make();
  try {
    await journal.open({ startChain: false });
  } catch (err) {
    if (!(err instanceof SealtrailError) || err.code !== 'ST_JOURNAL_OPEN') throw err;
    await journal.close().catch(() => undefined);
    const aside = quarantineDirectory(journal.db.location);
    findings.push({
      kind: 'unreadable',
      detail: `journal could not be opened (${err.message}); moved aside to ${aside} and a new journal started`,
      attributes: { quarantined_dir: aside, error: err.message },
    });
    journal = make();
    await journal.open({ startChain: false });
  }

  const fault = await journal.verifyOnOpen();
  if (fault) {
    const chainId = journal.chainMeta(fault.position.chain)?.chainId ?? null;
    const moved = await journal.quarantineFrom(fault.position);
    await journal.resetHead(fault.lastGood);
    findings.push({
      kind: 'corruption',
      detail: `journal damaged at seq ${fault.position.seq} of chain ${chainId}: ${fault.fault} (${fault.detail}); ${moved} records quarantined, a new chain started`,
      attributes: {
        chain_id: chainId,
        first_bad_seq: String(fault.position.seq),
        fault: fault.fault,
        quarantined_records: moved,
      },
    });
  }
  const rollback = fault ? null : checkAnchor(journal, anchor);
  if (rollback) {
    findings.push({
      kind: 'rollback',
      detail: rollback.detail,
      attributes: { anchor, first_missing_seq: String(rollback.seq) },
    });
  }

  let reason: string | null = null;
  if (findings.some((f) => f.kind === 'unreadable')) reason = 'journal_unreadable';
  else if (fault) reason = 'corruption';
  else if (rollback) reason = 'rollback_detected';
  else if (!journal.hasChain) reason = 'first_start';
  if (reason) await journal.startChain({ reason });
  return { journal, findings };
}
