/**
 * What this Linux machine can check of the other platforms, and the sample configs:
 * - linux-arm64, darwin-x64 and win32-x64 bundles laid out (`--stage-only`): the runtime is a
 *   binary for that OS and CPU, classic-level keeps that platform's prebuild only, launchers and
 *   service definitions are in place;
 * - the launchd plists and WinSW service definitions are well-formed and point into the bundle;
 *   install.ps1 is ASCII with balanced brackets and names only files the bundle has (PowerShell
 *   itself is not run here: see docs/install.md);
 * - every sample config passes `check-config` of the current schema, uses TLS (no
 *   `insecure: true`) and says how to enroll, and the Linux ones keep their writes inside the
 *   unit's ReadWritePaths.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BIN, COLLECTOR_BIN, runCli } from '../e2e/harness.js';
import { INSTALLERS, needTools, ok, packageBundles, VERSION } from './helpers.js';

const STAGED = ['linux-arm64', 'darwin-x64', 'win32-x64'] as const;
let out: string;
const staged = (p: string) => join(out, 'stage', `sealtrail-${VERSION}-${p}`);

beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'sealtrail-stage-'));
  packageBundles([...STAGED.flatMap((p) => ['--platform', p]), '--stage-only', '--out', out]);
}, 300_000);

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

function head(file: string, n = 64): Buffer {
  return readFileSync(file).subarray(0, n);
}

function prebuilds(p: string): string[] {
  const dir = join(staged(p), 'lib/node_modules/classic-level/prebuilds');
  return readdirSync(dir).flatMap((d) => readdirSync(join(dir, d)).map((f) => `${d}/${f}`));
}

describe('bundles for other platforms (staged, not archived)', () => {
  it('linux-arm64: an aarch64 ELF runtime and the armv8 prebuild', () => {
    const elf = head(join(staged('linux-arm64'), 'runtime/bin/node'));
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf.readUInt16LE(18)).toBe(183); // EM_AARCH64
    expect(prebuilds('linux-arm64')).toEqual(['linux-arm64/classic-level.armv8.node']);
    expect(existsSync(join(staged('linux-arm64'), 'install.sh'))).toBe(true);
    expect(existsSync(join(staged('linux-arm64'), 'share/systemd/sealtrail-agent.service'))).toBe(true);
  });

  it('darwin-x64: an x86-64 Mach-O runtime, the universal prebuild, launchd plists', () => {
    const macho = head(join(staged('darwin-x64'), 'runtime/bin/node'));
    expect(macho.readUInt32LE(0)).toBe(0xfeedfacf); // MH_MAGIC_64
    expect(macho.readUInt32LE(4)).toBe(0x01000007); // CPU_TYPE_X86_64
    expect(prebuilds('darwin-x64')).toEqual(['darwin-x64+arm64/classic-level.node']);
    for (const c of ['agent', 'collector']) {
      expect(existsSync(join(staged('darwin-x64'), `share/launchd/com.sealtrail.${c}.plist`))).toBe(true);
      expect(existsSync(join(staged('darwin-x64'), `bin/sealtrail-${c}`))).toBe(true);
    }
    expect(existsSync(join(staged('darwin-x64'), 'install.sh'))).toBe(true);
  });

  it('win32-x64: an x86-64 PE runtime, the win32 prebuild, .cmd launchers and WinSW wrappers', () => {
    const root = staged('win32-x64');
    const pe = readFileSync(join(root, 'runtime/node.exe'));
    expect(pe.subarray(0, 2).toString('latin1')).toBe('MZ');
    const peOffset = pe.readUInt32LE(0x3c);
    expect(pe.subarray(peOffset, peOffset + 4).toString('latin1')).toBe('PE\0\0');
    expect(pe.readUInt16LE(peOffset + 4)).toBe(0x8664); // IMAGE_FILE_MACHINE_AMD64
    expect(prebuilds('win32-x64')).toEqual(['win32-x64/classic-level.node']);
    for (const c of ['agent', 'collector']) {
      const cmd = readFileSync(join(root, `bin/sealtrail-${c}.cmd`), 'latin1');
      expect(cmd).toMatch(/\r\n/);
      expect(cmd).not.toMatch(/[^\r]\n/);
      expect(head(join(root, `bin/sealtrail-${c}-service.exe`), 2).toString('latin1')).toBe('MZ');
      expect(existsSync(join(root, `bin/sealtrail-${c}-service.exe.config`))).toBe(true);
      expect(existsSync(join(root, `bin/sealtrail-${c}-service.xml`))).toBe(true);
    }
    expect(existsSync(join(root, 'install.ps1'))).toBe(true);
    expect(existsSync(join(root, 'install.sh'))).toBe(false);
  });
});

describe('macOS launchd plists', () => {
  const xpath = (file: string, key: string) =>
    ok('xmllint', [
      '--xpath',
      `string(/plist/dict/key[.='${key}']/following-sibling::*[1])`,
      file,
    ]).stdout.trim();
  const xpathList = (file: string, key: string) =>
    ok('xmllint', ['--xpath', `/plist/dict/key[.='${key}']/following-sibling::*[1]/string/text()`, file])
      .stdout.trim()
      .split('\n');

  it('are well-formed and run the bundle with the config, restarting on failure', ({ skip }) => {
    needTools(skip, 'xmllint');
    for (const c of ['agent', 'collector']) {
      const file = join(INSTALLERS, `macos/com.sealtrail.${c}.plist`);
      ok('xmllint', ['--noout', file]);
      expect(xpath(file, 'Label')).toBe(`com.sealtrail.${c}`);
      expect(xpathList(file, 'ProgramArguments')).toEqual([
        `/opt/sealtrail/bin/sealtrail-${c}`,
        'run',
        '--config',
        `/etc/sealtrail/${c}.yaml`,
      ]);
      expect(xpath(file, 'WorkingDirectory')).toBe(`/var/lib/sealtrail/${c}`);
      const keepAlive = ok('xmllint', [
        '--xpath',
        "name(/plist/dict/key[.='KeepAlive']/following-sibling::dict[1]/key[.='SuccessfulExit']/following-sibling::*[1])",
        file,
      ]).stdout.trim();
      expect(keepAlive).toBe('false');
      expect(xpath(file, 'Umask')).toBe('63'); // 077
      expect(xpath(file, 'UserName')).toBe(c === 'collector' ? '_sealtrail' : '');
    }
  });
});

describe('Windows service definitions and install.ps1', () => {
  it('WinSW definitions are well-formed and point at files the win32 bundle has', ({ skip }) => {
    needTools(skip, 'xmllint');
    for (const c of ['agent', 'collector']) {
      const file = join(INSTALLERS, `windows/sealtrail-${c}-service.xml`);
      ok('xmllint', ['--noout', file]);
      const get = (x: string) => ok('xmllint', ['--xpath', `string(/service/${x})`, file]).stdout.trim();
      expect(get('id')).toBe(`sealtrail-${c}`);
      expect(get('startmode')).toBe('Automatic');
      expect(get('onfailure/@action')).toBe('restart');
      // %BASE% is the wrapper's directory, bin\ of the bundle.
      const inBundle = (winPath: string) =>
        join(staged('win32-x64'), 'bin', ...winPath.replace('%BASE%\\', '').split('\\'));
      expect(existsSync(inBundle(get('executable')))).toBe(true);
      // Node flags, then the script: the agent runs with a capped young generation, as in launcher.sh.
      const [, flags, script] = /^((?:--\S+\s+)*)"([^"]+)"/.exec(get('arguments'))!;
      expect(flags!.trim()).toBe(c === 'agent' ? '--max-semi-space-size=8' : '');
      expect(existsSync(inBundle(script!)), script).toBe(true);
      expect(get('arguments')).toContain(`--config "%ProgramData%\\Sealtrail\\${c}.yaml"`);
    }
  });

  it('install.ps1: ASCII, strict, admin-only, balanced, and names only files the bundle has', () => {
    const text = readFileSync(join(INSTALLERS, 'windows/install.ps1'), 'utf8');
    // PowerShell 5.1 reads a BOM-less script as the ANSI code page: keep it ASCII.
    const nonAscii = [...text].filter((ch) => {
      const code = ch.charCodeAt(0);
      return code > 0x7e || (code < 0x20 && ch !== '\t' && ch !== '\n' && ch !== '\r');
    });
    expect(nonAscii).toEqual([]);
    expect(text).toMatch(/^#Requires -RunAsAdministrator$/m);
    expect(text).toMatch(/^Set-StrictMode -Version Latest$/m);
    expect(text).toMatch(/^\$ErrorActionPreference = 'Stop'$/m);

    // Brackets balance once comments and string literals are taken out.
    // (Comments first: this script has no '#' inside a string, but has apostrophes in comments.)
    const code = text
      .replace(/<#[\s\S]*?#>/g, '')
      .replace(/(^|\s)#.*$/gm, '$1')
      .replace(/'[^']*'/g, "''")
      .replace(/"(?:`.|[^"`])*"/g, '""');
    const stack: string[] = [];
    const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
    for (const ch of code) {
      if ('([{'.includes(ch)) stack.push(ch);
      else if (ch in pairs) expect(stack.pop(), `unbalanced ${ch}`).toBe(pairs[ch]);
    }
    expect(stack).toEqual([]);

    // Every bundle path it builds exists, for both components.
    const root = staged('win32-x64');
    const paths = [...text.matchAll(/["']((?:bin|lib|runtime|share)\\[^"']+)["']/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(3);
    for (const p of paths) {
      for (const c of ['agent', 'collector']) {
        const rel = p.replace(/\$Name/g, c);
        expect(existsSync(join(root, ...rel.split('\\'))), rel).toBe(true);
      }
    }
    for (const part of ['BUILD.json', 'bin', 'runtime', 'lib', 'share']) {
      expect(text).toContain(`'${part}'`);
      expect(existsSync(join(root, part))).toBe(true);
    }
  });
});

describe('sample configs', () => {
  const samples = [
    ['agent', join(INSTALLERS, 'config/agent.yaml')],
    ['collector', join(INSTALLERS, 'config/collector.yaml')],
    ['agent', join(INSTALLERS, 'windows/agent.yaml')],
    ['collector', join(INSTALLERS, 'windows/collector.yaml')],
  ] as const;

  it.each(samples)('%s: %s passes check-config', async (c, file) => {
    const r = await runCli(c === 'agent' ? AGENT_BIN : COLLECTOR_BIN, ['check-config', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/valid/);
  });

  it.each(samples)('%s: %s uses TLS and says how to enroll', (c, file) => {
    const text = readFileSync(file, 'utf8');
    // insecure: true appears in comments only (loopback development), never as a setting.
    expect(text).not.toMatch(/^\s*insecure:/m);
    expect(text).toMatch(/loopback/);
    expect(text).toMatch(c === 'agent' ? /sealtrail-agent(\.cmd)? enroll/ : /token create/);
  });

  it('the Linux samples write only where their units allow', () => {
    const agent = readFileSync(join(INSTALLERS, 'config/agent.yaml'), 'utf8');
    const collector = readFileSync(join(INSTALLERS, 'config/collector.yaml'), 'utf8');
    expect(agent).toMatch(/^ {2}data_dir: \/var\/lib\/sealtrail\/agent\b/m);
    expect(collector).toMatch(/^ {2}data_dir: \/var\/lib\/sealtrail\/collector\b/m);
    expect(collector).toMatch(/^ {4}path: \/var\/lib\/sealtrail\/collector\//m);
    const agentUnit = readFileSync(join(INSTALLERS, 'linux/sealtrail-agent.service'), 'utf8');
    const collectorUnit = readFileSync(join(INSTALLERS, 'linux/sealtrail-collector.service'), 'utf8');
    expect(agentUnit).toMatch(/^ReadWritePaths=\/var\/lib\/sealtrail\/agent$/m);
    expect(collectorUnit).toMatch(/^ReadWritePaths=\/var\/lib\/sealtrail\/collector$/m);
  });
});
