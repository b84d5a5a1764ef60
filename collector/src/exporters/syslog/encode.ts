/**
 * RFC 5424 messages with RFC 6587 octet-counting framing:
 *
 *   MSG-LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID k="v" …] MSG
 *
 * MSG-LEN counts bytes of the UTF-8 message, not characters. PARAM-VALUEs
 * escape `"`, `\` and `]` (§6.3.3). MSG is, by `format`:
 *   rfc5424-json  the event as JSON in the exporter's schema
 *   cef           ArcSight CEF:0; header fields escape `\` and `|`, extension values
 *                 escape `\`, `=`, and CR and LF as `\r` and `\n`; severity 0-10
 *   leef          IBM LEEF:2.0 with a tab delimiter; tabs in values become spaces,
 *                 line breaks are written `\n` (LEEF has no escaping of its own)
 * No BOM is written before MSG (rsyslog, syslog-ng and the SIEMs take UTF-8 as is).
 */
import { isIP } from 'node:net';
import type { AuditEvent } from '@sealtrail/event';
import { COLLECTOR_VERSION } from '../../version.js';
import type { Encoded } from '../common/batcher.js';
import type { ExportRecord } from '../common/record.js';
import { jsonFor } from '../common/schemas.js';
import { FACILITIES, type SyslogExporterConfig } from './config.js';

const FACILITY_CODE: Record<string, number> = Object.fromEntries(FACILITIES.map((f, i) => [f, i]));

/** Syslog severity (RFC 5424 table 2) for ours. */
export const SYSLOG_SEVERITY: Record<string, number> = { info: 6, low: 5, medium: 4, high: 3, critical: 2 };
export const CEF_SEVERITY: Record<string, number> = { info: 1, low: 3, medium: 5, high: 8, critical: 10 };

/** PRINTUSASCII, no spaces, bounded; `-` (NILVALUE) when empty. */
function header(s: string | undefined, max: number): string {
  if (!s) return '-';
  const clean = s.replace(/[^!-~]/g, '_').slice(0, max);
  return clean === '' ? '-' : clean;
}

