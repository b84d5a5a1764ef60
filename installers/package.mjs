#!/usr/bin/env node
// `npm run package`: one self-contained bundle per platform, so a host needs no Node.
//
//   node installers/package.mjs [--platform linux-x64 ...] [--out DIR] [--no-deb] [--stage-only]
//
// Each bundle (dist/packages/sealtrail-VERSION-PLATFORM.tar.gz) holds:
//   BUILD.json     version, platform, runtime, commit, and a hash of lib/ (install.sh compares it)
//   bin/           launchers: sealtrail-agent, sealtrail-collector (.cmd and WinSW service wrappers on Windows)
//   runtime/       Node.js from the npm registry's node-<os>-<arch> package (installers/runtimes.json)
//   lib/node_modules/  the compiled workspaces and their production dependencies, exactly as
//                  package-lock.json resolves them, with classic-level's prebuild for the platform only
//   share/         sample configs, service definitions, docs/install.md, installer/settings.mjs
//   install.sh | install.ps1   the platform's installer
// and on Linux, .deb packages built with dpkg-deb: sealtrail (the bundle in /opt/sealtrail),
// sealtrail-agent and sealtrail-collector (unit, conffile, maintainer scripts).
//
// Nothing is downloaded but npm registry packages, through `npm pack`, checked against the
// integrities pinned in installers/runtimes.json and cached under dist/packages/.cache.
// Run `npm run build` first (`npm run package` does).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HERE = path.join(ROOT, 'installers');
const RUNTIMES = JSON.parse(fs.readFileSync(path.join(HERE, 'runtimes.json'), 'utf8'));
const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
/** The workspaces whose binaries a bundle ships; everything they need comes along. */
const ENTRY_WORKSPACES = ['agent', 'collector'];
const COMPONENTS = ['agent', 'collector'];

const USAGE = `Usage: node installers/package.mjs [options]
  --platform P   build only P (repeatable): ${Object.keys(RUNTIMES.platforms).join(', ')}
  --out DIR      where bundles go (default: dist/packages)
  --cache DIR    where fetched runtime packages are kept (default: dist/packages/.cache)
  --no-deb       skip the .deb packages
  --stage-only   lay out the bundle directories, write no archive (and no .deb)
  -h, --help     this text`;

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(2);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}:\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

// ---------------------------------------------------------------------------------------------
// Runtime packages from the npm registry

