/**
 * `linux_audit`: /var/log/audit/audit.log (raw or ENRICHED format, with or without
 * `node=`), records grouped by event serial (`msg=audit(<epoch>:<serial>)`) into one
 * event each: EXECVE+SYSCALL(+CWD+PATH+PROCTITLE) → `process.exec`, USER_LOGIN,
 * USER_AUTH, USER_ACCT, USER_START/END, CRED_*, USER_CMD, CONFIG_CHANGE,
 * ADD_USER/DEL_USER/ADD_GROUP/DEL_GROUP/USER_MGMT/USER_CHAUTHTOK, SERVICE_START/STOP,
 * ANOM_* and AVC; any other record type → `audit.<type>`.
 *
 * auditd writes one event's records together and ends multi-record events with EOE;
 * a group is emitted on EOE, when a record of another serial arrives, or when it has
 * waited (the file went idle). While a group is held the tailer does not commit its
 * read offset past the group's first line, so a restart rebuilds it whole.
 */
import type { EventDraft } from '../../common/emit.js';
import { type LineContext, logLine, type Parser } from './parser.js';

const RECORD = /^(?:node=(\S+) )?type=(\S+) msg=audit\((\d+)\.(\d+):(\d+)\): ?(.*)$/;
const KV = /([A-Za-z_][\w-]*)=("[^"]*"|'[^']*'|\S*)/g;
/** Fields auditd hex-encodes when the value has a space, quote or control character. */
const ENCODED =
  /^(a\d+|proctitle|acct|comm|exe|cwd|name|path|cmd|data|key|old|new|vm|grp|new_group|new_user)$/;

interface AuditRecord {
  type: string;
  node: string | undefined;
  ms: number;
  serial: string;
  fields: Record<string, string>;
  offset: number;
  line: string;
}

function decodeHex(v: string): string {
  return Buffer.from(v, 'hex').toString('utf8').replace(/\0/g, ' ').trimEnd();
}

export function parseFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  // ENRICHED format: raw fields, 0x1d, then the interpreted ones in upper case (AUID="alice").
  const gs = text.indexOf('\x1d');
  const raw = gs >= 0 ? text.slice(0, gs) : text;
  const enriched = gs >= 0 ? text.slice(gs + 1) : '';
  for (const m of raw.matchAll(KV)) {
    const k = m[1]!;
    let v = m[2]!;
    if (v.startsWith("'") && v.endsWith("'")) {
      // USER_* records carry their PAM fields inside msg='...'.
      Object.assign(out, parseFields(v.slice(1, -1)));
      continue;
    }
    if (/^[A-Z][A-Z0-9_]*$/.test(k)) {
      // An interpreted field without the 0x1d separator (a log that lost it): still interpreted.
      out[`_${k.toLowerCase()}`] = v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
      continue;
    }
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    else if (ENCODED.test(k) && /^[0-9A-F]+$/.test(v) && v.length % 2 === 0 && v.length >= 2)
      v = decodeHex(v);
    out[k] = v;
  }
  for (const m of enriched.matchAll(KV)) {
    let v = m[2]!;
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    out[`_${m[1]!.toLowerCase()}`] = v;
  }
  return out;
}

function present(v: string | undefined): string | undefined {
  return v === undefined || v === '?' || v === '(null)' || v === '' || v === 'unset' || v === '4294967295'
    ? undefined
    : v;
}

function resOutcome(f: Record<string, string>): 'success' | 'failure' | 'unknown' {
  const r = f.res ?? f.result ?? f.success;
  if (r === undefined) return 'unknown';
  return /^(success|yes|1)$/i.test(r) ? 'success' : /^(fail|failed|no|0)$/i.test(r) ? 'failure' : 'unknown';
}

function actorOf(f: Record<string, string>): Record<string, string | undefined> {
  return {
    user: present(f.acct) ?? present(f._auid) ?? present(f._uid),
    uid: present(f.auid) ?? present(f.uid),
    ip: present(f.addr),
    session_id: present(f.ses),
  };
}

