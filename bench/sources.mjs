#!/usr/bin/env node
/**
 * Source benchmarks (issue 5). Prints figures; asserts nothing about time.
 *
 *   node bench/sources.mjs            all of them (npm run build first; run with Node 24: npx node …)
 *   node bench/sources.mjs fim 10000  one FIM initial scan of a fresh 10,000-file tree, then a restart's compare
 *   node bench/sources.mjs tail 200000
 *   node bench/sources.mjs tail-source 200000   the same into a discarding sink: the source's own CPU
 *   node bench/sources.mjs idle 30    the agent with installers/config/agent.linux.yaml, 30 s idle window
 *
 * Each measurement runs in its own child process so that RSS is that measurement's; the FIM
 * phases run with the installed agent's node flags. bench/README.md ("sources") has figures.
 * BENCH_TAIL_CHUNK: read_chunk_bytes for the tail runs (default: the source's, 256 KiB).
 * Targets (issue 5, 2-core machine): tail ≥ 100,000 lines/s parsed into the journal;
 * FIM 100,000 files under 150 MB RSS; idle agent under 0.5 % of a core.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAuthLog } from './lib/workload.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => join(ROOT, 'agent/dist', p);
const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;

/**
 * The node flags the installed agent runs with (installers/bundle/launcher.sh), so that the FIM
 * phases measure the memory the service would use.
 */
function agentNodeFlags() {
  const sh = readFileSync(join(ROOT, 'installers/bundle/launcher.sh'), 'utf8');
  const line = sh.split('\n').find((l) => l.startsWith('sealtrail-agent)')) ?? '';
  return line.match(/--[a-z-]+(=\S+)?/g) ?? [];
}

/**
 * FIM on a fresh tree of `n` files (1,000 per directory). The tree is written by this process;
 * the first baseline and the restart's compare each run in a fresh child with the agent's node
 * flags, since an agent restart is a new process: each phase's RSS is its own.
 */
