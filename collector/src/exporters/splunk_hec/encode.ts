/**
 * One HEC event object per record, several per body (concatenated, not an
 * array): `time` (epoch seconds with milliseconds), `host`, `source`,
 * `sourcetype`, `index`, flat indexed `fields` (strings only: HEC refuses
 * nested fields), and `event`, the record in the exporter's schema.
 */
import type { Encoded } from '../common/batcher.js';
import { rawMembers, rawString } from '../common/raw.js';
import type { ExportRecord } from '../common/record.js';
import { jsonFor } from '../common/schemas.js';
import type { SplunkHecExporterConfig } from './config.js';

export function hecEncoder(c: SplunkHecExporterConfig): (x: ExportRecord) => Encoded<string> {
  const json = jsonFor(c.schema);
  const fixed = `"source":${JSON.stringify(c.source)},"sourcetype":${JSON.stringify(c.sourcetype)}${
    c.index ? `,"index":${JSON.stringify(c.index)}` : ''
  }`;
  return (x) => {
    const head = hecHeadFromText(x, fixed) ?? hecHead(x, fixed);
    const payload = `${head},"event":${json(x)}}`;
    return { x, payload, bytes: Buffer.byteLength(payload) };
  };
}

/** `{"time":…,"host":…,<fixed>,"fields":{…}` (the event object still open) from the parsed event. */
export function hecHead(x: ExportRecord, fixed: string): string {
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
  return `{"time":${(ms / 1000).toFixed(3)},"host":${JSON.stringify(e.host.name)},${fixed},"fields":${JSON.stringify(fields)}`;
}

/** `hecHead` from the stored text's members, without parsing; undefined when the text is not what JCS writes. */
export function hecHeadFromText(x: ExportRecord, fixed: string): string | undefined {
  const m = rawMembers(x.text);
  const host = rawMembers(m?.host);
  const time = rawString(m?.time);
  if (!m || !host || typeof time !== 'string') return undefined;
  const { category, type, severity, outcome, id } = m;
  for (const v of [category, type, severity, outcome, id, host.name])
    if (typeof rawString(v) !== 'string') return undefined;
  const a = m.actor === undefined ? undefined : rawMembers(m.actor);
  if (m.actor !== undefined && !a) return undefined;
  const r = x.record;
  const extra = `${a?.user !== undefined ? `,"user":${a.user}` : ''}${a?.ip !== undefined ? `,"src":${a.ip}` : ''}`;
  return `{"time":${(Date.parse(time) / 1000).toFixed(3)},"host":${host.name},${fixed},"fields":{"category":${category},"type":${type},"severity":${severity},"outcome":${outcome},"agent_id":"${r.agentId}","seq":"${r.seq}","event_id":${id}${extra}}`;
}
