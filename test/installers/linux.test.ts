/**
 * Linux service files without a bundle: shellcheck on every shell script, and the systemd
 * units through `systemd-analyze verify` and `systemd-analyze security` (offline, in a
 * throwaway root whose ExecStart targets are stubs; package.test.ts repeats the verify
 * against the real bundle installed by the .deb).
 */
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { INSTALLERS, needTools, ROOT, run, shellScripts } from './helpers.js';

const COMPONENTS = ['agent', 'collector'] as const;
/** Highest accepted `systemd-analyze security` exposure (0 = fully locked down, 10 = unprotected). */
const MAX_EXPOSURE = { agent: 2.0, collector: 1.5 };

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A root holding the units, stub executables at their ExecStart paths, and systemd's own units. */
function unitRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'sealtrail-units-'));
  roots.push(root);
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  mkdirSync(join(root, 'opt/sealtrail/bin'), { recursive: true });
  mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
  for (const c of COMPONENTS) {
    copyFileSync(
      join(INSTALLERS, `linux/sealtrail-${c}.service`),
      join(root, `etc/systemd/system/sealtrail-${c}.service`),
    );
    writeFileSync(join(root, `opt/sealtrail/bin/sealtrail-${c}`), '#!/bin/sh\n');
    chmodSync(join(root, `opt/sealtrail/bin/sealtrail-${c}`), 0o755);
  }
  // The collector's ExecReload runs /bin/sh.
  mkdirSync(join(root, 'bin'));
  writeFileSync(join(root, 'bin/sh'), '');
  chmodSync(join(root, 'bin/sh'), 0o755);
  return root;
}

/** The overall exposure from `systemd-analyze security --offline`, printed for the record. */
function exposure(root: string, unit: string): number {
  const r = run('systemd-analyze', ['security', '--offline=yes', `--root=${root}`, '--no-pager', unit]);
  const m = /Overall exposure level for \S+: ([0-9.]+)/.exec(r.stdout);
  if (!m) throw new Error(`no exposure level in:\n${r.stdout}\n${r.stderr}`);
  const failed = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('✗'))
    .map(
      (l) =>
        l
          .slice(2)
          .trim()
          .split(/\s{2,}/)[0],
    );
  console.log(`systemd-analyze security ${unit}: exposure ${m[1]}; not set: ${failed.join(', ')}`);
  return Number(m[1]);
}

describe('shell scripts', () => {
  it('pass shellcheck, every one of them', ({ skip }) => {
    needTools(skip, 'shellcheck');
    const scripts = shellScripts();
    const rel = scripts.map((s) => relative(ROOT, s));
    // The ones this directory owns must be among them (maintainer scripts have no extension).
    for (const s of [
      'installers/linux/install.sh',
      'installers/macos/install.sh',
      'installers/bundle/launcher.sh',
      'installers/linux/deb/service.postinst',
      'installers/linux/deb/service.prerm',
      'installers/linux/deb/service.postrm',
      'installers/linux/deb/sealtrail.postinst',
    ]) {
      expect(rel).toContain(s);
    }
    const r = run('shellcheck', ['--severity=style', '--format=gcc', ...scripts]);
    expect(r.stdout + r.stderr, `shellcheck on ${rel.join(' ')}`).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('systemd units', () => {
  it('pass systemd-analyze verify with no complaint', ({ skip }) => {
    needTools(skip, 'systemd-analyze');
    const root = unitRoot();
    const r = run('systemd-analyze', [
      'verify',
      '--man=no',
      `--root=${root}`,
      ...COMPONENTS.map((c) => `sealtrail-${c}.service`),
    ]);
    expect(r.stderr + r.stdout).toBe('');
    expect(r.code).toBe(0);
  });

  it('would fail verify on a broken unit (the check has teeth)', ({ skip }) => {
    needTools(skip, 'systemd-analyze');
    const root = unitRoot();
    const unit = join(root, 'etc/systemd/system/sealtrail-agent.service');
    writeFileSync(
      unit,
      readFileSync(unit, 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict\nNoSuchKey=1'),
    );
    const r = run('systemd-analyze', ['verify', '--man=no', `--root=${root}`, 'sealtrail-agent.service']);
    expect(r.stderr).toMatch(/Unknown key/);
  });

  it('keep the exposure score low (printed)', ({ skip }) => {
    needTools(skip, 'systemd-analyze');
    const root = unitRoot();
    for (const c of COMPONENTS) {
      expect(exposure(root, `sealtrail-${c}.service`)).toBeLessThanOrEqual(MAX_EXPOSURE[c]);
    }
  });

  it('run as the sealtrail user with the hardening the issue asks for', () => {
    for (const c of COMPONENTS) {
      const text = readFileSync(join(INSTALLERS, `linux/sealtrail-${c}.service`), 'utf8');
      const directives = new Map<string, string[]>();
      for (const line of text.split('\n')) {
        const m = /^([A-Za-z]+)=(.*)$/.exec(line);
        if (m) directives.set(m[1]!, [...(directives.get(m[1]!) ?? []), m[2]!]);
      }
      const one = (k: string) => directives.get(k)?.at(-1);
      expect(one('User')).toBe('sealtrail');
      expect(one('NoNewPrivileges')).toBe('yes');
      expect(one('ProtectSystem')).toBe('strict');
      expect(one('ReadWritePaths')).toBe(`/var/lib/sealtrail/${c}`);
      expect(one('StateDirectory')).toBe(`sealtrail/${c}`);
      expect(one('PrivateTmp')).toBe('yes');
      expect(one('Restart')).toBe('on-failure');
      expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
      expect(one('ExecStart')).toBe(
        `/opt/sealtrail/bin/sealtrail-${c} run --config /etc/sealtrail/${c}.yaml`,
      );
      if (c === 'agent') {
        expect(one('ProtectHome')).toBe('read-only');
        expect(one('CapabilityBoundingSet')).toBe('CAP_DAC_READ_SEARCH');
        expect(one('AmbientCapabilities')).toBe('CAP_DAC_READ_SEARCH');
      } else {
        expect(one('ProtectHome')).toBe('yes');
        expect(one('CapabilityBoundingSet')).toBe('');
      }
      // A config error (exit 2: e.g. an agent not enrolled yet, a collector without its
      // certificate) is not retried every 5 s forever.
      expect(one('RestartPreventExitStatus')).toBe('2');
      if (c === 'agent') {
        // The agent has no SIGHUP handler (SIGHUP would stop it): no ExecReload.
        expect(directives.has('ExecReload')).toBe(false);
      } else {
        // The collector re-reads its admin API keys on SIGHUP (package.test.ts checks it).
        expect(one('ExecReload')).toBe("/bin/sh -c 'kill -HUP $$MAINPID'");
      }
    }
  });
});
