import { Counter, Gauge, type Registry } from '@sealtrail/telemetry';

/** `inHandBytes`: read by the gauge at each scrape. */
export function receiverMetrics(registry: Registry, inHandBytes: () => number = () => 0) {
  const registers = [registry];
  return {
    inHand: new Gauge({
      name: 'sealtrail_receiver_in_hand_bytes',
      help: 'Bytes of batches read from agent streams and not yet committed and acked',
      registers,
      collect() {
        this.set(inHandBytes());
      },
    }),
    streams: new Counter({
      name: 'sealtrail_receiver_streams_total',
      help: 'Agent streams opened',
      registers,
    }),
    batches: new Counter({
      name: 'sealtrail_receiver_batches_total',
      help: 'Record batches received',
      registers,
    }),
    records: new Counter({
      name: 'sealtrail_receiver_records_stored_total',
      help: 'Verified records committed to the spool',
      registers,
    }),
    duplicates: new Counter({
      name: 'sealtrail_receiver_duplicate_records_total',
      help: 'Records received again with the same hash (acked, not stored)',
      registers,
    }),
    duplicateIds: new Counter({
      name: 'sealtrail_receiver_duplicate_event_ids_total',
      help: 'Records whose event id was already stored (kept in the chain, not exported)',
      registers,
    }),
    violations: new Counter({
      name: 'sealtrail_receiver_integrity_violations_total',
      help: 'Integrity violations, by fault',
      labelNames: ['fault'],
      registers,
    }),
    checkpoints: new Counter({
      name: 'sealtrail_receiver_checkpoints_verified_total',
      help: 'Agent checkpoints whose signature verified',
      registers,
    }),
    authFailures: new Counter({
      name: 'sealtrail_receiver_auth_failures_total',
      help: 'Streams refused at authentication, by reason',
      labelNames: ['reason'],
      registers,
    }),
  };
}

export type ReceiverMetrics = ReturnType<typeof receiverMetrics>;
