/**
 * One HEC event object per record, several per body (concatenated, not an
 * array): `time` (epoch seconds with milliseconds), `host`, `source`,
 * `sourcetype`, `index`, flat indexed `fields` (strings only: HEC refuses
 * nested fields), and `event`, the record in the exporter's schema.
 */
import type { Encoded } from '../common/batcher.js';
import type { ExportRecord } from '../common/record.js';
import { jsonFor } from '../common/schemas.js';
import type { SplunkHecExporterConfig } from './config.js';

export function hecEncoder(c: SplunkHecExporterConfig): (x: ExportRecord) => Encoded<string> {
  const json = jsonFor(c.schema);
  const fixed = `"source":${JSON.stringify(c.source)},"sourcetype":${JSON.stringify(c.sourcetype)}${
    c.index ? `,"index":${JSON.stringify(c.index)}` : ''
  }`;
  return (x) => {
    const e = x.event;
    const ms = Date.parse(e.time);
    const fields: Record<string, string> = {
      category: e.category,
      type: e.type,
      severity: e.severity,
      outcome: e.outcome,
      agent_id: x.record.agentId,
      seq: x.record.seq.toString(),
      event_id: e.id,
    };
    if (e.actor?.user !== undefined) fields.user = e.actor.user;
    if (e.actor?.ip !== undefined) fields.src = e.actor.ip;
    const payload = `{"time":${(ms / 1000).toFixed(3)},"host":${JSON.stringify(e.host.name)},${fixed},"fields":${JSON.stringify(fields)},"event":${json(x)}}`;
    return { x, payload, bytes: Buffer.byteLength(payload) };
  };
}