const USER_TYPES: Record<string, { type: string; action: string; category: EventDraft['category'] }> = {
  USER_LOGIN: { type: 'auth.login', action: 'login', category: 'authentication' },
  USER_LOGOUT: { type: 'auth.logout', action: 'logout', category: 'authentication' },
  USER_AUTH: { type: 'auth.authenticate', action: 'authenticate', category: 'authentication' },
  USER_ACCT: { type: 'auth.authorize', action: 'authorize', category: 'authentication' },
  USER_START: { type: 'auth.session.opened', action: 'session_open', category: 'authentication' },
  USER_END: { type: 'auth.session.closed', action: 'session_close', category: 'authentication' },
  CRED_ACQ: { type: 'auth.credentials.acquired', action: 'acquire', category: 'authentication' },
  CRED_DISP: { type: 'auth.credentials.disposed', action: 'dispose', category: 'authentication' },
  CRED_REFR: { type: 'auth.credentials.refreshed', action: 'refresh', category: 'authentication' },
  USER_ERR: { type: 'auth.error', action: 'authenticate', category: 'authentication' },
  ADD_USER: { type: 'account.user.created', action: 'create', category: 'account' },
  DEL_USER: { type: 'account.user.deleted', action: 'delete', category: 'account' },
  ADD_GROUP: { type: 'account.group.created', action: 'create', category: 'account' },
  DEL_GROUP: { type: 'account.group.deleted', action: 'delete', category: 'account' },
  USER_MGMT: { type: 'account.user.modified', action: 'modify', category: 'account' },
  GRP_MGMT: { type: 'account.group.modified', action: 'modify', category: 'account' },
  USER_CHAUTHTOK: { type: 'account.password.changed', action: 'change_password', category: 'account' },
  GRP_CHAUTHTOK: { type: 'account.group.password_changed', action: 'change_password', category: 'account' },
  USER_ROLE_CHANGE: { type: 'account.role.changed', action: 'modify', category: 'account' },
};

/** Session bookkeeping with an outcome suffix (`auth.login.success`); the rest keep their type. */
const SUFFIXED = new Set(['USER_LOGIN', 'USER_AUTH', 'USER_ACCT', 'USER_ERR']);

function groupToDraft(records: AuditRecord[], ctx: LineContext): EventDraft {
  const byType = new Map<string, AuditRecord[]>();
  for (const r of records) {
    const list = byType.get(r.type);
    if (list) list.push(r);
    else byType.set(r.type, [r]);
  }
  const first = records[0]!;
  const main = records.find((r) => r.type !== 'EOE' && r.type !== 'PROCTITLE') ?? first;
  const f = { ...main.fields };
  const attributes: Record<string, unknown> = {
    audit_type: main.type,
    audit_serial: first.serial,
    records: records.filter((r) => r.type !== 'EOE').map((r) => r.type),
    file: ctx.path,
    ...(first.node ? { node: first.node } : {}),
  };
  const base = { time: first.ms, message: records.map((r) => r.line).join('\n') };
  const syscall = byType.get('SYSCALL')?.[0]?.fields;
  const execve = byType.get('EXECVE')?.[0]?.fields;

  if (execve) {
    const argc = Number(execve.argc ?? 0);
    const argv: string[] = [];
    for (let i = 0; i < argc && i < 256; i++) if (execve[`a${i}`] !== undefined) argv.push(execve[`a${i}`]!);
    const s = syscall ?? {};
    return {
      ...base,
      category: 'process',
      type: 'process.exec',
      action: 'exec',
      outcome: s.success === 'no' ? 'failure' : 'success',
      actor: actorOf(s),
      resource: { kind: 'process', name: present(s.exe) ?? argv[0], id: s.pid },
      attributes: {
        ...attributes,
        argv,
        command_line: argv.join(' '),
        exe: s.exe,
        comm: s.comm,
        pid: s.pid,
        ppid: s.ppid,
        uid: s.uid,
        euid: s.euid,
        auid: s.auid,
        cwd: byType.get('CWD')?.[0]?.fields.cwd,
        key: present(s.key),
      },
    };
  }

  const user = USER_TYPES[main.type];
  if (user) {
    const outcome = resOutcome(f);
    const type = SUFFIXED.has(main.type) && outcome !== 'unknown' ? `${user.type}.${outcome}` : user.type;
    const account = user.category === 'account';
    const target = present(f.acct) ?? present(f.id) ?? present(f.name);
    return {
      ...base,
      category: user.category,
      type,
      action: user.action,
      outcome,
      severity: outcome === 'failure' ? 'low' : account ? 'medium' : 'info',
      actor: account
        ? { uid: present(f.auid) ?? present(f.uid), user: present(f._auid), ip: present(f.addr) }
        : actorOf(f),
      ...(account && target
        ? {
            resource: {
              kind: main.type.includes('GRP') || main.type.includes('GROUP') ? 'group' : 'user',
              name: target,
            },
          }
        : {}),
      attributes: {
        ...attributes,
        op: f.op,
        exe: present(f.exe),
        hostname: present(f.hostname),
        terminal: present(f.terminal),
        pid: f.pid,
      },
    };
  }

  switch (main.type) {
    case 'USER_CMD':
      return {
        ...base,
        category: 'process',
        type: 'process.sudo.command',
        action: 'sudo',
        outcome: resOutcome(f),
        severity: 'low',
        actor: actorOf(f),
        resource: { kind: 'process', name: f.cmd },
        attributes: { ...attributes, cwd: f.cwd, terminal: present(f.terminal), exe: f.exe },
      };
    case 'CONFIG_CHANGE':
      return {
        ...base,
        category: 'configuration',
        type: 'audit.config.changed',
        action: 'configure',
        outcome: resOutcome(f),
        severity: 'medium',
        actor: actorOf(f),
        resource: { kind: 'service', name: 'auditd' },
        attributes: {
          ...attributes,
          op: f.op,
          key: present(f.key),
          list: f.list,
          audit_enabled: f.audit_enabled,
        },
      };
    case 'SERVICE_START':
    case 'SERVICE_STOP':
      return {
        ...base,
        category: 'system',
        type: main.type === 'SERVICE_START' ? 'system.service.started' : 'system.service.stopped',
        action: main.type === 'SERVICE_START' ? 'start' : 'stop',
        outcome: resOutcome(f),
        actor: actorOf(f),
        resource: { kind: 'service', name: f.unit },
        attributes,
      };
    case 'DAEMON_START':
    case 'DAEMON_END':
    case 'DAEMON_ABORT':
      return {
        ...base,
        category: 'system',
        type: `audit.daemon.${main.type.slice(7).toLowerCase()}`,
        action: main.type === 'DAEMON_START' ? 'start' : 'stop',
        outcome: resOutcome(f),
        severity: main.type === 'DAEMON_ABORT' ? 'high' : 'info',
        resource: { kind: 'service', name: 'auditd' },
        attributes: { ...attributes, op: f.op, ver: f.ver },
      };
  }

  const lower = main.type.toLowerCase();
  const anomaly = main.type.startsWith('ANOM_');
  const paths = (byType.get('PATH') ?? []).map((r) => r.fields.name).filter((n) => n !== undefined);
  return {
    ...base,
    category: main.type === 'AVC' || anomaly ? 'integrity' : paths.length > 0 ? 'file' : 'system',
    type: anomaly ? `audit.anomaly.${lower.slice(5)}` : `audit.${lower}`,
    action: syscall ? 'syscall' : lower,
    outcome: resOutcome(syscall ?? f),
    severity: anomaly ? 'high' : main.type === 'AVC' ? 'medium' : 'info',
    actor: actorOf(syscall ?? f),
    ...(paths.length > 0 ? { resource: { kind: 'file', name: paths[paths.length - 1] } } : {}),
    attributes: {
      ...attributes,
      ...(syscall
        ? { syscall: syscall.syscall, exe: syscall.exe, comm: syscall.comm, key: present(syscall.key) }
        : {}),
      ...(paths.length > 0 ? { paths } : {}),
    },
  };
}

