// The rsyslog peer (../shared/bench/peer-rsyslog/run.sh): reliable pipeline, imfile -> disk-assisted
// action queue -> omrelp -> imrelp -> omfile, run by its own harness and parsed from its summary line.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { machineCpu, start, stop, within } from './proc.mjs';

export const INSTALL_HINT = 'apt-get install -y rsyslog rsyslog-relp';

export function peerDir(root) {
  return resolve(root, process.env.PEER_RSYSLOG_DIR ?? '../shared/bench/peer-rsyslog');
}

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function rsyslogModule(name) {
  try {
    return readdirSync('/usr/lib').some((d) => existsSync(join('/usr/lib', d, 'rsyslog', name)));
  } catch {
    return false;
  }
}

/** What the peer needs and is missing here: [] when it can run. */
export function peerMissing(dir) {
  const missing = [];
  if (!existsSync(join(dir, 'run.sh'))) missing.push(`${join(dir, 'run.sh')} (set PEER_RSYSLOG_DIR)`);
  const rsyslogd = process.env.RSYSLOGD ?? '/usr/sbin/rsyslogd';
  if (!executable(rsyslogd)) missing.push(`rsyslogd (${rsyslogd})`);
  if (!rsyslogModule('imrelp.so') || !rsyslogModule('omrelp.so'))
    missing.push('rsyslog-relp (imrelp/omrelp)');
  if (!onPath('python3')) missing.push('python3 (workload generator)');
  if (!onPath('bash')) missing.push('bash');
  return missing;
}

/** `a=1 b=x note="two words"` → { a: 1, b: 'x', note: 'two words' } (numbers as numbers). */
export function parseKv(line) {
  const out = {};
  for (const m of line.matchAll(/([A-Za-z_][\w.-]*)=("[^"]*"|\S*)/g)) {
    let v = m[2];
    if (v.startsWith('"')) v = v.slice(1, -1);
    out[m[1]] = v !== '' && !Number.isNaN(Number(v)) && !v.includes(',') ? Number(v) : v;
  }
  return out;
}

/** Runs `run.sh n reliable 1`; resolves with the parsed summary (and the per-run line). */
export async function runPeer({ dir, n, benchDir, relpWindow, timeoutMs, log }) {
  const entry = start('rsyslog peer (run.sh)', 'bash', [join(dir, 'run.sh'), String(n), 'reliable', '1'], {
    cwd: dir,
    env: { ...process.env, RELP_WINDOW: String(relpWindow), BENCH_DIR: benchDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  entry.child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d;
  });
  let errBuf = '';
  let machine0 = null; // taken when run.sh starts its timed run (after generating the workload)
  entry.child.stderr.setEncoding('utf8').on('data', (d) => {
    errBuf += d;
    const lines = errBuf.split('\n');
    errBuf = lines.pop();
    for (const l of lines) {
      if (!machine0 && / pipeline=\S+ N=/.test(l)) machine0 = machineCpu();
      log(`[rsyslog] ${l}`);
    }
  });
  const timedOut = Symbol('timeout');
  const r = await within(entry.exited, timeoutMs, timedOut);
  if (r === timedOut) {
    await stop(entry, 30_000);
    throw new Error(`rsyslog peer did not finish within ${timeoutMs / 1000} s (stopped)`);
  }
  if (errBuf) log(`[rsyslog] ${errBuf}`);
  const lines = stdout.split('\n').filter(Boolean);
  const summary = lines.find((l) => /^rsyslog-reliable N=/.test(l));
  if (r.code !== 0 || !summary) {
    throw new Error(`rsyslog peer failed (exit ${r.code ?? r.signal}); output:\n${stdout.slice(-2000)}`);
  }
  const machine1 = machineCpu();
  const run = lines.find((l) => l.startsWith('run=1 '));
  const parsed = parseKv(summary);
  let machine = null;
  if (machine0 && machine1) {
    const busy = machine1.busy - machine0.busy;
    const capacity = machine1.total - machine0.total;
    // rsyslogd's own CPU is in cpu_s; what is left is other load plus run.sh's polling and accounting
    const other = Math.max(0, busy - (Number(parsed.cpu_s) || 0));
    machine = { busy_s: busy, capacity_s: capacity, other_s: other, other_pct: (100 * other) / capacity };
  }
  return { summary: parsed, run: run ? parseKv(run) : null, summary_line: summary, machine_cpu: machine };
}
