/** The events the agent seals about itself: chain starts, checkpoints, gaps, integrity findings. */
import { type AuditEvent, canonicalBytes, newEventId } from '@sealtrail/event';
import type { StartEvent } from './journal.js';

type Host = AuditEvent['host'];

function agentEvent(
  host: Host,
  fields: Pick<
    AuditEvent,
    'category' | 'type' | 'severity' | 'outcome' | 'action' | 'message' | 'attributes'
  >,
): Buffer {
  const now = new Date().toISOString();
  return canonicalBytes({
    id: newEventId(),
    time: now,
    observed_time: now,
    host,
    source: { kind: 'agent', name: 'agent' },
    ...fields,
  } satisfies AuditEvent);
}

/** Record 0 of every chain (design brief): names the agent's key and the chain it follows. */
export function chainStartEvent(host: Host, publicKey: Buffer, start: StartEvent): Buffer {
  return agentEvent(host, {
    category: 'agent',
    type: 'agent.chain.start',
    severity: start.reason === 'first_start' ? 'info' : 'high',
    outcome: 'success',
    action: 'start',
    message: `chain ${start.chainId} started (${start.reason})`,
    attributes: {
      chain_id: start.chainId,
      public_key: publicKey.toString('base64'),
      previous: start.previous,
      reason: start.reason,
    },
  });
}

/** Sealed when `on_full: drop_oldest` dropped payloads: the loss is itself on the record. */
export function gapEvent(
  host: Host,
  info: { chainId: string; fromSeq: bigint; toSeq: bigint; records: number; bytes: number },
): Buffer {
  return agentEvent(host, {
    category: 'agent',
    type: 'agent.journal.gap',
    severity: 'high',
    outcome: 'failure',
    action: 'drop',
    message: `journal full: dropped the payloads of ${info.records} unshipped events (seq ${info.fromSeq}-${info.toSeq})`,
    attributes: {
      chain_id: info.chainId,
      from_seq: String(info.fromSeq),
      to_seq: String(info.toSeq),
      records: info.records,
      bytes: info.bytes,
      reason: 'journal_full',
    },
  });
}

/** What the journal found wrong on open, and what it did about it. */
export function integrityEvent(
  host: Host,
  finding: { kind: string; detail: string; attributes: Record<string, unknown> },
): Buffer {
  return agentEvent(host, {
    category: 'integrity',
    type: `agent.journal.${finding.kind}`,
    severity: 'critical',
    outcome: 'failure',
    action: 'verify',
    message: finding.detail,
    attributes: finding.attributes,
  });
}

export function checkpointEvent(
  host: Host,
  cp: {
    chainId: string;
    seq: bigint;
    recordHash: Buffer;
    unixMs: number;
    nonce: Buffer;
    signature: Buffer;
    reason: string;
  },
): Buffer {
  return agentEvent(host, {
    category: 'agent',
    type: 'agent.checkpoint',
    severity: 'info',
    outcome: 'success',
    action: 'checkpoint',
    attributes: {
      chain_id: cp.chainId,
      seq: String(cp.seq),
      record_hash: cp.recordHash.toString('hex'),
      unix_ms: cp.unixMs,
      nonce: cp.nonce.toString('hex'),
      signature: cp.signature.toString('base64'),
      reason: cp.reason,
    },
  });
}
