/**
 * `linux_auth`: /var/log/auth.log and /var/log/secure — sshd logins (password,
 * publickey, keyboard-interactive), invalid users, disconnects, PAM sessions and
 * authentication failures, sudo commands and refusals, su, useradd/userdel/usermod,
 * groupadd/groupdel and password changes. A line it does not recognise is a `log.line`
 * (with the syslog header's program, pid and time when there is one).
 */
import type { EventDraft } from '../../common/emit.js';
import { type LineContext, lineParser, logLine, type Parser } from './parser.js';
import { keyValues, parseSyslog, type SyslogLine } from './syslog.js';

type Draft = Omit<EventDraft, 'time'>;
type Rule = (msg: string, s: SyslogLine) => Draft | null;

const SSHD = new Set(['sshd', 'sshd-session', 'sshd-auth']);

function ip(v: string | undefined): string | undefined {
  return v && v !== '?' && v !== 'UNKNOWN' ? v : undefined;
}

const sshRules: Rule[] = [
  (msg) => {
    const m = /^Accepted (\S+) for (\S+) from (\S+) port (\d+)(?: (\S+))?(?::\s*(.*))?$/.exec(msg);
    if (!m) return null;
    return {
      category: 'authentication',
      type: 'auth.login.success',
      action: 'login',
      outcome: 'success',
      actor: { user: m[2], ip: m[3] },
      resource: { kind: 'service', name: 'sshd' },
      attributes: { method: m[1], port: Number(m[4]), ...(m[6] ? { key: m[6] } : {}) },
    };
  },
  (msg) => {
    const m = /^Failed (\S+) for (invalid user )?(\S*) from (\S+) port (\d+)/.exec(msg);
    if (!m) return null;
    return {
      category: 'authentication',
      type: 'auth.login.failure',
      action: 'login',
      outcome: 'failure',
      severity: 'low',
      actor: { user: m[3], ip: m[4] },
      resource: { kind: 'service', name: 'sshd' },
      attributes: { method: m[1], port: Number(m[5]), invalid_user: m[2] !== undefined },
    };
  },
  (msg) => {
    const m = /^Invalid user (\S*) from (\S+)(?: port (\d+))?/.exec(msg);
    if (!m) return null;
    return {
      category: 'authentication',
      type: 'auth.user.invalid',
      action: 'login',
      outcome: 'failure',
      severity: 'low',
      actor: { user: m[1], ip: m[2] },
      resource: { kind: 'service', name: 'sshd' },
      attributes: m[3] ? { port: Number(m[3]) } : {},
    };
  },
  (msg) => {
    const m =
      /^(?:error: )?maximum authentication attempts exceeded for (invalid user )?(\S+) from (\S+) port (\d+)/.exec(
        msg,
      );
    if (!m) return null;
    return {
      category: 'authentication',
      type: 'auth.login.attempts_exceeded',
      action: 'login',
      outcome: 'failure',
      severity: 'medium',
      actor: { user: m[2], ip: m[3] },
      resource: { kind: 'service', name: 'sshd' },
      attributes: { port: Number(m[4]), invalid_user: m[1] !== undefined },
    };
  },
  (msg) => {
    const m =
      /^Disconnected from (?:(invalid |authenticating )?user (\S+) )?(\S+) port (\d+)( \[preauth\])?/.exec(
        msg,
      );
    if (!m) return null;
    return {
      category: 'authentication',
      type: 'auth.session.disconnected',
      action: 'disconnect',
      outcome: 'success',
      actor: { user: m[2], ip: m[3] },
      resource: { kind: 'service', name: 'sshd' },
      attributes: {
        port: Number(m[4]),
        preauth: m[5] !== undefined,
        ...(m[1] ? { user_state: m[1].trim() } : {}),
      },
    };
  },
  (msg) => {
    const m = /^Received disconnect from (\S+) port (\d+):(\d+): ?(.*?)( \[preauth\])?$/.exec(msg);
    if (!m) return null;
    return {
      category: 'authentication',
      type: 'auth.session.disconnected',
      action: 'disconnect',
      outcome: 'success',
      actor: { ip: m[1] },
      resource: { kind: 'service', name: 'sshd' },
      attributes: {
        port: Number(m[2]),
        reason_code: Number(m[3]),
        reason: m[4],
        preauth: m[5] !== undefined,
      },
    };
  },
  (msg) => {
    const m =
      /^Connection (?:closed|reset) by (?:(invalid |authenticating )?user (\S+) )?(\S+) port (\d+)( \[preauth\])?/.exec(
        msg,
      );
    if (!m) return null;
    return {
      category: 'authentication',
      type: 'auth.connection.closed',
      action: 'disconnect',
      outcome: m[1] || m[5] ? 'failure' : 'unknown',
      actor: { user: m[2], ip: m[3] },
      resource: { kind: 'service', name: 'sshd' },
      attributes: { port: Number(m[4]), preauth: m[5] !== undefined },
    };
  },
];

