/**
 * Shared by the installer tests: Debian tools that must be there in CI, running commands,
 * and building bundles with installers/package.mjs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../e2e/harness.js';

export { ROOT };
export const INSTALLERS = join(ROOT, 'installers');
export const VERSION: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;

const DEB_OF: Record<string, string> = {
  'systemd-analyze': 'systemd',
  shellcheck: 'shellcheck',
  xmllint: 'libxml2-utils',
  'dpkg-deb': 'dpkg',
  dpkg: 'dpkg',
  useradd: 'passwd',
  groupadd: 'passwd',
  userdel: 'passwd',
  groupdel: 'passwd',
  'deb-systemd-helper': 'init-system-helpers',
};

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/**
 * True when every tool is on PATH. Outside CI a missing tool skips the test (the caller passes
 * vitest's `skip`); in CI it fails it, so that a machine without them cannot pass by skipping.
 */
export function needTools(skip: (note?: string) => void, ...names: string[]): void {
  const missing = names.filter((n) => !hasTool(n));
  if (missing.length === 0) return;
  const hint = `apt-get install -y ${[...new Set(missing.map((m) => DEB_OF[m] ?? m))].join(' ')}`;
  if (process.env.CI) throw new Error(`missing ${missing.join(', ')} (${hint}; .ci/run installs them)`);
  skip(`missing ${missing.join(', ')}: ${hint}`);
}

export function needRoot(skip: (note?: string) => void): void {
  if (process.getuid?.() === 0) return;
  if (process.env.CI) throw new Error('this test installs into a throwaway root and needs to run as root');
  skip('needs root');
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Run {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    input: opts.input ?? '',
  });
  if (r.error) throw r.error;
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs and throws, with its output, unless it exits 0. */
export function ok(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Run {
  const r = run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}\n${r.stderr}\n${r.stdout}`);
  }
  return r;
}

/** installers/package.mjs with the given arguments; runtimes come from the shared cache. */
export function packageBundles(args: string[]): string {
  return execFileSync(process.execPath, [join(INSTALLERS, 'package.mjs'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

export function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

export function owner(path: string): { uid: number; gid: number } {
  const st = statSync(path);
  return { uid: st.uid, gid: st.gid };
}

/** uid (passwd) or gid (group) of a name in a root's /etc files. */
export function idIn(root: string, file: 'passwd' | 'group', name: string): number | null {
  const line = readFileSync(join(root, 'etc', file), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[2]) : null;
}

/** Every shell script in the repository, by shebang (node_modules, dist and .git left out). */
export function shellScripts(dir = ROOT): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (['node_modules', 'dist', '.git', '.turbo', '.sealtrail'].includes(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) found.push(...shellScripts(p));
    else if (e.isFile() && statSync(p).size < 1_000_000) {
      const head = readFileSync(p, { encoding: 'latin1' }).slice(0, 64);
      if (/^#!\s*(\/bin\/|\/usr\/bin\/env\s+)(ba|da)?sh\b/.test(head)) found.push(p);
    }
  }
  return found.sort();
}

export function exists(p: string): boolean {
  return existsSync(p);
}