export function linuxAuditParser(): Parser {
  let group: AuditRecord[] = [];
  let heldSince = 0;
  let lastCtx: LineContext | null = null;

  const emit = (): EventDraft[] => {
    if (group.length === 0) return [];
    const g = group;
    group = [];
    return [groupToDraft(g, lastCtx!)];
  };

  return {
    push(line, ctx) {
      const m = RECORD.exec(line);
      if (!m) {
        // Not an audit record: emit what is held first, to keep order, then the line itself.
        return [...emit(), logLine(line, ctx)];
      }
      const rec: AuditRecord = {
        node: m[1],
        type: m[2]!,
        ms: Number(m[3]) * 1000 + Number(m[4]!.padEnd(3, '0').slice(0, 3)),
        serial: m[5]!,
        fields: parseFields(m[6]!),
        offset: ctx.offset,
        line,
      };
      const out: EventDraft[] = [];
      if (group.length > 0 && (group[0]!.serial !== rec.serial || group[0]!.node !== rec.node))
        out.push(...emit());
      if (group.length === 0) heldSince = ctx.now.getTime();
      group.push(rec);
      lastCtx = ctx;
      if (rec.type === 'EOE') out.push(...emit());
      return out;
    },
    held() {
      return group.length > 0 ? group[0]!.offset : undefined;
    },
    flush(now, olderThanMs) {
      if (group.length === 0 || now.getTime() - heldSince < olderThanMs) return [];
      return emit();
    },
    mark() {
      return { group: group.slice(), heldSince, lastCtx };
    },
    rewind(m) {
      const s = m as { group: AuditRecord[]; heldSince: number; lastCtx: LineContext | null };
      group = s.group.slice();
      heldSince = s.heldSince;
      lastCtx = s.lastCtx;
    },
  };
}
