#!/usr/bin/env node
/**
 * Exporter throughput: events/s and CPU per event for each exporter, from a
 * filled spool to a local receiver: a Hono server on loopback (its own process)
 * for the HTTP exporters, rsyslog (imtcp) for syslog when rsyslogd is installed
 * (a plain TCP sink otherwise), and a local file. Prints figures; asserts
 * nothing about time.
 *
 *   npm run build && node bench/exporters.mjs [events=100000]
 *   BENCH_EXPORTERS=b-file,b-es node bench/exporters.mjs 20000   # only these (names below)
 *   BENCH_CPU_PROF=/tmp/prof node bench/exporters.mjs 20000      # a CPU profile per exporter
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exporterConfigSchema, exporterTypes, Spool } from '@sealtrail/collector';
import { canonicalBytes, newEventId } from '@sealtrail/event';
import { createLogger, createRegistry } from '@sealtrail/telemetry';
import { clockTicks, cpuSeconds, freePort, start, stop } from './lib/proc.mjs';
import { formatProfile, summarizeProfile } from './lib/profile.mjs';

const N = Number(process.argv[2] ?? process.env.BENCH_EXPORTER_EVENTS ?? 100_000);
const AGENT = '0190a0b0-0000-7000-8000-000000000001';
const CHAIN = '0190a0b0-0000-7000-8000-0000000000c1';
const dir = mkdtempSync(join(tmpdir(), 'sealtrail-bench-exporters-'));
const log = createLogger('bench', 'silent');

function event(i) {
  return {
    id: newEventId(),
    time: new Date(Date.UTC(2026, 10, 23, 10, 0, 0, i % 1000)).toISOString(),
    observed_time: new Date(Date.UTC(2026, 10, 23, 10, 0, 1)).toISOString(),
    category: i % 5 === 0 ? 'file' : 'authentication',
    type: i % 5 === 0 ? 'file.modified' : 'auth.login.failure',
    severity: ['info', 'low', 'medium', 'high', 'critical'][i % 5],
    outcome: 'failure',
    action: i % 5 === 0 ? 'write' : 'login',
    actor: { user: `user${i % 97}`, ip: '198.51.100.7', session_id: `s${i % 13}` },
    resource: i % 5 === 0 ? { kind: 'file', name: `/etc/app/conf${i % 7}.yaml` } : undefined,
    host: { id: AGENT, name: 'web-1', os: 'linux' },
    source: { kind: 'http_ingest', name: 'apps' },
    message: `failed password for user${i % 97} from 198.51.100.7 port ${40000 + (i % 20000)} ssh2`,
    attributes: { attempt: i % 5, tty: 'ssh' },
  };
}

async function fill(spool) {
  const agent = {
    agent_id: AGENT,
    public_key: '',
    hostname: 'web-1',
    first_seen: new Date().toISOString(),
    last_seen: new Date().toISOString(),
    chain_id: CHAIN,
    seq: null,
    hash: null,
    chains: [],
    records: 0,
    duplicates: 0,
  };
  let seq = 0n;
  for (let i = 0; i < N; i += 1000) {
    const records = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) {
      const e = JSON.parse(JSON.stringify(event(j)));
      records.push({
        chainId: CHAIN,
        seq: seq++,
        recordHash: randomBytes(32),
        eventBytes: canonicalBytes(e),
        eventId: e.id,
      });
    }
    await spool.commit(agent, records);
  }
}

/** The Hono receiver (bench/http-sink.mjs) runs as its own process: its CPU is counted apart. */
async function httpSink() {
  const entry = start(
    'http-sink',
    process.execPath,
    [fileURLToPath(new URL('./http-sink.mjs', import.meta.url))],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const address = await new Promise((resolve, reject) => {
    entry.child.stdout.once('data', (d) => resolve(String(d).trim()));
    entry.exited.then((e) => reject(new Error(`http sink exited: ${JSON.stringify(e)}`)));
  });
  return { url: `http://${address}`, pid: entry.child.pid, close: () => stop(entry, 5000) };
}

async function syslogSink() {
  const rsyslogd = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find(existsSync);
  const port = await freePort();
  if (rsyslogd) {
    const rdir = join(dir, 'rsyslog');
    mkdirSync(rdir, { recursive: true });
    const conf = join(dir, 'rsyslog.conf');
    writeFileSync(
      conf,
      `global(workDirectory="${rdir}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="${port}" address="127.0.0.1")
action(type="omfile" file="${join(rdir, 'out.log')}")
`,
    );
    const entry = start('rsyslogd', rsyslogd, ['-n', '-f', conf, '-i', join(rdir, 'pid')], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise((r) => {
        const c = connect(port, '127.0.0.1');
        c.once('connect', () => {
          c.destroy();
          r(true);
        });
        c.once('error', () => r(false));
      });
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      address: `127.0.0.1:${port}`,
      what: 'rsyslog imtcp',
      pid: entry.child.pid,
      close: () => stop(entry, 5000),
    };
  }
  const server = createServer((s) => s.resume());
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${port}`,
    what: 'TCP sink (no rsyslogd)',
    pid: null,
    close: async () => server.close(),
  };
}

/** CPU seconds of one thread of this process (the main thread: the event loop). */
function threadCpuSeconds(tid) {
  try {
    const s = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

const only = process.env.BENCH_EXPORTERS?.split(',').map((s) => s.trim());
const profDir = process.env.BENCH_CPU_PROF;
const results = [];

async function profiled(name, fn) {
  if (!profDir) return fn();
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(profDir, { recursive: true });
    const file = join(profDir, `${name}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    console.log(formatProfile(`  profile ${file}`, summarizeProfile(file, 25)));
  }
}

