/**
 * The three shapes an exporter can write: `native` (the event's own fields plus
 * a `sealtrail` object, as the file exporter writes it), `ecs` (Elastic Common
 * Schema 8) and `ocsf` (Open Cybersecurity Schema Framework 1.3: class,
 * activity, type_uid = class_uid × 100 + activity_id).
 */
import { SealtrailError } from '@sealtrail/errors';
import type { AuditEvent } from '@sealtrail/event';
import type { StoredRecord } from '../../spool/spool.js';
import { COLLECTOR_VERSION } from '../../version.js';
import type { SchemaName } from './config.js';
import type { ExportRecord } from './record.js';

export interface SealtrailMeta {
  agent_id: string;
  chain_id: string;
  seq: string;
  record_hash: string;
  received_time: string;
}

export function sealtrailMeta(r: StoredRecord): SealtrailMeta {
  return {
    agent_id: r.agentId,
    chain_id: r.chainId,
    seq: r.seq.toString(),
    record_hash: r.recordHash.toString('hex'),
    received_time: receivedIso(r.receivedMs),
  };
}

export function toNative(x: ExportRecord): Record<string, unknown> {
  return { ...x.event, sealtrail: sealtrailMeta(x.record) };
}

let lastMs = Number.NaN;
let lastIso = '';

/** One record's receive time as RFC 3339; records of one spool commit share it, so the last is kept. */
function receivedIso(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}

/**
 * `JSON.stringify(sealtrailMeta(r))`, written out: every value is ASCII that
 * JSON does not escape (UUIDs, digits, hex, an RFC 3339 time).
 */
export function sealtrailMetaJson(r: StoredRecord): string {
  return `{${metaMembers(r)}}`;
}

/** The members of `sealtrailMetaJson`, without the braces. */
function metaMembers(r: StoredRecord): string {
  return `"agent_id":"${r.agentId}","chain_id":"${r.chainId}","seq":"${r.seq}","record_hash":"${r.recordHash.toString('hex')}","received_time":"${receivedIso(r.receivedMs)}"`;
}

/** The stored bytes must be one JSON object for the splice to be one too (they were validated on entry). */
export function assertObjectBytes(r: StoredRecord): void {
  const b = r.eventBytes;
  if (b.length < 2 || b[0] !== 0x7b || b[b.length - 1] !== 0x7d) {
    throw new SealtrailError('ST_EXPORT_EVENT_BYTES', `spool record ${r.offset} does not hold a JSON object`);
  }
}

/**
 * The native object as JSON, spliced from the stored canonical bytes rather
 * than re-serialized (the event is a JSON object whose schema has no
 * `sealtrail` key). `extra` adds keys first (e.g. `"@timestamp":…,`).
 */
export function nativeJson(x: ExportRecord, extra = ''): string {
  assertObjectBytes(x.record);
  return `{${extra}${x.text.slice(1, -1)},"sealtrail":${sealtrailMetaJson(x.record)}}`;
}

const ECS_CATEGORY: Record<string, string[]> = {
  authentication: ['authentication'],
  file: ['file'],
  process: ['process'],
  network: ['network'],
  account: ['iam'],
  configuration: ['configuration'],
  application: ['web'],
  system: ['host'],
  integrity: ['intrusion_detection'],
  agent: ['host'],
};

/** ECS `event.type` from our dotted type and verb: the closest allowed value, `info` otherwise. */
function ecsType(e: AuditEvent): string[] {
  const words = `${e.type}.${e.action}`.split(/[._]/);
  const has = (...w: string[]) => w.some((x) => words.includes(x));
  const out: string[] = [];
  if (has('login', 'logon', 'start', 'started', 'exec', 'launch')) out.push('start');
  else if (has('logout', 'logoff', 'stop', 'stopped', 'exit', 'end')) out.push('end');
  else if (has('created', 'create', 'added', 'add', 'opened', 'install', 'installed')) out.push('creation');
  else if (has('deleted', 'delete', 'removed', 'remove', 'closed', 'uninstall')) out.push('deletion');
  else if (has('modified', 'modify', 'write', 'changed', 'change', 'update', 'updated', 'chmod', 'chown'))
    out.push('change');
  else if (has('read', 'access', 'accessed')) out.push('access');
  if (e.category === 'account') out.push('user');
  if (e.outcome === 'failure' && e.category === 'authentication') out.push('denied');
  return out.length > 0 ? out : ['info'];
}

export const ECS_SEVERITY: Record<string, number> = { info: 1, low: 21, medium: 47, high: 73, critical: 99 };

function basename(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i >= 0 ? p.slice(i + 1) : p;
}

