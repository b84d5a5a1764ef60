/**
 * `_bulk` NDJSON: per record an action line `{"create":{"_index":…,"_id":<event id>}}`
 * and the document. `create` with the event id makes a re-sent event a 409
 * (already there) instead of a second copy. Every document has `@timestamp`,
 * which data streams require, whatever the schema.
 */
import type { Encoded } from '../common/batcher.js';
import type { ExportRecord } from '../common/record.js';
import { nativeJson, toEcs, toOcsf } from '../common/schemas.js';
import type { ElasticsearchExporterConfig } from './config.js';

export function bulkEncoder(c: ElasticsearchExporterConfig): (x: ExportRecord) => Encoded<string> {
  const index = JSON.stringify(c.index);
  const doc =
    c.schema === 'ecs'
      ? (x: ExportRecord) => JSON.stringify(toEcs(x))
      : c.schema === 'ocsf'
        ? (x: ExportRecord) => JSON.stringify({ '@timestamp': x.event.time, ...toOcsf(x) })
        : (x: ExportRecord) => nativeJson(x, `"@timestamp":${JSON.stringify(x.event.time)},`);
  return (x) => {
    const payload = `{"create":{"_index":${index},"_id":${JSON.stringify(x.event.id)}}}\n${doc(x)}\n`;
    return { x, payload, bytes: Buffer.byteLength(payload) };
  };
}
