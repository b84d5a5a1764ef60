/**
 * The syslog exporter against a real rsyslog (imtcp, and imtcp with TLS from
 * certificates made here), plus a plain TCP server that breaks the connection
 * to prove the resend window. Without rsyslogd the rsyslog cases are skipped
 * on a developer machine and fail in CI (`CI` set): CI installs it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Exporter } from '../exporter.js';
import { conformance, makeEvent, metric, settingsFor, TestSpool, waitUntil } from '../testdata/kit.js';
import { syslogExporterConfigSchema } from './config.js';
import { cefValue, escapeParamValue } from './encode.js';
import { syslogExporter } from './exporter.js';

const RSYSLOGD = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd', '/usr/local/sbin/rsyslogd'].find(existsSync);
const GTLS = [
  '/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so',
  '/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so',
  '/usr/lib/rsyslog/lmnsd_gtls.so',
].some(existsSync);
const IN_CI = !!process.env.CI;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function config(port: number, extra: Record<string, unknown> = {}) {
  return syslogExporterConfigSchema.parse({
    type: 'syslog',
    name: 'siem',
    address: `127.0.0.1:${port}`,
    batch_timeout: 0,
    retry_initial_backoff: 20,
    retry_max_backoff: 200,
    ...extra,
  });
}

/** What the rsyslog template writes per message. */
interface Received {
  pri: string;
  host: string;
  app: string;
  msgid: string;
  sd: string;
  msg: string;
}

class Rsyslog {
  readonly dir = mkdtempSync(join(tmpdir(), 'sealtrail-rsyslog-'));
  readonly out = join(this.dir, 'out.log');
  port = 0;
  private child: ChildProcess | null = null;
  private stderr = '';

  constructor(private readonly tls?: { ca: string; cert: string; key: string }) {}