async function fim(n) {
  const dir = mkdtempSync(join(tmpdir(), 'sealtrail-bench-fim-'));
  try {
    const tree = join(dir, 'tree');
    const perDir = 1000;
    for (let d = 0; d < Math.ceil(n / perDir); d++) {
      const sub = join(tree, `d${d}`);
      mkdirSync(sub, { recursive: true });
      for (let i = 0; i < perDir && d * perDir + i < n; i++)
        writeFileSync(join(sub, `f${i}.conf`), `file ${d}/${i}\n`);
    }
    const flags = agentNodeFlags();
    const build = await child(['fim-phase', 'build', dir], flags);
    const restart = await child(['fim-phase', 'restart', dir], flags);
    return {
      bench: 'fim_initial_scan',
      files: n,
      node_flags: flags.join(' '),
      baseline_seconds: build.seconds,
      files_per_second: Math.round(n / build.seconds),
      baseline_cpu_us_per_file: Math.round(build.cpu_us / n),
      peak_rss_baseline: build.peak_rss,
      peak_heap_baseline: build.peak_heap,
      restart_compare_seconds: restart.seconds,
      restart_cpu_us_per_file: Math.round(restart.cpu_us / n),
      peak_rss_restart: restart.peak_rss,
      peak_heap_restart: restart.peak_heap,
      rss_before_start: build.rss_before_start,
      baseline_files: build.files,
      restart_events: restart.events,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One FIM phase in this process: `build` the first baseline, or `restart` and compare. */
async function fimPhase(phase, dir) {
  const { makeKit } = await import(dist('sources/common/testkit.js'));
  const { FileIntegrity } = await import(dist('sources/file_integrity/file_integrity.js'));
  const { fileIntegrityConfigSchema } = await import(dist('sources/file_integrity/config.js'));
  const kit = await makeKit({ dir });
  const seqBefore = kit.journal.head?.seq ?? 0n;
  const rssBefore = process.memoryUsage().rss;
  const source = new FileIntegrity(
    kit.settings,
    fileIntegrityConfigSchema.parse({ type: 'file_integrity', name: 'bench', paths: [join(dir, 'tree')] }),
  );
  // Where the resident memory is: V8's heap (young generation included) or native (LevelDB, threads).
  const peak = { heapTotal: 0, heapUsed: 0, external: 0 };
  const sample = setInterval(() => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
  }, 100);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await source.start();
  await source.ready;
  await source.idle();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  clearInterval(sample);
  const files = source.baselineSize;
  await source.stop();
  const events = Number((kit.journal.head?.seq ?? 0n) - seqBefore);
  await kit.journal.close();
  return {
    phase,
    files,
    seconds: +(ms / 1000).toFixed(2),
    cpu_us: cpu.user + cpu.system,
    // Records sealed: on a restart with nothing changed, only the scan's own commit.
    events,
    peak_rss: mb(process.resourceUsage().maxRSS),
    peak_heap: `${mb(peak.heapUsed / 1024)} used of ${mb(peak.heapTotal / 1024)}, external ${mb(peak.external / 1024)}`,
    rss_before_start: mb(rssBefore / 1024),
  };
}

/**
 * log_tail with linux_auth: N lines of the parser testdata, read from the beginning, until all
 * N are sealed. CPU per line is the process's user+system time over the timed window, so it
 * holds on a busy machine where lines/s does not. `sink: 'discard'` hands the batches to a
 * sink that only counts them: what is left is the source's own cost (read, split, parse,
 * build, redact, validate, canonicalize), and the difference to the journal run is the
 * journal append (hash chain, LevelDB batch, fsync).
 */
async function tail(n, sink = 'journal') {
  const { makeKit } = await import(dist('sources/common/testkit.js'));
  const { LogTail } = await import(dist('sources/log_tail/log_tail.js'));
  const { logTailConfigSchema } = await import(dist('sources/log_tail/config.js'));
  const kit = await makeKit();
  const file = join(kit.dir, 'auth.log');
  const bytes = writeAuthLog(file, n);
  let sealed = () => Number(kit.journal.head?.seq ?? 0n);
  let settings = kit.settings;
  if (sink === 'discard') {
    let count = 0;
    sealed = () => count;
    const discard = {
      position: async () => undefined,
      append: async (req) => {
        count += req.events.length;
        return { first: 0n, last: 0n };
      },
    };
    settings = { ...kit.settings, journal: discard };
  }
  const source = new LogTail(
    settings,
    logTailConfigSchema.parse({
      type: 'log_tail',
      name: 'auth',
      include: [file],
      start_at: 'beginning',
      parser: 'linux_auth',
      poll_interval: '10ms',
      ...(process.env.BENCH_TAIL_CHUNK ? { read_chunk_bytes: process.env.BENCH_TAIL_CHUNK } : {}),
    }),
  );
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const t0 = performance.now();
  await source.start();
  while (sealed() < n) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  await source.stop();
  // LevelDB logs each compaction it runs ("Compacting N@L + M@L+1 files") in the journal's LOG.
  const compactions =
    sink === 'discard'
      ? null
      : (readFileSync(join(kit.dir, 'journal', 'LOG'), 'utf8').match(/Compacting /g) ?? []).length;
  await kit.close();
  const total = cpu.user + cpu.system;
  const mainUs = main.user + main.system;
  return {
    bench: sink === 'discard' ? 'log_tail_linux_auth_source_only' : 'log_tail_linux_auth',
    lines: n,
    seconds: +(ms / 1000).toFixed(2),
    lines_per_second: Math.round(n / (ms / 1000)),
    cpu_us_per_line: +(total / n).toFixed(2),
    // The JavaScript thread alone, and the rest (LevelDB's writer and compaction, libuv's pool, GC helpers).
    cpu_main_us_per_line: +(mainUs / n).toFixed(2),
    cpu_other_us_per_line: +((total - mainUs) / n).toFixed(2),
    cpu_cores_busy: +(total / 1000 / ms).toFixed(2),
    leveldb_compactions: compactions,
    mb_per_second: +(bytes / 1e6 / (ms / 1000)).toFixed(1),
    peak_rss: mb(process.resourceUsage().maxRSS),
  };
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function procStat(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return { ticks, rssKb };
}

async function idle(windowSec) {
  const dir = mkdtempSync(join(tmpdir(), 'sealtrail-bench-idle-'));
  const port = await freePort();
  const collectorPort = await freePort();
  const collectorHttp = await freePort();
  // A real collector, so the agent idles as it would in service (connected, checkpointing).
  writeFileSync(
    join(dir, 'collector.yaml'),
    `collector:\n  data_dir: ${join(dir, 'collector')}\n  log_level: warn\ngrpc:\n  listen: 127.0.0.1:${collectorPort}\n  insecure: true\nhttp:\n  listen: 127.0.0.1:${collectorHttp}\nexporters:\n  - type: file\n    name: archive\n    path: ${join(dir, 'export.jsonl')}\n`,
  );
  const collector = spawn(
    process.execPath,
    [join(ROOT, 'collector/bin/sealtrail-collector.js'), 'run', '--config', join(dir, 'collector.yaml')],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${collectorHttp}/healthz`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  // The bench collector is plaintext on loopback, so the sample (TLS) is switched to insecure.
  // SEALTRAIL_BENCH_IDLE_CONFIG: another config in the sample's shape (e.g. only http_ingest, for a baseline).
  const configFile =
    process.env.SEALTRAIL_BENCH_IDLE_CONFIG ?? join(ROOT, 'installers/config/agent.linux.yaml');
  const sample = readFileSync(configFile, 'utf8')
    .replace('/var/lib/sealtrail/agent', join(dir, 'data'))
    .replace('127.0.0.1:7780', `127.0.0.1:${port}`)
    .replace('log_level: info', 'log_level: warn')
    // the sample's own ${ENV:-default} text, not a template
    .replace(
      ['$', '{SEALTRAIL_COLLECTOR:-127.0.0.1:7701}'].join(''),
      `127.0.0.1:${collectorPort}\n  insecure: true`,
    );
  const config = join(dir, 'agent.yaml');
  writeFileSync(config, sample);
  const child = spawn(
    process.execPath,
    [join(ROOT, 'agent/bin/sealtrail-agent.js'), 'run', '--config', config],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  // Wait for start-up work (the FIM baseline of /etc and /usr/bin, the first inventory) to end:
  // every FIM scan committed (`sealtrail_fim_scan_running` 0: the scan is rate-limited, so its CPU
  // comes in bursts that a quiet second alone would miss), then two consecutive seconds under
  // 2 % of a core, at most 300 s.
  const started = Date.now();
  const scanning = async () => {
    try {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^sealtrail_fim_scan_running\{[^}]*\} 1$/m.test(text);
    } catch {
      return true; // not listening yet
    }
  };
  let prev = procStat(child.pid);
  let quiet = 0;
  while (Date.now() - started < 300_000 && quiet < 2) {
    await new Promise((r) => setTimeout(r, 1000));
    if (child.exitCode !== null) throw new Error(`agent exited: ${stderr}`);
    const busy = await scanning();
    const cur = procStat(child.pid);
    quiet = !busy && (cur.ticks - prev.ticks) / hz < 0.02 ? quiet + 1 : 0;
    prev = cur;
  }
  const settleSec = (Date.now() - started) / 1000;
  const a = procStat(child.pid);
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, windowSec * 1000));
  const b = procStat(child.pid);
  const secs = (Date.now() - t0) / 1000;
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  collector.kill('SIGTERM');
  await new Promise((r) => collector.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  const baseline = /sealtrail_fim_baseline_files\{[^}]*\} (\d+)/.exec(metrics)?.[1];
  return {
    bench: process.env.SEALTRAIL_BENCH_IDLE_CONFIG
      ? 'agent_idle_custom_config'
      : 'agent_idle_sample_linux_config',
    collector: 'connected',
    startup_work_seconds: +settleSec.toFixed(1),
    fim_baseline_files: baseline ? Number(baseline) : null,
    window_seconds: +secs.toFixed(1),
    cpu_percent_of_one_core: +(((b.ticks - a.ticks) / hz / secs) * 100).toFixed(3),
    rss: mb(b.rssKb),
  };
}

async function child(args, nodeFlags = []) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [...nodeFlags, fileURLToPath(import.meta.url), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1)))
        : reject(new Error(`${args} exited ${code}`)),
    );
  });
}

const [what, arg] = process.argv.slice(2);
if (what === 'fim') console.log(JSON.stringify(await fim(Number(arg ?? 10_000))));
else if (what === 'fim-phase') console.log(JSON.stringify(await fimPhase(arg, process.argv[4])));
else if (what === 'tail') console.log(JSON.stringify(await tail(Number(arg ?? 200_000))));
else if (what === 'tail-source') console.log(JSON.stringify(await tail(Number(arg ?? 200_000), 'discard')));
else if (what === 'idle') console.log(JSON.stringify(await idle(Number(arg ?? 30))));
else {
  if (!process.version.startsWith('v24'))
    console.error(
      `note: running on Node ${process.version}; the project pins Node 24 (npx node bench/sources.mjs)`,
    );
  console.log(
    `sealtrail source benchmarks — ${process.version}, ${(await import('node:os')).cpus().length} cores, load ${(
      await import('node:os')
    )
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const results = [];
  for (const args of [
    ['fim', '10000'],
    ['fim', '100000'],
    ['tail', '200000'],
    ['tail-source', '200000'],
    ['idle', '30'],
  ]) {
    const r = await child(args);
    results.push(r);
    console.log(JSON.stringify(r));
  }
  console.log(
    '\ntargets (issue 5): tail ≥ 100,000 lines/s; FIM 100,000 files < 150 MB RSS; idle < 0.5 % of a core',
  );
}