/** `npm pack NAME@VERSION` into the cache, verified against the pinned integrity. */
function fetchPackage({ package: name, version, integrity }, cacheDir) {
  const file = path.join(cacheDir, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  const matches = () => {
    if (!fs.existsSync(file)) return false;
    const [algo, want] = integrity.split('-', 2);
    return createHash(algo).update(fs.readFileSync(file)).digest('base64') === want;
  };
  if (!matches()) {
    fs.mkdirSync(cacheDir, { recursive: true });
    console.log(`package: fetching ${name}@${version} from the npm registry`);
    // Under `npm run`, the npm that runs us; else the one on PATH.
    const { npm_execpath: npm } = process.env;
    const [cmd, pre] = npm?.endsWith('.js') ? [process.execPath, [npm]] : ['npm', []];
    run(cmd, [...pre, 'pack', `${name}@${version}`, '--pack-destination', cacheDir, '--silent'], {
      cwd: cacheDir,
    });
    if (!matches()) fail(`${file}: integrity does not match installers/runtimes.json`);
  }
  return file;
}

/** Unpacks an npm package tarball (without its C headers and docs) and returns its `package/` dir. */
function unpack(tgz, into) {
  fs.rmSync(into, { recursive: true, force: true });
  fs.mkdirSync(into, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', into, '--exclude=package/include', '--exclude=package/share']);
  return path.join(into, 'package');
}

// ---------------------------------------------------------------------------------------------
// The app: production dependency closure, read from package-lock.json

function productionTree(platform) {
  const [os, cpu] = platform.split('-');
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  const pkgs = lock.packages;
  // workspace dir ('agent') -> where it is linked in node_modules ('node_modules/@sealtrail/agent')
  const linkOf = new Map();
  for (const [key, entry] of Object.entries(pkgs)) {
    if (entry.link) linkOf.set(entry.resolved, key);
  }
  const bundlePath = (key) => {
    for (const [ws, link] of linkOf) {
      if (key === ws || key.startsWith(`${ws}/`)) return link + key.slice(ws.length);
    }
    return key;
  };
  const resolve = (from, name) => {
    let base = from;
    for (;;) {
      const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (pkgs[candidate]) return candidate;
      if (!base) return null;
      const i = base.lastIndexOf('/node_modules/');
      base = i >= 0 ? base.slice(0, i) : '';
    }
  };
  const fits = (list, value) =>
    !list || (list.some((v) => !v.startsWith('!')) ? list.includes(value) : !list.includes(`!${value}`));

  /** lock key of the package on disk -> { dest, workspace, entry } */
  const chosen = new Map();
  const queue = ENTRY_WORKSPACES.map((ws) => ws);
  for (const ws of queue) chosen.set(ws, { dest: bundlePath(ws), workspace: true, entry: pkgs[ws] });
  while (queue.length > 0) {
    const key = queue.shift();
    const entry = pkgs[key];
    const deps = [
      ...Object.keys(entry.dependencies ?? {}).map((n) => [n, false]),
      ...Object.keys(entry.optionalDependencies ?? {}).map((n) => [n, true]),
      ...Object.keys(entry.peerDependencies ?? {}).map((n) => [n, true]),
    ];
    for (const [name, optional] of deps) {
      if (name.startsWith('@types/')) continue; // type declarations only
      let found = resolve(key, name);
      if (!found) {
        if (optional) continue;
        fail(`${key || 'root'} depends on ${name}, which package-lock.json does not have`);
      }
      let workspace = false;
      if (pkgs[found].link) {
        found = pkgs[found].resolved;
        workspace = true;
      }
      const dep = pkgs[found];
      if (!fits(dep.os, os) || !fits(dep.cpu, cpu)) continue;
      if (chosen.has(found)) continue;
      chosen.set(found, { dest: bundlePath(found), workspace, entry: dep });
      queue.push(found);
    }
  }
  return chosen;
}

/** Never loaded at run time: type declarations, TypeScript sources, source maps, package docs and dotfiles. */
const PRUNE_FILE =
  /(\.d\.[cm]?ts|\.[cm]?ts|\.map|\.tsbuildinfo)$|^(README|CHANGELOG|HISTORY|CHANGES)(\.md|\.markdown)?$|^\.(npmignore|gitignore|gitattributes|travis\.yml|eslintrc.*|prettierrc.*|editorconfig)$/i;
const PRUNE_DIR = new Set(['node_modules', '.github', '.vscode', '.idea']);

/** Copies a directory, leaving nested node_modules (placed separately) and type/map files out. */
function copyTree(from, to, skip = () => false) {
  fs.mkdirSync(to, { recursive: true });
  for (const d of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, d.name);
    const dst = path.join(to, d.name);
    if (skip(src, d)) continue;
    if (d.isDirectory()) {
      if (PRUNE_DIR.has(d.name)) continue;
      copyTree(src, dst, skip);
    } else if (d.isSymbolicLink()) {
      fs.copyFileSync(fs.realpathSync(src), dst);
    } else if (d.isFile()) {
      if (PRUNE_FILE.test(d.name)) continue;
      fs.copyFileSync(src, dst);
    }
  }
}

/** classic-level: keep the one prebuild the bundled Node loads on this platform, drop sources. */
function classicLevelSkip(platform) {
  const keepDir = platform.startsWith('darwin-') ? 'darwin-x64+arm64' : platform;
  return (src, d) => {
    const rel = src.split(`${path.sep}classic-level${path.sep}`).pop();
    if (d.isDirectory() && rel === 'deps') return true;
    if (/^binding\.(cc|gyp)$/.test(rel)) return true;
    const m = rel.split(path.sep);
    if (m[0] === 'prebuilds' && m.length >= 2 && m[1] !== keepDir) return true;
    if (m[0] === 'prebuilds' && m.length === 3 && m[2].includes('.musl.')) return true;
    return false;
  };
}

function stageApp(platform, libDir) {
  const tree = productionTree(platform);
  for (const [key, { dest, workspace, entry }] of tree) {
    const from = path.join(ROOT, key);
    const to = path.join(libDir, dest);
    if (workspace) {
      const pj = JSON.parse(fs.readFileSync(path.join(from, 'package.json'), 'utf8'));
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(path.join(from, 'package.json'), path.join(to, 'package.json'));
      for (const f of pj.files ?? []) {
        const src = path.join(from, f);
        if (!fs.existsSync(src)) fail(`${key}/${f} is missing: run \`npm run build\` first`);
        copyTree(src, path.join(to, f));
      }
    } else {
      const skip = key.endsWith('node_modules/classic-level') ? classicLevelSkip(platform) : undefined;
      copyTree(from, to, skip);
    }
    if (!entry.version && !workspace) fail(`${key}: no version in package-lock.json`);
  }
  const prebuilds = path.join(libDir, 'node_modules/classic-level/prebuilds');
  if (!fs.existsSync(prebuilds) || fs.readdirSync(prebuilds).length !== 1) {
    fail(`classic-level has no prebuild for ${platform}`);
  }
  return tree.size;
}

// ---------------------------------------------------------------------------------------------
// Bundle layout

function hashTree(dir) {
  const h = createHash('sha256');
  const walk = (d) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      h.update(`${path.relative(dir, p)}\0`);
      if (st.isDirectory()) walk(p);
      else h.update(fs.readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** Modes are set, not inherited from the checkout: 0755 for dirs and executables, 0644 otherwise. */
function normaliseModes(dir, executable) {
  const walk = (d) => {
    fs.chmodSync(d, 0o755);
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      // Scripts with a `#!/usr/bin/env node` line stay 0644: nothing runs them but the bundled node.
      else if (e.isFile()) fs.chmodSync(p, executable(p) ? 0o755 : 0o644);
    }
  };
  walk(dir);
}

function gitCommit() {
  const r = spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain'], { encoding: 'utf8' }).stdout.trim();
  return r.stdout.trim() + (dirty ? '-dirty' : '');
}

function sourceDateEpoch() {
  const { SOURCE_DATE_EPOCH: fixed } = process.env;
  if (fixed) return Number(fixed);
  const r = spawnSync('git', ['-C', ROOT, 'log', '-1', '--format=%ct'], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : Math.floor(Date.now() / 1000);
}

function stage(platform, outDir, cacheDir) {
  const rt = RUNTIMES.platforms[platform];
  const windows = platform.startsWith('win32-');
  const name = `sealtrail-${VERSION}-${platform}`;
  const dir = path.join(outDir, 'stage', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });

  // runtime/
  const runtimePkg = unpack(fetchPackage(rt, cacheDir), path.join(outDir, 'stage', `.runtime-${platform}`));
  if (windows) {
    fs.mkdirSync(path.join(dir, 'runtime'));
    fs.copyFileSync(path.join(runtimePkg, 'bin/node.exe'), path.join(dir, 'runtime/node.exe'));
  } else {
    fs.mkdirSync(path.join(dir, 'runtime/bin'), { recursive: true });
    fs.copyFileSync(path.join(runtimePkg, 'bin/node'), path.join(dir, 'runtime/bin/node'));
  }
  for (const f of ['LICENSE', 'README.md']) {
    const src = path.join(runtimePkg, f);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, 'runtime', f));
  }
  fs.rmSync(path.dirname(runtimePkg), { recursive: true, force: true });

  // lib/
  const packages = stageApp(platform, path.join(dir, 'lib'));

  // bin/ and the platform's installer
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const share = path.join(dir, 'share');
  fs.mkdirSync(path.join(share, 'config'), { recursive: true });
  fs.mkdirSync(path.join(share, 'doc'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'docs/install.md'), path.join(share, 'doc/install.md'));
  fs.copyFileSync(path.join(ROOT, 'docs/configuration.md'), path.join(share, 'doc/configuration.md'));
  // What the installers read from a config (data and PKI dirs), through the app's own loader.
  fs.mkdirSync(path.join(share, 'installer'));
  fs.copyFileSync(path.join(HERE, 'bundle/settings.mjs'), path.join(share, 'installer/settings.mjs'));
  if (windows) {
    const winsw = unpack(fetchPackage(RUNTIMES.winsw, cacheDir), path.join(outDir, 'stage', '.winsw'));
    for (const c of COMPONENTS) {
      // cmd.exe wants CRLF line ends.
      const cmd = fs.readFileSync(path.join(HERE, 'bundle/launcher.cmd'), 'utf8').replace(/\r?\n/g, '\r\n');
      fs.writeFileSync(path.join(bin, `sealtrail-${c}.cmd`), cmd);
      fs.copyFileSync(path.join(winsw, RUNTIMES.winsw.path), path.join(bin, `sealtrail-${c}-service.exe`));
      fs.copyFileSync(
        path.join(winsw, `${RUNTIMES.winsw.path}.config`),
        path.join(bin, `sealtrail-${c}-service.exe.config`),
      );
      fs.copyFileSync(
        path.join(HERE, `windows/sealtrail-${c}-service.xml`),
        path.join(bin, `sealtrail-${c}-service.xml`),
      );
      fs.copyFileSync(path.join(HERE, `windows/${c}.yaml`), path.join(share, `config/${c}.yaml`));
    }
    fs.copyFileSync(path.join(winsw, 'LICENSE'), path.join(share, 'doc/WINSW-NODE-WINDOWS-LICENSE'));
    fs.rmSync(path.dirname(winsw), { recursive: true, force: true });
    fs.copyFileSync(path.join(HERE, 'windows/install.ps1'), path.join(dir, 'install.ps1'));
  } else {
    for (const c of COMPONENTS) {
      fs.copyFileSync(path.join(HERE, 'bundle/launcher.sh'), path.join(bin, `sealtrail-${c}`));
      fs.copyFileSync(path.join(HERE, `config/${c}.yaml`), path.join(share, `config/${c}.yaml`));
    }
    if (platform.startsWith('linux-')) {
      fs.mkdirSync(path.join(share, 'systemd'));
      for (const c of COMPONENTS) {
        fs.copyFileSync(
          path.join(HERE, `linux/sealtrail-${c}.service`),
          path.join(share, `systemd/sealtrail-${c}.service`),
        );
      }
      fs.copyFileSync(path.join(HERE, 'linux/install.sh'), path.join(dir, 'install.sh'));
    } else {
      fs.mkdirSync(path.join(share, 'launchd'));
      for (const c of COMPONENTS) {
        fs.copyFileSync(
          path.join(HERE, `macos/com.sealtrail.${c}.plist`),
          path.join(share, `launchd/com.sealtrail.${c}.plist`),
        );
      }
      fs.copyFileSync(path.join(HERE, 'macos/install.sh'), path.join(dir, 'install.sh'));
    }
  }

  const build = {
    name: 'sealtrail',
    version: VERSION,
    platform,
    node: { package: rt.package, version: rt.version },
    commit: gitCommit(),
    lib_sha256: hashTree(path.join(dir, 'lib')),
    packages,
  };
  fs.writeFileSync(path.join(dir, 'BUILD.json'), `${JSON.stringify(build, null, 2)}\n`);
  const exec = new Set([
    path.join(dir, 'install.sh'),
    path.join(dir, 'runtime/bin/node'),
    ...COMPONENTS.map((c) => path.join(bin, `sealtrail-${c}`)),
  ]);
  normaliseModes(dir, (p) => exec.has(p) || p.endsWith('.exe'));
  return { name, dir, build };
}

