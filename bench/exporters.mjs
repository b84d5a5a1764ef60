#!/usr/bin/env node
/**
 * Exporter throughput: events/s per exporter from a filled spool to a local
 * receiver: a Hono server on loopback (in a worker thread) for the HTTP exporters, rsyslog (imtcp)
 * for syslog when rsyslogd is installed (a plain TCP sink otherwise), and a
 * local file. Prints figures; asserts nothing about time.
 *
 *   npm run build && node bench/exporters.mjs [events=100000]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { exporterConfigSchema, exporterTypes, Spool } from '@sealtrail/collector';
import { canonicalBytes, newEventId } from '@sealtrail/event';
import { createLogger, createRegistry } from '@sealtrail/telemetry';

const N = Number(process.argv[2] ?? 100_000);
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

/** The Hono receiver runs in a worker thread (bench/http-sink.mjs), as a real receiver would not share our core. */
async function httpSink() {
  const worker = new Worker(new URL('./http-sink.mjs', import.meta.url));
  const address = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    url: `http://${address}`,
    close: () =>
      new Promise((r) => {
        worker.once('exit', r);
        worker.postMessage('close');
      }),
  };
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function syslogSink() {
  const rsyslogd = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find(existsSync);
  const port = await freePort();
  if (rsyslogd) {
    const rdir = join(dir, 'rsyslog');
    rmSync(rdir, { recursive: true, force: true });
    const conf = join(dir, 'rsyslog.conf');
    await import('node:fs').then((fs) => fs.mkdirSync(rdir, { recursive: true }));
    writeFileSync(
      conf,
      `global(workDirectory="${rdir}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="${port}" address="127.0.0.1")
action(type="omfile" file="${join(rdir, 'out.log')}")
`,
    );
    const child = spawn(rsyslogd, ['-n', '-f', conf, '-i', join(rdir, 'pid')], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise((r) => {
        const s = import('node:net').then(({ connect }) => {
          const c = connect(port, '127.0.0.1');
          c.once('connect', () => {
            c.destroy();
            r(true);
          });
          c.once('error', () => r(false));
        });
        void s;
      });
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return { address: `127.0.0.1:${port}`, what: 'rsyslog imtcp', close: async () => child.kill('SIGTERM') };
  }
  const server = createServer((s) => s.resume());
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { address: `127.0.0.1:${port}`, what: 'TCP sink (no rsyslogd)', close: async () => server.close() };
}

async function run(spool, label, raw) {
  const config = exporterConfigSchema.parse(raw);
  const registry = createRegistry('bench');
  const exporter = exporterTypes[config.type].create({ spool, log, registry }, config);
  const t0 = performance.now();
  await exporter.start();
  while (exporter.lag() > 0n) await new Promise((r) => setTimeout(r, 5));
  const secs = (performance.now() - t0) / 1000;
  await exporter.stop();
  const rate = Math.round(N / secs);
  console.log(
    `${label.padEnd(42)} ${String(rate).padStart(9)} events/s  (${N} events in ${secs.toFixed(2)} s)`,
  );
  return rate;
}

const spool = new Spool(join(dir, 'spool'));
await spool.open();
const tFill = performance.now();
await fill(spool);
console.log(
  `spool filled with ${N} events in ${((performance.now() - tFill) / 1000).toFixed(1)} s; node ${process.version}`,
);

const http = await httpSink();
const sys = await syslogSink();
const common = { batch_timeout: 0 };
try {
  await run(spool, 'file (native, fsync per batch)', {
    type: 'file',
    name: 'b-file',
    path: join(dir, 'out', 'events.jsonl'),
    ...common,
  });
  await run(spool, 'file (ecs)', {
    type: 'file',
    name: 'b-file-ecs',
    schema: 'ecs',
    path: join(dir, 'out', 'ecs.jsonl'),
    ...common,
  });
  await run(spool, 'elasticsearch (ecs, gzip)', {
    type: 'elasticsearch',
    name: 'b-es',
    endpoint: http.url,
    ...common,
  });
  await run(spool, 'elasticsearch (ecs, no compression)', {
    type: 'elasticsearch',
    name: 'b-es-raw',
    endpoint: http.url,
    compression: 'none',
    ...common,
  });
  await run(spool, 'splunk_hec (native, gzip)', {
    type: 'splunk_hec',
    name: 'b-splunk',
    endpoint: http.url,
    token: 't',
    ...common,
  });
  await run(spool, 'splunk_hec (native, no compression)', {
    type: 'splunk_hec',
    name: 'b-splunk-raw',
    endpoint: http.url,
    token: 't',
    compression: 'none',
    ...common,
  });
  await run(spool, 'datadog (native, gzip)', {
    type: 'datadog',
    name: 'b-dd',
    endpoint: http.url,
    api_key: 'k',
    ...common,
  });
  await run(spool, 'webhook (native, HMAC)', {
    type: 'webhook',
    name: 'b-hook',
    url: `${http.url}/hook`,
    secret: 'bench-secret-0123456789',
    batch_max_records: 1000,
    ...common,
  });
  await run(spool, `syslog rfc5424-json → ${sys.what}`, {
    type: 'syslog',
    name: 'b-syslog',
    address: sys.address,
    ...common,
  });
  await run(spool, `syslog cef → ${sys.what}`, {
    type: 'syslog',
    name: 'b-syslog-cef',
    address: sys.address,
    format: 'cef',
    ...common,
  });
} finally {
  await http.close();
  await sys.close();
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
}