export function toEcs(x: ExportRecord): Record<string, unknown> {
  const e = x.event;
  const meta = sealtrailMeta(x.record);
  const doc: Record<string, unknown> = {
    '@timestamp': e.time,
    ecs: { version: '8.11.0' },
    event: {
      id: e.id,
      kind: 'event',
      category: ECS_CATEGORY[e.category] ?? ['host'],
      type: ecsType(e),
      action: e.action,
      outcome: e.outcome,
      severity: ECS_SEVERITY[e.severity],
      created: e.observed_time,
      ingested: meta.received_time,
      module: 'sealtrail',
      dataset: `sealtrail.${e.category}`,
    },
    log: { level: e.severity },
    host: { id: e.host.id, name: e.host.name, hostname: e.host.name, os: { full: e.host.os } },
    agent: { id: e.host.id, type: 'sealtrail' },
    sealtrail: { ...meta, type: e.type, category: e.category, source: e.source },
  };
  if (e.message !== undefined) doc.message = e.message;
  const a = e.actor;
  if (a) {
    if (a.user !== undefined || a.uid !== undefined) doc.user = { name: a.user, id: a.uid };
    if (a.ip !== undefined) doc.source = { ip: a.ip };
    if (a.user_agent !== undefined) doc.user_agent = { original: a.user_agent };
    if (a.session_id !== undefined || a.request_id !== undefined)
      (doc.sealtrail as Record<string, unknown>).actor = {
        session_id: a.session_id,
        request_id: a.request_id,
      };
  }
  const r = e.resource;
  if (r) {
    if (r.kind === 'file' && r.name !== undefined) doc.file = { path: r.name, name: basename(r.name) };
    else if (r.kind === 'process') {
      const pid = r.id !== undefined && /^\d+$/.test(r.id) ? Number(r.id) : undefined;
      doc.process = { name: r.name, pid };
    } else if (r.kind === 'user') doc.user = { ...(doc.user as object), target: { name: r.name, id: r.id } };
    else if (r.kind === 'package') doc.package = { name: r.name };
    else if (r.kind === 'service') doc.service = { name: r.name };
    (doc.sealtrail as Record<string, unknown>).resource = r;
  }
  if (e.attributes !== undefined) (doc.sealtrail as Record<string, unknown>).attributes = e.attributes;
  return doc;
}

interface OcsfClass {
  category_uid: number;
  category_name: string;
  class_uid: number;
  class_name: string;
  activity(e: AuditEvent): [number, string];
}

const verb = (e: AuditEvent) => `${e.type}.${e.action}`.split(/[._]/);
const OTHER: [number, string] = [99, 'Other'];
const pick =
  (table: [string[], number, string][]) =>
  (e: AuditEvent): [number, string] => {
    const words = verb(e);
    for (const [keys, id, name] of table) if (keys.some((k) => words.includes(k))) return [id, name];
    return OTHER;
  };

const OCSF: Record<string, OcsfClass> = {
  authentication: {
    category_uid: 3,
    category_name: 'Identity & Access Management',
    class_uid: 3002,
    class_name: 'Authentication',
    activity: pick([
      [['login', 'logon'], 1, 'Logon'],
      [['logout', 'logoff'], 2, 'Logoff'],
    ]),
  },
  account: {
    category_uid: 3,
    category_name: 'Identity & Access Management',
    class_uid: 3001,
    class_name: 'Account Change',
    activity: pick([
      [['create', 'created', 'add', 'added'], 1, 'Create'],
      [['enable', 'enabled'], 2, 'Enable'],
      [['password'], 3, 'Password Change'],
      [['disable', 'disabled'], 5, 'Disable'],
      [['delete', 'deleted', 'remove', 'removed'], 6, 'Delete'],
    ]),
  },
  file: {
    category_uid: 1,
    category_name: 'System Activity',
    class_uid: 1001,
    class_name: 'File System Activity',
    activity: pick([
      [['create', 'created', 'added'], 1, 'Create'],
      [['read', 'access'], 2, 'Read'],
      [['modified', 'modify', 'write', 'update', 'changed'], 3, 'Update'],
      [['delete', 'deleted', 'removed'], 4, 'Delete'],
      [['rename', 'renamed', 'moved'], 5, 'Rename'],
      [['chmod', 'chown', 'attributes', 'mode'], 6, 'Set Attributes'],
    ]),
  },
  process: {
    category_uid: 1,
    category_name: 'System Activity',
    class_uid: 1007,
    class_name: 'Process Activity',
    activity: pick([
      [['exec', 'launch', 'start', 'started', 'spawn'], 1, 'Launch'],
      [['exit', 'terminate', 'terminated', 'kill', 'stop'], 2, 'Terminate'],
    ]),
  },
  network: {
    category_uid: 4,
    category_name: 'Network Activity',
    class_uid: 4001,
    class_name: 'Network Activity',
    activity: pick([
      [['open', 'opened', 'connect', 'listen'], 1, 'Open'],
      [['close', 'closed'], 2, 'Close'],
      [['refuse', 'refused', 'deny', 'denied', 'block', 'blocked'], 5, 'Refuse'],
    ]),
  },
};

