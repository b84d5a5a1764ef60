import type { StoredRecord } from '../../spool/spool.js';
import type { Encoded } from '../common/batcher.js';
import type { ExportRecord } from '../common/record.js';
import { jsonFor } from '../common/schemas.js';
import type { FileExporterConfig } from './config.js';

/**
 * The native line: the event's own fields at the top level plus a `sealtrail`
 * object. The stored canonical bytes are spliced, not re-serialized: the event
 * is a JSON object whose schema has no `sealtrail` key.
 */
export function encodeNativeLine(r: StoredRecord): Buffer {
  const meta = JSON.stringify({
    agent_id: r.agentId,
    chain_id: r.chainId,
    seq: r.seq.toString(),
    record_hash: r.recordHash.toString('hex'),
    received_time: new Date(r.receivedMs).toISOString(),
  });
  const body = r.eventBytes.subarray(0, r.eventBytes.length - 1); // drop the closing brace
  return Buffer.concat([body, Buffer.from(`,"sealtrail":${meta}}\n`)]);
}

/** One line per record in the exporter's schema. */
export function fileEncoder(c: FileExporterConfig): (x: ExportRecord) => Encoded<Buffer> {
  const json = c.schema === 'native' ? undefined : jsonFor(c.schema);
  return (x) => {
    const payload = json ? Buffer.from(`${json(x)}\n`) : encodeNativeLine(x.record);
    return { x, payload, bytes: payload.length };
  };
}
