import type { StoredRecord } from '../../spool/spool.js';
import type { Encoded } from '../common/batcher.js';
import type { ExportRecord } from '../common/record.js';
import { assertObjectBytes, jsonFor, sealtrailMetaJson } from '../common/schemas.js';
import type { FileExporterConfig } from './config.js';

/**
 * The native line: the event's own fields at the top level plus a `sealtrail`
 * object. The stored canonical bytes are spliced, not re-serialized: the event
 * is a JSON object whose schema has no `sealtrail` key. One allocation: the
 * bytes are copied and the (ASCII) tail written after them.
 */
export function encodeNativeLine(r: StoredRecord): Buffer {
  assertObjectBytes(r);
  const tail = `,"sealtrail":${sealtrailMetaJson(r)}}\n`;
  const n = r.eventBytes.length - 1; // drop the closing brace
  const out = Buffer.allocUnsafe(n + tail.length);
  r.eventBytes.copy(out, 0, 0, n);
  out.write(tail, n, 'latin1');
  return out;
}

/** One line per record in the exporter's schema. */
export function fileEncoder(c: FileExporterConfig): (x: ExportRecord) => Encoded<Buffer> {
  const json = c.schema === 'native' ? undefined : jsonFor(c.schema);
  return (x) => {
    const payload = json ? Buffer.from(`${json(x)}\n`) : encodeNativeLine(x.record);
    return { x, payload, bytes: payload.length };
  };
}