function user(v: string | undefined): string | undefined {
  return v?.replace(/\(uid=\d+\)$/, '') || undefined;
}

const pamRules: Rule[] = [
  (msg) => {
    const m =
      /^pam_unix\(([^:]+):session\): session (opened|closed) for user (\S+?)(?:\(uid=(\d+)\))?(?: by (\S*?)(?:\(uid=(\d+)\))?)?$/.exec(
        msg,
      );
    if (!m) return null;
    const opened = m[2] === 'opened';
    return {
      category: 'authentication',
      type: opened ? 'auth.session.opened' : 'auth.session.closed',
      action: opened ? 'session_open' : 'session_close',
      outcome: 'success',
      actor: { user: user(m[5]) ?? m[3], uid: m[6] ?? m[4] },
      resource: { kind: 'user', name: m[3], id: m[4] },
      attributes: { service: m[1], target_user: m[3] },
    };
  },
  (msg) => {
    const m =
      /^pam_unix\(([^:]+):auth\): (authentication failure|check pass; user unknown|conversation failed|auth could not identify password for \[(\S+)\]);?\s*(.*)$/.exec(
        msg,
      );
    if (!m) return null;
    const kv = keyValues(m[4] ?? '');
    return {
      category: 'authentication',
      type: 'auth.authentication.failure',
      action: 'authenticate',
      outcome: 'failure',
      severity: 'low',
      actor: { user: kv.ruser || kv.logname || kv.user || m[3], uid: kv.uid, ip: ip(kv.rhost) },
      resource: { kind: 'service', name: m[1] },
      attributes: {
        service: m[1],
        reason: m[2],
        ...(kv.user ? { target_user: kv.user } : {}),
        ...(kv.tty ? { tty: kv.tty } : {}),
      },
    };
  },
  (msg) => {
    const m = /^pam_unix\(([^:]+):chauthtok\): password changed for (\S+)/.exec(msg);
    if (!m) return null;
    return {
      category: 'account',
      type: 'account.password.changed',
      action: 'change_password',
      outcome: 'success',
      severity: 'low',
      resource: { kind: 'user', name: m[2] },
      attributes: { service: m[1] },
    };
  },
];

const sudoRule: Rule = (msg, s) => {
  if (s.program !== 'sudo') return null;
  const m =
    /^\s*(\S+) : (?:(.*?) ; )?TTY=(\S+) ; PWD=(.*?) ; USER=(\S+) ;(?: GROUP=(\S+) ;)?(?: TSID=\S+ ;)?(?: ENV=.*? ;)? COMMAND=(.*)$/.exec(
      msg,
    );
  if (!m) return null;
  const failed = m[2] !== undefined;
  return {
    category: 'process',
    type: failed ? 'process.sudo.failure' : 'process.sudo.command',
    action: 'sudo',
    outcome: failed ? 'failure' : 'success',
    severity: failed ? (/not in sudoers/i.test(m[2]!) ? 'high' : 'medium') : 'low',
    actor: { user: m[1] },
    resource: { kind: 'process', name: m[7] },
    attributes: {
      target_user: m[5],
      tty: m[3],
      cwd: m[4],
      ...(m[6] ? { target_group: m[6] } : {}),
      ...(failed ? { reason: m[2] } : {}),
    },
  };
};

const suRules: Rule[] = [
  (msg, s) => {
    if (s.program !== 'su') return null;
    const m =
      /^(FAILED SU|FAILED su for \S+|Successful su for \S+ by \S+|\+ \S+ \S+:\S+|)\s*\(to (\S+)\) (\S+) on (\S+)$/.exec(
        msg,
      );
    if (!m) return null;
    const failed = m[1]!.startsWith('FAILED');
    return {
      category: 'authentication',
      type: failed ? 'auth.su.failure' : 'auth.su.success',
      action: 'su',
      outcome: failed ? 'failure' : 'success',
      severity: failed ? 'medium' : 'low',
      actor: { user: m[3] },
      resource: { kind: 'user', name: m[2] },
      attributes: { target_user: m[2], tty: m[4] },
    };
  },
];