  async start(port?: number): Promise<void> {
    this.port = port ?? (await freePort());
    const tlsGlobal = this.tls
      ? ` defaultNetstreamDriverCAFile="${this.tls.ca}" defaultNetstreamDriverCertFile="${this.tls.cert}" defaultNetstreamDriverKeyFile="${this.tls.key}"`
      : '';
    const tlsModule = this.tls
      ? ' streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"'
      : '';
    const conf = join(this.dir, 'rsyslog.conf');
    writeFileSync(
      conf,
      `global(workDirectory="${this.dir}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off"${tlsGlobal})
module(load="imtcp"${tlsModule})
input(type="imtcp" port="${this.port}" address="127.0.0.1")
template(name="t" type="string" string="{\\"pri\\":\\"%pri%\\",\\"host\\":\\"%hostname:::json%\\",\\"app\\":\\"%app-name:::json%\\",\\"msgid\\":\\"%msgid:::json%\\",\\"sd\\":\\"%structured-data:::json%\\",\\"msg\\":\\"%msg:::json%\\"}\\n")
action(type="omfile" file="${this.out}" template="t" flushOnTXEnd="on")
`,
    );
    this.child = spawn(RSYSLOGD!, ['-n', '-f', conf, '-i', join(this.dir, 'rsyslogd.pid')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    await waitUntil(
      `rsyslogd listening on ${this.port}`,
      () =>
        new Promise<boolean>((resolve) => {
          if (this.child?.exitCode !== null) throw new Error(`rsyslogd exited: ${this.stderr}`);
          const s = connect(this.port, '127.0.0.1');
          s.once('connect', () => {
            s.destroy();
            resolve(true);
          });
          s.once('error', () => resolve(false));
        }),
      15_000,
    );
  }

  lines(): Received[] {
    if (!existsSync(this.out)) return [];
    const text = readFileSync(this.out, 'utf8');
    // Only whole lines: rsyslog may be half-way through writing the last one.
    return text
      .slice(0, text.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Received);
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Parses a CEF message: the seven header fields and the extension's key=value pairs, unescaped. */
function parseCef(msg: string): { header: string[]; ext: Record<string, string> } {
  expect(msg.startsWith('CEF:0|')).toBe(true);
  const header: string[] = [];
  let cur = '';
  let i = 4; // after "CEF:"
  while (header.length < 7) {
    const ch = msg[i++]!;
    if (ch === '\\') cur += msg[i++];
    else if (ch === '|') {
      header.push(cur);
      cur = '';
    } else cur += ch;
  }
  const rest = msg.slice(i);
  const ext: Record<string, string> = {};
  const keyAt = /(?:^| )([A-Za-z0-9]+)=/g;
  const starts: { key: string; at: number; valueAt: number }[] = [];
  for (let m = keyAt.exec(rest); m; m = keyAt.exec(rest)) {
    // a "key=" preceded by an escaping backslash is part of a value
    if (m.index > 0 && rest[m.index - 1] === '\\') continue;
    starts.push({ key: m[1]!, at: m.index, valueAt: m.index + m[0].length });
  }
  starts.forEach((s, k) => {
    const raw = rest.slice(s.valueAt, k + 1 < starts.length ? starts[k + 1]!.at : rest.length);
    ext[s.key] = raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
  });
  return { header, ext };
}

const MULTILINE = 'first line\nsecond line — ünïcødé ✓ 日本語 🔐\r\nthird = "quoted" | piped \\ back]slash';

describe('syslog exporter encoding', () => {
  it('escapes SD param values and CEF extension values', () => {
    expect(escapeParamValue('a"b\\c]d')).toBe('a\\"b\\\\c\\]d');
    expect(cefValue('a=b\\c\nd')).toBe('a\\=b\\\\c\\nd');
  });

  it('passes the conformance checks', async () => {
    await conformance((s) => syslogExporter.create(s, config(9)));
  });

  it('frames with the byte length (not characters) and re-sends the window after a broken connection', async () => {
    // conn 1 takes the first batch and is reset, as if the receiver died before reading it
    const conns: Buffer[] = [];
    const server: Server = createServer((sock) => {
      const n = conns.push(Buffer.alloc(0)) - 1;
      sock.on('data', (d) => {
        if (n === 0) {
          sock.resetAndDestroy();
          return;
        }
        conns[n] = Buffer.concat([conns[n]!, d]);
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const ts = await new TestSpool().open();
    const first = await ts.addMany(3, () => ({ message: MULTILINE }));
    const s = settingsFor(ts.spool);
    const exporter = syslogExporter.create(s, config(port));
    try {
      await exporter.start();
      await waitUntil('first batch written', async () => (await ts.cursor('syslog:siem')) === '2');
      await waitUntil('connection reset seen', () => conns.length === 1 && true);
      await new Promise((r) => setTimeout(r, 100));
      const second = await ts.addMany(2);
      const frames = () => {
        const out: string[] = [];
        const buf = conns[1] ?? Buffer.alloc(0);
        let at = 0;
        while (at < buf.length) {
          const sp = buf.indexOf(0x20, at);
          const len = Number(buf.toString('ascii', at, sp));
          if (sp + 1 + len > buf.length) break;
          out.push(buf.toString('utf8', sp + 1, sp + 1 + len));
          at = sp + 1 + len;
        }
        return out;
      };
      await waitUntil('all five on the second connection', () => frames().length >= 5);
      const ids = frames().map((f) => /id="([^"]+)"/.exec(f)![1]);
      for (const e of [...first, ...second]) expect(ids).toContain(e.id);
      const msg = frames().find((f) => f.includes(first[0]!.id))!;
      expect(msg).toMatch(
        /^<164>1 2026-11-23T10:00:00\.123Z web-1 sealtrail - auth\.login\.failure \[sealtrail@32473 /,
      );
      const json = JSON.parse(msg.slice(msg.indexOf('] {') + 2));
      expect(json.message).toBe(MULTILINE);
      expect(await metric(s.registry, 'sealtrail_exporter_events_sent_total', { exporter: 'siem' })).toBe(5);
    } finally {
      await exporter.stop();
      await ts.close();
      server.close();
    }
  });
});

describe.skipIf(!RSYSLOGD && !IN_CI)('syslog exporter against a real rsyslog', () => {
  let certs: { dir: string; ca: string; cert: string; key: string };
  beforeAll(async () => {
    if (!RSYSLOGD)
      throw new Error('rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls); CI needs it');
    const dir = mkdtempSync(join(tmpdir(), 'sealtrail-certs-'));
    const ca = await selfsigned.generate([{ name: 'commonName', value: 'Sealtrail Test CA' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      ],
    });
    const server = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      ca: { key: ca.private, cert: ca.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
          ],
        },
      ],
    });
    certs = { dir, ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server-key.pem') };
    writeFileSync(certs.ca, ca.cert);
    writeFileSync(certs.cert, server.cert);
    writeFileSync(certs.key, server.private, { mode: 0o600 });
  });
  afterAll(() => {
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  let ts: TestSpool | undefined;
  let rs: Rsyslog | undefined;
  let exporter: Exporter | undefined;
  afterEach(async () => {
    await exporter?.stop();
    await rs?.close();
    await ts?.close();
    exporter = undefined;
    rs = undefined;
    ts = undefined;
  });

  it('imtcp: every event arrives once as RFC 5424 with structured data, multi-line and non-ASCII intact', async () => {
    rs = new Rsyslog();
    await rs.start();
    ts = await new TestSpool().open();
    const events = await ts.addMany(300, (i) => ({
      message: i % 3 === 0 ? `${MULTILINE} #${i}` : `event ${i}`,
      severity: i % 2 === 0 ? 'critical' : 'info',
    }));
    exporter = syslogExporter.create(settingsFor(ts.spool), config(rs.port, { batch_max_records: 64 }));
    await exporter.start();
    await waitUntil('300 messages in rsyslog', () => rs!.lines().length >= 300, 20_000);
    await exporter.stop();
    await new Promise((r) => setTimeout(r, 200));
    const lines = rs.lines();
    expect(lines).toHaveLength(300);
    const byId = new Map(lines.map((l) => [JSON.parse(l.msg).id as string, l]));
    expect(byId.size).toBe(300);
    for (const [i, e] of events.entries()) {
      const l = byId.get(e.id)!;
      expect(l).toBeDefined();
      expect(JSON.parse(l.msg).message).toBe(e.message);
      expect(l.pri).toBe(String(20 * 8 + (i % 2 === 0 ? 2 : 6)));
      expect(l).toMatchObject({ host: 'web-1', app: 'sealtrail', msgid: 'auth.login.failure' });
      expect(l.sd).toContain(`[sealtrail@32473 id="${e.id}" agent_id="`);
      expect(l.sd).toContain(`seq="${i}"`);
    }
  });

  it.skipIf(!GTLS && !IN_CI)(
    'imtcp with TLS: CEF messages arrive parseable with their standard keys',
    async () => {
      rs = new Rsyslog({ ca: certs.ca, cert: certs.cert, key: certs.key });
      await rs.start();
      ts = await new TestSpool().open();
      const events = await ts.add([
        makeEvent({ message: MULTILINE }),
        makeEvent({
          category: 'file',
          type: 'file.modified',
          action: 'write',
          outcome: 'success',
          severity: 'high',
          actor: { user: 'root' },
          resource: { kind: 'file', name: '/etc/ssh/sshd_config' },
          message: 'mode=0600 → 0644',
        }),
      ]);
      exporter = syslogExporter.create(
        settingsFor(ts.spool),
        config(rs.port, { transport: 'tls', format: 'cef', tls: { ca_file: certs.ca } }),
      );
      await exporter.start();
      await waitUntil('2 messages in rsyslog', () => rs!.lines().length >= 2, 20_000);
      const cefs = rs.lines().map((l) => parseCef(l.msg));
      expect(cefs).toHaveLength(2);
      const [a, b] = cefs;
      expect(a!.header.slice(0, 3)).toEqual(['0', 'Sealtrail', 'Sealtrail']);
      expect(a!.header[4]).toBe('auth.login.failure');
      expect(a!.header[6]).toBe('5');
      expect(a!.ext).toMatchObject({
        rt: String(Date.parse(events[0]!.time)),
        src: '198.51.100.7',
        suser: 'alice',
        act: 'login',
        outcome: 'failure',
        externalId: events[0]!.id,
        dvchost: 'web-1',
        msg: MULTILINE,
        cs3Label: 'sealtrailSeq',
        cs3: '0',
      });
      expect(b!.header[6]).toBe('8');
      expect(b!.ext).toMatchObject({
        fname: 'sshd_config',
        filePath: '/etc/ssh/sshd_config',
        msg: 'mode=0600 → 0644',
      });
    },
  );

  it('LEEF 2.0 over imtcp; a restarted rsyslog loses nothing', async () => {
    rs = new Rsyslog();
    await rs.start();
    ts = await new TestSpool().open();
    const first = await ts.addMany(20);
    const s = settingsFor(ts.spool);
    exporter = syslogExporter.create(s, config(rs.port, { format: 'leef' }));
    await exporter.start();
    await waitUntil('20 messages', () => rs!.lines().length >= 20, 20_000);
    const leef = rs.lines()[0]!.msg;
    expect(leef).toMatch(/^LEEF:2\.0\|Sealtrail\|Sealtrail\|[^|]+\|auth\.login\.failure\|x09\|/);
    const attrs = Object.fromEntries(
      leef
        .split('|')
        .slice(6)
        .join('|')
        .split('\t')
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    expect(attrs).toMatchObject({ usrName: 'alice', src: '198.51.100.7', sev: '5', cat: 'authentication' });
    const port = rs.port;
    await rs.stop();
    const second = await ts.addMany(20);
    await new Promise((r) => setTimeout(r, 300));
    await rs.start(port);
    await waitUntil(
      'all 40 ids',
      () => {
        const ids = new Set(rs!.lines().map((l) => /eventId=([^\t]+)/.exec(l.msg)?.[1]));
        return [...first, ...second].every((e) => ids.has(e.id));
      },
      30_000,
    );
    await waitUntil(
      'no lag',
      async () => (await metric(s.registry, 'sealtrail_exporter_lag_records', { exporter: 'siem' })) === 0,
    );
    expect(await ts.cursor('syslog:siem')).toBe('39');
  });
});