// Most values need no escaping: one test is cheaper than the replaces below.
const NEEDS_PARAM_ESCAPE = /["\\\]]/;
const NEEDS_CEF_HEADER_ESCAPE = /[\\|\r\n]/;
const NEEDS_CEF_VALUE_ESCAPE = /[\\=\r\n]/;

export function escapeParamValue(v: string): string {
  return NEEDS_PARAM_ESCAPE.test(v) ? v.replace(/["\\\]]/g, (c) => `\\${c}`) : v;
}

export function cefHeader(v: string): string {
  return NEEDS_CEF_HEADER_ESCAPE.test(v)
    ? v.replace(/[\\|]/g, (c) => `\\${c}`).replace(/\r\n|\r|\n/g, ' ')
    : v;
}

export function cefValue(v: string): string {
  if (!NEEDS_CEF_VALUE_ESCAPE.test(v)) return v;
  return v
    .replace(/[\\=]/g, (c) => `\\${c}`)
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r');
}

function basename(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i >= 0 ? p.slice(i + 1) : p;
}

/** CEF:0|Sealtrail|Sealtrail|<version>|<type>|<name>|<severity>|<extension> */
export function toCef(x: ExportRecord): string {
  const e = x.event;
  const r = x.record;
  const ext: [string, string | undefined][] = [
    ['rt', String(Date.parse(e.time))],
    ['externalId', e.id],
    ['cat', e.category],
    ['act', e.action],
    ['outcome', e.outcome],
    ['dvchost', e.host.name],
    ['deviceExternalId', e.host.id],
    ['src', e.actor?.ip !== undefined && isIP(e.actor.ip) ? e.actor.ip : undefined],
    ['suser', e.actor?.user],
    ['suid', e.actor?.uid],
    ['requestClientApplication', e.actor?.user_agent],
    ...fileOrProcess(e),
    ['msg', e.message],
    ['cs1Label', 'sealtrailAgentId'],
    ['cs1', r.agentId],
    ['cs2Label', 'sealtrailChainId'],
    ['cs2', r.chainId],
    ['cs3Label', 'sealtrailSeq'],
    ['cs3', r.seq.toString()],
    ['cs4Label', 'sealtrailRecordHash'],
    ['cs4', r.recordHash.toString('hex')],
    ['cs5Label', 'sealtrailSource'],
    ['cs5', `${e.source.kind}/${e.source.name}`],
  ];
  const extension = ext
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${cefValue(v!)}`)
    .join(' ');
  const name = `${e.category} ${e.action} ${e.outcome}`;
  return `CEF:0|Sealtrail|Sealtrail|${cefHeader(COLLECTOR_VERSION)}|${cefHeader(e.type)}|${cefHeader(name)}|${
    CEF_SEVERITY[e.severity] ?? 0
  }|${extension}`;
}

function fileOrProcess(e: AuditEvent): [string, string | undefined][] {
  const r = e.resource;
  if (!r?.name) return [];
  if (r.kind === 'file')
    return [
      ['fname', basename(r.name)],
      ['filePath', r.name],
    ];
  if (r.kind === 'process')
    return [
      ['sproc', r.name],
      ['spid', r.id !== undefined && /^\d+$/.test(r.id) ? r.id : undefined],
    ];
  if (r.kind === 'user')
    return [
      ['duser', r.name],
      ['duid', r.id],
    ];
  return [
    ['cs6Label', `sealtrail_${r.kind ?? 'resource'}`],
    ['cs6', r.name],
  ];
}

function leefValue(v: string): string {
  return v.replace(/\t/g, ' ').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

/** LEEF:2.0|Sealtrail|Sealtrail|<version>|<type>|x09|key=value<TAB>… */
export function toLeef(x: ExportRecord): string {
  const e = x.event;
  const r = x.record;
  const attrs: [string, string | undefined][] = [
    ['devTime', e.time],
    ['devTimeFormat', "yyyy-MM-dd'T'HH:mm:ss.SSSX"],
    ['cat', e.category],
    ['sev', String(CEF_SEVERITY[e.severity] ?? 1)],
    ['src', e.actor?.ip !== undefined && isIP(e.actor.ip) ? e.actor.ip : undefined],
    ['usrName', e.actor?.user],
    ['identSrc', e.actor?.ip],
    ['action', e.action],
    ['outcome', e.outcome],
    ['resource', e.resource?.name],
    ['resourceType', e.resource?.kind],
    ['identHostName', e.host.name],
    ['eventId', e.id],
    ['agentId', r.agentId],
    ['seq', r.seq.toString()],
    ['recordHash', r.recordHash.toString('hex')],
    ['msg', e.message],
  ];
  const body = attrs
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${leefValue(v!)}`)
    .join('\t');
  return `LEEF:2.0|Sealtrail|Sealtrail|${cefHeader(COLLECTOR_VERSION)}|${cefHeader(e.type)}|x09|${body}`;
}

/** One framed message: `<byte length> <RFC 5424 message>`. */
export function syslogEncoder(c: SyslogExporterConfig): (x: ExportRecord) => Encoded<Buffer> {
  const facility = FACILITY_CODE[c.facility]! * 8;
  const msgOf = c.format === 'cef' ? toCef : c.format === 'leef' ? toLeef : jsonFor(c.schema);
  return (x) => {
    const e = x.event;
    const r = x.record;
    const pri = facility + (SYSLOG_SEVERITY[e.severity] ?? 6);
    const sd =
      `[${c.sd_id} id="${escapeParamValue(e.id)}" agent_id="${r.agentId}" seq="${r.seq}"` +
      ` category="${e.category}" type="${escapeParamValue(e.type)}" severity="${e.severity}" outcome="${e.outcome}"]`;
    const msg = `<${pri}>1 ${e.time} ${header(e.host.name, 255)} ${c.app_name} - ${header(e.type, 32)} ${sd} ${msgOf(x)}`;
    const body = Buffer.from(msg, 'utf8');
    const frame = Buffer.concat([Buffer.from(`${body.length} `), body]);
    return { x, payload: frame, bytes: frame.length };
  };
}