const accountRules: Rule[] = [
  (msg) => {
    const m =
      /^new user: name=([^,]+), UID=(\d+), GID=(\d+), home=([^,]+), shell=([^,]+)(?:, from=(\S+))?/.exec(msg);
    if (!m) return null;
    return {
      category: 'account',
      type: 'account.user.created',
      action: 'create',
      outcome: 'success',
      severity: 'medium',
      resource: { kind: 'user', name: m[1], id: m[2] },
      attributes: {
        uid: Number(m[2]),
        gid: Number(m[3]),
        home: m[4],
        shell: m[5],
        ...(m[6] ? { from: m[6] } : {}),
      },
    };
  },
  (msg) => {
    const m = /^(?:new group|group added to \/etc\/group): name=([^,]+)(?:, GID=(\d+))?/.exec(msg);
    if (!m) return null;
    return {
      category: 'account',
      type: 'account.group.created',
      action: 'create',
      outcome: 'success',
      severity: 'low',
      resource: { kind: 'group', name: m[1], id: m[2] },
      attributes: m[2] ? { gid: Number(m[2]) } : {},
    };
  },
  (msg) => {
    const m = /^delete user '([^']+)'/.exec(msg);
    if (!m) return null;
    return {
      category: 'account',
      type: 'account.user.deleted',
      action: 'delete',
      outcome: 'success',
      severity: 'medium',
      resource: { kind: 'user', name: m[1] },
    };
  },
  (msg) => {
    const m =
      /^(?:removed group '([^']+)'|group '([^']+)' removed)(?: owned by '([^']+)')?(?: from \/etc\/group)?$/.exec(
        msg,
      );
    if (!m) return null;
    return {
      category: 'account',
      type: 'account.group.deleted',
      action: 'delete',
      outcome: 'success',
      severity: 'low',
      resource: { kind: 'group', name: m[1] ?? m[2] },
    };
  },
  (msg) => {
    const m = /^add '([^']+)' to (shadow )?group '([^']+)'/.exec(msg);
    if (!m) return null;
    return {
      category: 'account',
      type: 'account.group.member_added',
      action: 'modify',
      outcome: 'success',
      severity: m[3] === 'sudo' || m[3] === 'wheel' || m[3] === 'root' ? 'high' : 'medium',
      resource: { kind: 'user', name: m[1] },
      attributes: { group: m[3], shadow: m[2] !== undefined },
    };
  },
  (msg) => {
    const m =
      /^(change user '([^']+)' .*|(lock|unlock) user '([^']+)' password|change user name '([^']+)' to '([^']+)')$/.exec(
        msg,
      );
    if (!m) return null;
    return {
      category: 'account',
      type: m[3] ? `account.user.${m[3]}ed` : 'account.user.modified',
      action: 'modify',
      outcome: 'success',
      severity: 'medium',
      resource: { kind: 'user', name: m[2] ?? m[4] ?? m[5] },
      attributes: { change: m[1] },
    };
  },
  (msg) => {
    const m = /^password for '([^']+)' changed by '([^']+)'/.exec(msg);
    if (!m) return null;
    return {
      category: 'account',
      type: 'account.password.changed',
      action: 'change_password',
      outcome: 'success',
      severity: 'low',
      actor: { user: m[2] },
      resource: { kind: 'user', name: m[1] },
    };
  },
];

const rules: Rule[] = [sudoRule, ...suRules, ...pamRules, ...accountRules];

export function parseAuthMessage(msg: string, s: SyslogLine): Draft | null {
  if (SSHD.has(s.program)) {
    for (const r of sshRules) {
      const d = r(msg, s);
      if (d) return d;
    }
  }
  for (const r of rules) {
    const d = r(msg, s);
    if (d) return d;
  }
  return null;
}

function clean(d: Draft): Draft {
  if (d.actor) for (const k of Object.keys(d.actor)) if (d.actor[k] === undefined) delete d.actor[k];
  return d;
}

export function parseAuthLine(line: string, ctx: LineContext): EventDraft {
  const s = parseSyslog(line, ctx.now);
  if (!s) return logLine(line, ctx);
  const d = parseAuthMessage(s.message, s) as EventDraft | null;
  if (!d) {
    const e = logLine(line, ctx, origin(s));
    if (s.time) e.time = s.time;
    return e;
  }
  // The rules return fresh drafts: completed in place rather than copied.
  clean(d);
  d.time = s.time;
  d.message = line;
  const a = d.attributes ?? {};
  d.attributes = a;
  a.program = s.program;
  if (s.pid) a.pid = Number(s.pid);
  a.hostname = s.host;
  a.file = ctx.path;
  return d;
}

function origin(s: SyslogLine): Record<string, unknown> {
  return { program: s.program, ...(s.pid ? { pid: Number(s.pid) } : {}), hostname: s.host };
}

export function linuxAuthParser(): Parser {
  return lineParser(parseAuthLine);
}
