import { type AuditEvent, canonicalBytes, newEventId } from '@sealtrail/event';

/** Record 0 of every chain (design brief): names the agent's key and the chain it follows. */
export function chainStartEvent(opts: {
  host: AuditEvent['host'];
  chainId: string;
  publicKey: Buffer;
  previous: { chain_id: string; last_seq: string; last_hash: string } | null;
  reason: string;
}): Buffer {
  const now = new Date().toISOString();
  const event: AuditEvent = {
    id: newEventId(),
    time: now,
    observed_time: now,
    category: 'agent',
    type: 'agent.chain.start',
    severity: 'info',
    outcome: 'success',
    action: 'start',
    host: opts.host,
    source: { kind: 'agent', name: 'agent' },
    message: `chain ${opts.chainId} started (${opts.reason})`,
    attributes: {
      chain_id: opts.chainId,
      public_key: opts.publicKey.toString('base64'),
      previous: opts.previous,
      reason: opts.reason,
    },
  };
  return canonicalBytes(event);
}