// ---------------------------------------------------------------------------------------------
// Archives

async function tarGz(parent, name, file, epoch) {
  const gnu = run('tar', ['--version']).includes('GNU');
  const args = gnu
    ? [
        '--sort=name',
        `--mtime=@${epoch}`,
        '--owner=0',
        '--group=0',
        '--numeric-owner',
        '--format=gnu',
        '-cf',
        '-',
        name,
      ]
    : ['-cf', '-', name];
  const tar = spawn('tar', args, { cwd: parent, stdio: ['ignore', 'pipe', 'inherit'] });
  const done = new Promise((resolve, reject) => {
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar exited with ${code}`))));
  });
  const tmp = `${file}.tmp`;
  await pipeline(tar.stdout, zlib.createGzip({ level: 6 }), fs.createWriteStream(tmp));
  await done;
  fs.renameSync(tmp, file);
}

function sha256File(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Debian packages

function debControl(fields, description) {
  const lines = Object.entries(fields).map(([k, v]) => `${k}: ${v}`);
  return `${lines.join('\n')}\nDescription: ${description.trim().replace(/\n/g, '\n ')}\n`;
}

function installedSizeKiB(dir) {
  let bytes = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else bytes += fs.lstatSync(p).size;
    }
  };
  walk(dir);
  return Math.ceil(bytes / 1024);
}

function dpkgDeb(root, outFile, epoch) {
  run('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', root, outFile], {
    env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) },
  });
}

const MAINTAINER = 'Sealtrail maintainers <maintainers@sealtrail.invalid>';

/** /usr/share/doc/PACKAGE/{copyright,changelog.gz}, as Debian policy wants in every package. */
function debDocs(root, pkg, epoch) {
  const dir = path.join(root, 'usr/share/doc', pkg);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'copyright'),
    `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sealtrail

Files: *
Copyright: ${new Date(epoch * 1000).getUTCFullYear()} the Sealtrail authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
${
  pkg === 'sealtrail'
    ? `
Files: opt/sealtrail/runtime/*
Copyright: Node.js contributors and others
License: MIT and others
 See /opt/sealtrail/runtime/LICENSE.

Files: opt/sealtrail/lib/node_modules/*
Copyright: their authors
License: various (MIT, Apache-2.0, ISC, BSD)
 Each package's own license file is in its directory.
`
    : ''
}`,
  );
  const date = new Date(epoch * 1000).toUTCString().replace('GMT', '+0000');
  const changelog = `${pkg} (${VERSION}) unstable; urgency=medium\n\n  * Release ${VERSION}.\n\n -- ${MAINTAINER}  ${date}\n`;
  fs.writeFileSync(path.join(dir, 'changelog.gz'), zlib.gzipSync(changelog, { level: 9 }));
}

/** Architecture-independent packages already built in this run. */
const builtAll = new Set();

function buildDebs(bundle, platform, outDir, epoch) {
  const arch = RUNTIMES.platforms[platform].deb;
  const work = path.join(outDir, 'stage', `.deb-${platform}`);
  fs.rmSync(work, { recursive: true, force: true });
  const files = [];

  // sealtrail: the bundle itself in /opt/sealtrail, CLIs on PATH.
  const main = path.join(work, 'sealtrail');
  const opt = path.join(main, 'opt/sealtrail');
  fs.mkdirSync(opt, { recursive: true });
  for (const part of ['BUILD.json', 'bin', 'runtime', 'lib', 'share']) {
    fs.cpSync(path.join(bundle.dir, part), path.join(opt, part), {
      recursive: true,
      preserveTimestamps: true,
    });
  }
  fs.mkdirSync(path.join(main, 'usr/bin'), { recursive: true });
  for (const c of COMPONENTS) {
    fs.symlinkSync(`/opt/sealtrail/bin/sealtrail-${c}`, path.join(main, `usr/bin/sealtrail-${c}`));
  }
  debDocs(main, 'sealtrail', epoch);
  fs.mkdirSync(path.join(main, 'DEBIAN'));
  fs.writeFileSync(
    path.join(main, 'DEBIAN/control'),
    debControl(
      {
        Package: 'sealtrail',
        Version: VERSION,
        Architecture: arch,
        Maintainer: MAINTAINER,
        'Installed-Size': installedSizeKiB(opt),
        Section: 'admin',
        Priority: 'optional',
      },
      `tamper-evident audit pipeline: binaries and Node.js runtime
The sealtrail-agent and sealtrail-collector binaries with the Node.js ${RUNTIMES.platforms[platform].version}
runtime they run on, in /opt/sealtrail. Install sealtrail-agent or
sealtrail-collector for the services.`,
    ),
  );
  fs.copyFileSync(path.join(HERE, 'linux/deb/sealtrail.postinst'), path.join(main, 'DEBIAN/postinst'));
  fs.chmodSync(path.join(main, 'DEBIAN/postinst'), 0o755);
  const mainDeb = path.join(outDir, `sealtrail_${VERSION}_${arch}.deb`);
  dpkgDeb(main, mainDeb, epoch);
  files.push(mainDeb);

  // sealtrail-agent, sealtrail-collector: unit, conffile, maintainer scripts.
  for (const c of COMPONENTS) {
    if (builtAll.has(c)) continue;
    builtAll.add(c);
    const root = path.join(work, `sealtrail-${c}`);
    fs.mkdirSync(path.join(root, 'lib/systemd/system'), { recursive: true });
    fs.mkdirSync(path.join(root, 'etc/sealtrail'), { recursive: true });
    fs.chmodSync(path.join(root, 'etc'), 0o755);
    fs.chmodSync(path.join(root, 'etc/sealtrail'), 0o750);
    fs.copyFileSync(
      path.join(HERE, `linux/sealtrail-${c}.service`),
      path.join(root, `lib/systemd/system/sealtrail-${c}.service`),
    );
    fs.chmodSync(path.join(root, `lib/systemd/system/sealtrail-${c}.service`), 0o644);
    fs.copyFileSync(path.join(HERE, `config/${c}.yaml`), path.join(root, `etc/sealtrail/${c}.yaml`));
    fs.chmodSync(path.join(root, `etc/sealtrail/${c}.yaml`), 0o640);
    debDocs(root, `sealtrail-${c}`, epoch);
    // The config may hold secrets: readable by root and the service's group only, on purpose.
    const overrides = path.join(root, 'usr/share/lintian/overrides');
    fs.mkdirSync(overrides, { recursive: true });
    fs.writeFileSync(
      path.join(overrides, `sealtrail-${c}`),
      `sealtrail-${c}: non-standard-dir-perm 0750 != 0755 [etc/sealtrail/]\nsealtrail-${c}: non-standard-file-perm 0640 != 0644 [etc/sealtrail/${c}.yaml]\n`,
    );
    const debian = path.join(root, 'DEBIAN');
    fs.mkdirSync(debian);
    fs.writeFileSync(
      path.join(debian, 'control'),
      debControl(
        {
          Package: `sealtrail-${c}`,
          Version: VERSION,
          Architecture: 'all',
          Maintainer: MAINTAINER,
          'Installed-Size': installedSizeKiB(path.join(root, 'lib')) + 4,
          Depends: `sealtrail (= ${VERSION}), passwd, init-system-helpers (>= 1.54~)`,
          Section: 'admin',
          Priority: 'optional',
        },
        c === 'agent'
          ? `Sealtrail agent as a systemd service
Collects this host's audit events, seals them into a hash chain and ships
them to a Sealtrail collector. Config: /etc/sealtrail/agent.yaml.`
          : `Sealtrail collector as a systemd service
Authenticates Sealtrail agents, verifies their chains, stores and exports
their events. Config: /etc/sealtrail/collector.yaml.`,
      ),
    );
    fs.writeFileSync(path.join(debian, 'conffiles'), `/etc/sealtrail/${c}.yaml\n`);
    for (const script of ['postinst', 'prerm', 'postrm']) {
      fs.copyFileSync(path.join(HERE, `linux/deb/service.${script}`), path.join(debian, script));
      fs.chmodSync(path.join(debian, script), 0o755);
    }
    const deb = path.join(outDir, `sealtrail-${c}_${VERSION}_all.deb`);
    dpkgDeb(root, deb, epoch);
    files.push(deb);
  }
  fs.rmSync(work, { recursive: true, force: true });
  return files;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  let args;
  try {
    args = parseArgs({
      options: {
        platform: { type: 'string', multiple: true },
        out: { type: 'string' },
        cache: { type: 'string' },
        'no-deb': { type: 'boolean' },
        'stage-only': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    fail(`${err.message}\n${USAGE}`);
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const platforms = args.platform ?? Object.keys(RUNTIMES.platforms);
  for (const p of platforms) {
    if (!RUNTIMES.platforms[p])
      fail(`unknown platform ${p}; known: ${Object.keys(RUNTIMES.platforms).join(', ')}`);
  }
  const outDir = path.resolve(args.out ?? path.join(ROOT, 'dist/packages'));
  const cacheDir = path.resolve(args.cache ?? path.join(ROOT, 'dist/packages/.cache'));
  fs.mkdirSync(outDir, { recursive: true });
  const epoch = sourceDateEpoch();
  const wantDeb = !args['no-deb'] && !args['stage-only'];
  if (wantDeb && platforms.some((p) => p.startsWith('linux-')) && !have('dpkg-deb')) {
    if (process.env.CI) fail('dpkg-deb not found (apt-get install dpkg-dev)');
    console.warn('package: dpkg-deb not found: no .deb packages');
  }

  const made = [];
  for (const platform of platforms) {
    const t0 = Date.now();
    const bundle = stage(platform, outDir, cacheDir);
    if (args['stage-only']) {
      made.push(bundle.dir);
      console.log(`package: staged ${bundle.dir} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      continue;
    }
    const archive = path.join(outDir, `${bundle.name}.tar.gz`);
    await tarGz(path.dirname(bundle.dir), bundle.name, archive, epoch);
    made.push(archive);
    if (wantDeb && platform.startsWith('linux-') && have('dpkg-deb')) {
      made.push(...buildDebs(bundle, platform, outDir, epoch));
    }
    fs.rmSync(bundle.dir, { recursive: true, force: true });
    console.log(`package: ${platform} done (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  if (!args['stage-only']) {
    fs.rmSync(path.join(outDir, 'stage'), { recursive: true, force: true });
    const sums = made.map((f) => `${sha256File(f)}  ${path.basename(f)}`).join('\n');
    fs.writeFileSync(path.join(outDir, 'SHA256SUMS'), `${sums}\n`);
  }
  for (const f of made) {
    const bytes = fs.statSync(f).isDirectory() ? null : fs.statSync(f).size;
    const size =
      bytes === null
        ? ''
        : bytes < 1048576
          ? ` ${(bytes / 1024).toFixed(1)} KiB`
          : ` ${(bytes / 1048576).toFixed(1)} MiB`;
    console.log(`${path.relative(process.cwd(), f) || f}${size}`);
  }
}

main().catch((err) => {
  console.error(`package: ${err.stack ?? err}`);
  process.exit(1);
});
