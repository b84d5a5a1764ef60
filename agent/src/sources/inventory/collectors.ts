/**
 * Table collectors for `inventory`: each returns the table's rows keyed by a stable
 * identity, or null when the table cannot be read on this host (no package manager).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import si from 'systeminformation';
import type { InventoryTable } from './config.js';

export type Row = Record<string, string | number | boolean | null>;
export type Rows = Map<string, Row>;
export type Collector = () => Promise<Rows | null>;

export interface CollectorOptions {
  passwdFile?: string;
  groupFile?: string;
}

function run(cmd: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout) => {
      if (err) resolve(null);
      else resolve(stdout);
    });
  });
}

export async function users(opts: CollectorOptions = {}): Promise<Rows> {
  const rows: Rows = new Map();
  const passwd = await readFile(opts.passwdFile ?? '/etc/passwd', 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , uid, gid, gecos, home, shell] = line.split(':');
    if (!name) continue;
    rows.set(`user:${name}`, {
      kind: 'user',
      name,
      uid: Number(uid),
      gid: Number(gid),
      gecos: gecos ?? '',
      home: home ?? '',
      shell: shell ?? '',
    });
  }
  const group = await readFile(opts.groupFile ?? '/etc/group', 'utf8').catch(() => '');
  for (const line of group.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , gid, members] = line.split(':');
    if (!name) continue;
    rows.set(`group:${name}`, {
      kind: 'group',
      name,
      gid: Number(gid),
      members: (members ?? '').split(',').filter(Boolean).sort().join(','),
    });
  }
  return rows;
}

export async function logins(): Promise<Rows> {
  const rows: Rows = new Map();
  for (const u of await si.users()) {
    rows.set(`${u.user}@${u.tty}@${u.date} ${u.time}`, {
      user: u.user,
      tty: u.tty,
      since: `${u.date} ${u.time}`.trim(),
      ip: u.ip || null,
      command: u.command || null,
    });
  }
  return rows;
}

export async function processes(): Promise<Rows> {
  const rows: Rows = new Map();
  const { list } = await si.processes();
  for (const p of list) {
    rows.set(`${p.pid}:${p.name}`, {
      pid: p.pid,
      ppid: p.parentPid,
      name: p.name,
      user: p.user || null,
      command: `${p.command} ${p.params}`.trim().slice(0, 1000),
      path: p.path || null,
      started: p.started || null,
    });
  }
  return rows;
}

export async function listeningPorts(): Promise<Rows> {
  const rows: Rows = new Map();
  for (const c of await si.networkConnections()) {
    const udp = c.protocol.startsWith('udp');
    if (!udp && c.state !== 'LISTEN') continue;
    if (udp && c.peerAddress && !['*', '0.0.0.0', '::', ''].includes(c.peerAddress)) continue;
    const port = Number(c.localPort);
    if (!Number.isFinite(port)) continue;
    rows.set(`${c.protocol}:${c.localAddress}:${port}`, {
      protocol: c.protocol,
      address: c.localAddress,
      port,
      pid: c.pid ?? null,
      process: c.process || null,
    });
  }
  return rows;
}

export async function packages(): Promise<Rows | null> {
  const rows: Rows = new Map();
  // dpkg-query's own ${field} syntax, not a template literal.
  const format = ['db:Status-Abbrev', 'Package', 'Version', 'Architecture']
    .map((f) => `\${${f}}`)
    .join('\\t');
  const dpkg = await run('dpkg-query', ['-W', '-f', `${format}\\n`]);
  if (dpkg !== null) {
    for (const line of dpkg.split('\n')) {
      const [status, name, version, arch] = line.split('\t');
      if (!name || !status?.startsWith('ii')) continue;
      rows.set(`${name}:${arch}`, { name, version: version ?? '', arch: arch ?? '', manager: 'dpkg' });
    }
    return rows;
  }
  const rpm = await run('rpm', ['-qa', '--qf', '%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n']);
  if (rpm !== null) {
    for (const line of rpm.split('\n')) {
      const [name, version, arch] = line.split('\t');
      if (!name) continue;
      rows.set(`${name}:${arch}`, { name, version: version ?? '', arch: arch ?? '', manager: 'rpm' });
    }
    return rows;
  }
  return null;
}

export async function os(): Promise<Rows> {
  const o = await si.osInfo();
  return new Map([
    [
      'os',
      {
        platform: o.platform,
        distro: o.distro,
        release: o.release,
        codename: o.codename,
        kernel: o.kernel,
        arch: o.arch,
        hostname: o.hostname,
      },
    ],
  ]);
}

export function defaultCollectors(opts: CollectorOptions = {}): Record<InventoryTable, Collector> {
  return {
    users: () => users(opts),
    logins,
    processes,
    listening_ports: listeningPorts,
    packages,
    os,
  };
}