async function run(spool, label, raw, sinkPid) {
  if (only && !only.includes(raw.name)) return;
  const config = exporterConfigSchema.parse(raw);
  const registry = createRegistry('bench');
  const exporter = exporterTypes[config.type].create({ spool, log, registry }, config);
  await profiled(raw.name, async () => {
    const cpu0 = process.cpuUsage();
    const main0 = threadCpuSeconds(process.pid);
    const sink0 = sinkPid ? cpuSeconds(sinkPid) : null;
    const t0 = performance.now();
    await exporter.start();
    while (exporter.lag() > 0n) await new Promise((r) => setTimeout(r, 5));
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const mainS = threadCpuSeconds(process.pid) - main0;
    const sinkS = sinkPid ? cpuSeconds(sinkPid) - sink0 : null;
    await exporter.stop();
    const rate = Math.round(N / secs);
    const usPerEvent = (cpu.user + cpu.system) / N;
    const mainUs = (mainS * 1e6) / N;
    const sinkUs = sinkS === null ? null : (sinkS * 1e6) / N;
    results.push({ name: raw.name, label, events: N, secs, rate, usPerEvent, mainUs, sinkUs });
    console.log(
      `${label.padEnd(44)} ${String(rate).padStart(8)} ev/s ${usPerEvent.toFixed(2).padStart(7)} µs/ev CPU ` +
        `(main thread ${mainUs.toFixed(2)}; receiver ${sinkUs === null ? '-' : sinkUs.toFixed(2)})  ${secs.toFixed(2)} s`,
    );
  });
}

const spool = new Spool(join(dir, 'spool'));
await spool.open();
const tFill = performance.now();
await fill(spool);
console.log(
  `spool filled with ${N} events in ${((performance.now() - tFill) / 1000).toFixed(1)} s; node ${process.version}`,
);

clockTicks(); // getconf runs once, before the clock
const http = await httpSink();
const sys = await syslogSink();
console.log(
  'CPU per event: this process (exporter, LevelDB, libuv pool: gzip, fs), of which its main thread; and the receiver process',
);
const common = { batch_timeout: 0 };
try {
  await run(
    spool,
    'file (native, fsync per batch)',
    {
      type: 'file',
      name: 'b-file',
      path: join(dir, 'out', 'events.jsonl'),
      ...common,
    },
    null,
  );
  await run(
    spool,
    'file (ecs)',
    {
      type: 'file',
      name: 'b-file-ecs',
      schema: 'ecs',
      path: join(dir, 'out', 'ecs.jsonl'),
      ...common,
    },
    null,
  );
  await run(
    spool,
    'elasticsearch (ecs, gzip)',
    {
      type: 'elasticsearch',
      name: 'b-es',
      endpoint: http.url,
      ...common,
    },
    http.pid,
  );
  await run(
    spool,
    'elasticsearch (ecs, no compression)',
    {
      type: 'elasticsearch',
      name: 'b-es-raw',
      endpoint: http.url,
      compression: 'none',
      ...common,
    },
    http.pid,
  );
  await run(
    spool,
    'splunk_hec (native, gzip)',
    {
      type: 'splunk_hec',
      name: 'b-splunk',
      endpoint: http.url,
      token: 't',
      ...common,
    },
    http.pid,
  );
  await run(
    spool,
    'splunk_hec (native, no compression)',
    {
      type: 'splunk_hec',
      name: 'b-splunk-raw',
      endpoint: http.url,
      token: 't',
      compression: 'none',
      ...common,
    },
    http.pid,
  );
  await run(
    spool,
    'datadog (native, gzip)',
    {
      type: 'datadog',
      name: 'b-dd',
      endpoint: http.url,
      api_key: 'k',
      ...common,
    },
    http.pid,
  );
  await run(
    spool,
    'webhook (native, HMAC)',
    {
      type: 'webhook',
      name: 'b-hook',
      url: `${http.url}/hook`,
      secret: 'bench-secret-0123456789',
      batch_max_records: 1000,
      ...common,
    },
    http.pid,
  );
  await run(
    spool,
    `syslog rfc5424-json → ${sys.what}`,
    {
      type: 'syslog',
      name: 'b-syslog',
      address: sys.address,
      ...common,
    },
    sys.pid,
  );
  await run(
    spool,
    `syslog cef → ${sys.what}`,
    {
      type: 'syslog',
      name: 'b-syslog-cef',
      address: sys.address,
      format: 'cef',
      ...common,
    },
    sys.pid,
  );
} finally {
  await http.close();
  await sys.close();
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
}
