// Child processes and /proc figures. Every process started here is tracked by its PID and
// stopped by that PID (SIGTERM, bounded wait, then SIGKILL), also when the bench fails.
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Started and not yet reaped: { name, child }. */
const live = new Set();

let clkTck = 0;
/** Clock ticks per second for /proc/PID/stat (getconf CLK_TCK; 100 on every Linux we know of). */
export function clockTicks() {
  if (clkTck) return clkTck;
  try {
    clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    clkTck = 100;
  }
  return clkTck;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `command args` with stdout/stderr appended to `logFile` (or piped when logFile is null).
 * Resolves nothing; the child is tracked until it exits.
 */
export function start(name, command, args, { cwd, env, logFile = null, stdio } = {}) {
  const child = spawn(command, args, {
    cwd,
    env: env ?? process.env,
    stdio: stdio ?? ['ignore', logFile ? 'pipe' : 'inherit', logFile ? 'pipe' : 'inherit'],
  });
  const entry = { name, child, exit: null };
  entry.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      entry.exit = { code, signal };
      live.delete(entry);
      resolve(entry.exit);
    });
    child.once('error', (err) => {
      entry.exit = { code: null, signal: null, error: err.message };
      live.delete(entry);
      resolve(entry.exit);
    });
  });
  if (logFile) {
    const out = createWriteStream(logFile, { flags: 'a' });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    entry.exited.then(() => setTimeout(() => out.end(), 50));
  }
  live.add(entry);
  return entry;
}

export function alive(entry) {
  return entry.exit === null;
}

/** Resolves with `promise`'s value, or with `fallback` after `ms` (the timer is cleared either way). */
export async function within(promise, ms, fallback) {
  let timer;
  const t = new Promise((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM by PID, wait up to graceMs, then SIGKILL and wait again (bounded). Returns the exit. */
export async function stop(entry, graceMs = 15_000) {
  if (!entry || entry.exit) return entry?.exit ?? null;
  const pid = entry.child.pid;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {}
  const timedOut = Symbol('timeout');
  let r = await within(entry.exited, graceMs, timedOut);
  if (r === timedOut) {
    console.error(`[bench] ${entry.name} (pid ${pid}) did not stop within ${graceMs} ms; SIGKILL`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    r = await within(entry.exited, 5_000, timedOut);
    if (r === timedOut) return { code: null, signal: 'SIGKILL', error: 'not reaped after SIGKILL' };
    return { ...r, killed: true };
  }
  return r;
}

let stoppingAll = false;
/** True once stopAll() ran (an interrupt): processes exiting then is expected, not a failure. */
export const stoppingEverything = () => stoppingAll;

/** Stops every process still running, newest first. */
export async function stopAll(graceMs = 15_000) {
  stoppingAll = true;
  const entries = [...live].reverse();
  for (const e of entries) await stop(e, graceMs);
}

/** Peak RSS (VmHWM) in MiB, or null when the process is gone. */
export function peakRssMb(pid) {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** utime+stime (all threads) in seconds, or null when the process is gone. */
export function cpuSeconds(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // after "pid (comm) ": f[0] is field 3 (state); utime is field 14, stime field 15
    return (Number(f[11]) + Number(f[12])) / clockTicks();
  } catch {
    return null;
  }
}

/** Whole-machine CPU seconds from /proc/stat: { busy, total } (all CPUs summed). */
export function machineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    const busy = user + nice + system + irq + softirq + (steal ?? 0);
    return { busy: busy / clockTicks(), total: (busy + idle + iowait) / clockTicks() };
  } catch {
    return null;
  }
}

/** GETs `url` until `ok(status, body)` or the deadline; throws naming the last answer. */
export async function waitHttp(url, { timeoutMs = 30_000, ok = (s) => s === 200, entry = null } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (entry && !alive(entry)) {
      throw new Error(`${entry.name} exited (${JSON.stringify(entry.exit)}) before ${url} was ready`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (ok(res.status, body)) return;
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (last: ${last})`);
}