const BASE: OcsfClass = {
  category_uid: 0,
  category_name: 'Uncategorized',
  class_uid: 0,
  class_name: 'Base Event',
  activity: () => OTHER,
};

export const OCSF_SEVERITY: Record<string, [number, string]> = {
  info: [1, 'Informational'],
  low: [2, 'Low'],
  medium: [3, 'Medium'],
  high: [4, 'High'],
  critical: [5, 'Critical'],
};

const OCSF_STATUS: Record<string, [number, string]> = {
  success: [1, 'Success'],
  failure: [2, 'Failure'],
  unknown: [0, 'Unknown'],
};

export function toOcsf(x: ExportRecord): Record<string, unknown> {
  const e = x.event;
  const meta = sealtrailMeta(x.record);
  const cls = OCSF[e.category] ?? BASE;
  const [activity_id, activity_name] = cls.activity(e);
  const [severity_id, severity] = OCSF_SEVERITY[e.severity] ?? [0, 'Unknown'];
  const [status_id, status] = OCSF_STATUS[e.outcome] ?? [0, 'Unknown'];
  const doc: Record<string, unknown> = {
    category_uid: cls.category_uid,
    category_name: cls.category_name,
    class_uid: cls.class_uid,
    class_name: cls.class_name,
    activity_id,
    activity_name,
    type_uid: cls.class_uid * 100 + activity_id,
    type_name: `${cls.class_name}: ${activity_name}`,
    severity_id,
    severity,
    status_id,
    status,
    time: Date.parse(e.time),
    metadata: {
      version: '1.3.0',
      uid: e.id,
      event_code: e.type,
      logged_time: Date.parse(e.observed_time),
      processed_time: x.record.receivedMs,
      product: { name: 'Sealtrail', vendor_name: 'Sealtrail', version: COLLECTOR_VERSION },
    },
    device: { uid: e.host.id, hostname: e.host.name, os: { name: e.host.os, type_id: 0 } },
    unmapped: {
      sealtrail: { ...meta, type: e.type, category: e.category, action: e.action, source: e.source },
    },
  };
  if (e.message !== undefined) doc.message = e.message;
  const a = e.actor;
  if (a) {
    const user: Record<string, unknown> = {};
    if (a.user !== undefined) user.name = a.user;
    if (a.uid !== undefined) user.uid = a.uid;
    const actor: Record<string, unknown> = {};
    if (Object.keys(user).length > 0) actor.user = user;
    if (a.session_id !== undefined) actor.session = { uid: a.session_id };
    if (Object.keys(actor).length > 0) doc.actor = actor;
    if (a.ip !== undefined) doc.src_endpoint = { ip: a.ip };
    if (a.user_agent !== undefined) doc.http_request = { user_agent: a.user_agent };
    if (cls.class_uid === 3002 && actor.user) doc.user = actor.user;
  }
  const r = e.resource;
  if (r) {
    if (r.kind === 'file' && r.name !== undefined)
      doc.file = { path: r.name, name: basename(r.name), type_id: 0 };
    else if (r.kind === 'process')
      doc.process = {
        name: r.name,
        pid: r.id !== undefined && /^\d+$/.test(r.id) ? Number(r.id) : undefined,
      };
    else if (r.kind === 'user') doc.user = { name: r.name, uid: r.id };
    (doc.unmapped as { sealtrail: Record<string, unknown> }).sealtrail.resource = r;
  }
  if (e.attributes !== undefined)
    (doc.unmapped as { sealtrail: Record<string, unknown> }).sealtrail.attributes = e.attributes;
  return doc;
}

/** The object for a schema; `native` here builds an object (use `nativeJson` when only JSON text is needed). */
export function shaper(schema: SchemaName): (x: ExportRecord) => Record<string, unknown> {
  return schema === 'ecs' ? toEcs : schema === 'ocsf' ? toOcsf : toNative;
}

/** JSON text for a schema, splicing the stored bytes for `native`. */
export function jsonFor(schema: SchemaName): (x: ExportRecord) => string {
  if (schema === 'native') return nativeJson;
  const shape = shaper(schema);
  return (x) => JSON.stringify(shape(x));
}
