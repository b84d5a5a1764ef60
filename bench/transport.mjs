// Transport benchmark (printed, not asserted): agent → collector over TLS, with the
// collector verifying every record and committing it durably to its spool before it acks.
//
//   1. the real agent binary ships a pre-filled journal (batches of 1,000 events of ~400 bytes);
//   2. one protocol-level agent (a chain sealed in memory beforehand) streams the same, which
//      leaves the collector as the only thing measured;
//   3. 200 agents at once, each on its own TLS connection and enrolled with its own token:
//      first at 100 events/s each, then as fast as they can; aggregate events/s and the
//      collector's CPU and RSS.
// The collector is the real binary (`init`, API tokens, `run`); agents enroll as operators do.
// Env: BENCH_TRANSPORT_EVENTS (one agent, default 200,000), BENCH_TRANSPORT_AGENTS (200),
//      BENCH_TRANSPORT_RATE (events/s per agent, 100), BENCH_TRANSPORT_SECONDS (20),
//      BENCH_TRANSPORT_BURST (events per agent in the unthrottled run, 1,000),
//      BENCH_TRANSPORT_PARTS (which of 1,2,3 to run; all by default),
//      BENCH_TRANSPORT_PROFILE (a directory: the collector writes a V8 CPU profile there on exit),
//      BENCH_TRANSPORT_NODE_FLAGS (extra node flags for the collector, e.g. --max-semi-space-size=32),
//      BENCH_TRANSPORT_AGENT_PROFILE (a directory: run 1's agent writes a V8 CPU profile there on exit),
//      BENCH_TRANSPORT_AGENT_NODE_FLAGS (extra node flags for run 1's agent).
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { chainStartEvent, Journal, journalPaths, loadOrCreateIdentity } from '@sealtrail/agent';
import { challengeMessage, RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import { canonicalBytes, newEventId } from '@sealtrail/event';
import { createClient, EnrollRequestSchema, Ingest, message, StreamRequestSchema } from '@sealtrail/proto';
import { benchEvent } from './lib/workload.mjs';

const ONE_AGENT_EVENTS = Number(process.env.BENCH_TRANSPORT_EVENTS ?? 200_000);
const AGENTS = Number(process.env.BENCH_TRANSPORT_AGENTS ?? 200);
const RATE = Number(process.env.BENCH_TRANSPORT_RATE ?? 100);
const SECONDS = Number(process.env.BENCH_TRANSPORT_SECONDS ?? 20);
const BURST = Number(process.env.BENCH_TRANSPORT_BURST ?? 1_000);
const PARTS = new Set((process.env.BENCH_TRANSPORT_PARTS ?? '1,2,3').split(',').map(Number));
const PROFILE = process.env.BENCH_TRANSPORT_PROFILE;
const NODE_FLAGS = (process.env.BENCH_TRANSPORT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const AGENT_PROFILE = process.env.BENCH_TRANSPORT_AGENT_PROFILE;
const AGENT_NODE_FLAGS = (process.env.BENCH_TRANSPORT_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const BATCH = 1_000;
const WINDOW = 8;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COLLECTOR_BIN = join(ROOT, 'collector/bin/sealtrail-collector.js');
const AGENT_BIN = join(ROOT, 'agent/bin/sealtrail-agent.js');
const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n) => Math.round(n).toLocaleString('en-US');
/** CPU microseconds per event: the figure a shared or busy machine disturbs least. */
const usPer = (cpuS, events) => ((cpuS * 1e6) / events).toFixed(1);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitUntil(what, pred, timeoutMs = 300_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// ---- the collector's CPU and memory, from /proc -------------------------------------------------
const CLK_TCK = 100;
function procCpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}
function procMemMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: Math.round(kb('VmRSS') / 1024), peak: Math.round(kb('VmHWM') / 1024) };
}
/** CPU seconds of each of a process's threads, summed by thread name (main: the pid's own). */
function procThreadCpu(pid) {
  const out = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name =
        tid === String(pid) ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / CLK_TCK;
    } catch {
      // the thread ended
    }
  }
  return out;
}
/** Per thread name, µs of CPU per event between two procThreadCpu readings. */
function threadSplit(before, after, events) {
  return Object.entries(after)
    .map(([k, v]) => [k, v - (before[k] ?? 0)])
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${usPer(v, events)}`)
    .join(', ');
}
/** Measures a phase: wall time, and the collector's CPU (% of one core, and seconds) over it. */
function meter(pid) {
  const t0 = performance.now();
  const c0 = procCpuSeconds(pid);
  const b0 = process.cpuUsage();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const b = process.cpuUsage(b0);
    const cpuS = procCpuSeconds(pid) - c0;
    return {
      wall,
      cpuS,
      collectorCpu: (100 * cpuS) / wall,
      benchCpu: (100 * (b.user + b.system)) / 1e6 / wall,
      ...procMemMiB(pid),
    };
  };
}

// ---- a protocol-level agent: its own key, its chain sealed in memory -----------------------------
class BenchAgent {
  constructor(address, ca) {
    this.agentId = randomUUID();
    this.chainId = randomUUID();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    this.publicKey = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
    this.hasher = new RecordHasher({ agentId: this.agentId, chainId: this.chainId });
    this.host = { id: this.agentId, name: `bench-${this.agentId.slice(0, 8)}`, os: 'linux' };
    this.records = [];
    this.acked = -1n;
    this.sent = -1n;
    this.inflight = 0;
    this.bytes = 0;
    this.client = createClient(Ingest, address, grpc.credentials.createSsl(ca), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_send_message_length': 16 * 1024 * 1024,
    });
    const now = new Date().toISOString();
    this.push({
      id: newEventId(),
      time: now,
      observed_time: now,
      category: 'agent',
      type: 'agent.chain.start',
      severity: 'info',
      outcome: 'success',
      action: 'start',
      host: this.host,
      source: { kind: 'agent', name: 'agent' },
      attributes: {
        chain_id: this.chainId,
        public_key: this.publicKey.toString('base64'),
        previous: null,
        reason: 'first_start',
      },
    });
  }

  push(event) {
    const seq = BigInt(this.records.length);
    const eventBytes = canonicalBytes(event);
    const prev = this.records.at(-1)?.recordHash ?? ZERO_HASH;
    this.records.push({ seq, recordHash: this.hasher.seal(seq, prev, eventBytes), eventBytes });
    this.bytes += eventBytes.length;
  }

  /** Seals `n` events; with `send`, the stream (when open) takes them at once. */
  seal(n, send = true) {
    for (let i = 0; i < n; i++) this.push(benchEvent(this.host, this.records.length));
    if (send) this.pump?.();
  }

  get head() {
    return BigInt(this.records.length - 1);
  }

  enroll(token) {
    return this.client.enroll(
      message(EnrollRequestSchema, {
        token,
        publicKey: this.publicKey,
        hostname: this.host.name,
        agentId: this.agentId,
      }),
    );
  }

  /** Opens the stream; resolves once the collector named the resume point. */
  connect() {
    const call = this.client.stream();
    this.call = call;
    this.pump = () => {
      while (this.inflight < WINDOW && this.sent < this.head) {
        const from = Number(this.sent + 1n);
        const batch = this.records.slice(from, from + BATCH);
        call.write(
          message(StreamRequestSchema, {
            body: { case: 'batch', value: { chainId: this.chainId, records: batch } },
          }),
        );
        this.sent = batch.at(-1).seq;
        this.inflight++;
      }
    };
    return new Promise((resolve, reject) => {
      call.on('data', (res) => {
        const b = res.body;
        if (b.case === 'challenge') {
          const signature = sign(null, challengeMessage(this.agentId, b.value.nonce), this.privateKey);
          call.write(
            message(StreamRequestSchema, { body: { case: 'challengeResponse', value: { signature } } }),
          );
        } else if (b.case === 'resume') {
          this.sent = b.value.hasPosition ? b.value.resumeAfterSeq : -1n;
          this.acked = this.sent;
          resolve();
          this.pump();
        } else if (b.case === 'ack') {
          this.acked = b.value.throughSeq;
          this.inflight--;
          this.pump();
        } else if (b.case === 'refusal') {
          reject(new Error(`refused: ${b.value.code}: ${b.value.message}`));
        }
      });
      call.on('error', (err) => {
        if (!this.closing) console.error(`agent ${this.agentId}: stream failed: ${err.message}`);
        reject(err);
      });
      call.write(
        message(StreamRequestSchema, {
          body: {
            case: 'hello',
            value: {
              agentId: this.agentId,
              agentVersion: 'bench',
              hostname: this.host.name,
              publicKey: this.publicKey,
            },
          },
        }),
      );
    });
  }

  close() {
    this.closing = true;
    this.call?.end();
    this.client.close();
  }
}

// ---- the collector: init, API token endpoint, run -------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'sealtrail-bench-transport-'));
const children = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const ports = { grpc: await freePort(), http: await freePort() };
const collectorConfig = join(dir, 'collector.yaml');
writeFileSync(
  collectorConfig,
  `collector:
  data_dir: ${join(dir, 'collector')}
  log_level: warn
grpc:
  listen: 127.0.0.1:${ports.grpc}
http:
  listen: 127.0.0.1:${ports.http}
`,
);
const init = await run(process.execPath, [COLLECTOR_BIN, 'init', '--config', collectorConfig]);
const apiKey = /stk_[\w-]+/.exec(init.stdout)?.[0];
const caFile = join(dir, 'collector/pki/ca.crt');
const ca = readFileSync(caFile);
const address = `127.0.0.1:${ports.grpc}`;

function startProc(args, readyUrl) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  return waitUntil(`${readyUrl}`, async () => {
    if (child.exitCode !== null) throw new Error(`${args[0]} exited with ${child.exitCode}`);
    try {
      return (await fetch(readyUrl)).status < 500;
    } catch {
      return false;
    }
  }).then(() => child);
}
const collector = await startProc(
  [
    ...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE] : []),
    ...NODE_FLAGS,
    COLLECTOR_BIN,
    'run',
    '--config',
    collectorConfig,
  ],
  `http://127.0.0.1:${ports.http}/healthz`,
);
const token = async () => {
  const res = await fetch(`http://127.0.0.1:${ports.http}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}` },
  });
  if (res.status !== 201) throw new Error(`token endpoint answered ${res.status}`);
  return (await res.json()).token;
};
const spoolHead = async () => {
  const text = await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text();
  return Number(/^sealtrail_spool_head_offset(?:\{[^}]*\})? (-?\d+)/m.exec(text)?.[1] ?? -1);
};

/**
 * Until the spool head reaches `target`. Each look is a scrape of the collector's /metrics
 * (about 1 ms of its event loop: every 20 ms that was ~0.6 µs per event of the collector CPU
 * that run 1 measures), so it looks rarely while far off and every 10 ms near the end.
 */
async function waitForHead(first, target, timeoutMs = 600_000) {
  const t0 = performance.now();
  for (;;) {
    const head = await spoolHead();
    if (head >= target) return;
    const elapsed = performance.now() - t0;
    if (elapsed > timeoutMs) throw new Error('timed out waiting for the whole journal');
    const rate = (head - first) / Math.max(elapsed, 1); // records per ms
    const left = rate > 0 ? (target - head) / rate : Number.POSITIVE_INFINITY;
    await sleep(Math.min(250, Math.max(10, left / 2)));
  }
}

console.log(
  `transport bench (Node ${process.version}, ${cpus().length} cores): TLS loopback, batches of ${BATCH}, ` +
    `window ${WINDOW}, the collector verifying every record and syncing its spool before it acks`,
);

// ---- 1. the real agent binary, a pre-filled journal ----------------------------------------------
if (PARTS.has(1)) {
  const dataDir = join(dir, 'agent');
  await run(process.execPath, [
    AGENT_BIN,
    'enroll',
    '--collector',
    address,
    '--token',
    await token(),
    '--ca',
    caFile,
    '--data-dir',
    dataDir,
  ]);
  const identity = loadOrCreateIdentity(dataDir);
  const host = { id: identity.agentId, name: 'bench-agent', os: process.platform };
  const journal = new Journal({
    dir: journalPaths(dataDir).journal,
    agentId: identity.agentId,
    hooks: { chainStart: (s) => chainStartEvent(host, identity.publicKey, s) },
    limits: { maxBytes: 64 * 1024 ** 3, maxRecords: 1e12 },
  });
  await journal.open();
  let bytes = 0;
  for (let n = 0; n < ONE_AGENT_EVENTS; n += 5_000) {
    const events = [];
    for (let i = n; i < Math.min(ONE_AGENT_EVENTS, n + 5_000); i++)
      events.push(canonicalBytes(benchEvent(host, i)));
    bytes += events.reduce((s, e) => s + e.length, 0);
    await journal.append({ events });
  }
  await journal.close();
  const agentHttp = await freePort();
  const agentConfig = join(dir, 'agent.yaml');
  writeFileSync(
    agentConfig,
    `agent:
  data_dir: ${dataDir}
  log_level: warn
collector:
  address: ${address}
  batch_max_records: ${BATCH}
  batch_max_bytes: 1MiB
  max_inflight_batches: ${WINDOW}
http:
  listen: 127.0.0.1:${agentHttp}
sources:
  - type: http_ingest
    name: apps
`,
  );
  const before = await spoolHead();
  const target = before + ONE_AGENT_EVENTS + 1; // record 0 and the events (checkpoints come on top)
  const agent = await startProc(
    [
      ...(AGENT_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', AGENT_PROFILE] : []),
      ...AGENT_NODE_FLAGS,
      AGENT_BIN,
      'run',
      '--config',
      agentConfig,
    ],
    `http://127.0.0.1:${agentHttp}/healthz`,
  );
  // Timed from the first stored record to the last, so the agent's start-up (its journal
  // verification on open) is not counted.
  await waitUntil('the first record', async () => (await spoolHead()) > before);
  const stop = meter(collector.pid);
  const agentCpu0 = procCpuSeconds(agent.pid);
  const agentThreads0 = procThreadCpu(agent.pid);
  const collectorThreads0 = procThreadCpu(collector.pid);
  const first = await spoolHead();
  await waitForHead(first, target);
  const m = stop();
  const agentCpuS = procCpuSeconds(agent.pid) - agentCpu0;
  const n = target - first;
  const agentThreads = threadSplit(agentThreads0, procThreadCpu(agent.pid), n);
  const collectorThreads = threadSplit(collectorThreads0, procThreadCpu(collector.pid), n);
  const rate = n / m.wall;
  console.log(
    `1 agent (real agent binary, journal of ${fmt(ONE_AGENT_EVENTS)} × ~${Math.round(bytes / ONE_AGENT_EVENTS)} B): ` +
      `${fmt(rate)} events/s (${((rate * (bytes / ONE_AGENT_EVENTS)) / 1024 ** 2).toFixed(1)} MiB/s), ` +
      `collector CPU ${m.collectorCpu.toFixed(0)}% (${usPer(m.cpuS, n)} µs/event), ` +
      `agent CPU ${((100 * agentCpuS) / m.wall).toFixed(0)}% (${usPer(agentCpuS, n)} µs/event), RSS ${m.rss} MiB`,
  );
  console.log(`  agent CPU by thread (µs/event): ${agentThreads}`);
  console.log(`  collector CPU by thread (µs/event): ${collectorThreads}`);
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
}

// ---- 2. one protocol-level agent: the collector alone --------------------------------------------
if (PARTS.has(2)) {
  const a = new BenchAgent(address, ca);
  await a.enroll(await token());
  a.seal(ONE_AGENT_EVENTS);
  await a.connect();
  const stop = meter(collector.pid);
  const threads0 = procThreadCpu(collector.pid);
  await waitUntil('every ack', () => a.acked === a.head, 600_000);
  const m = stop();
  const threads = threadSplit(threads0, procThreadCpu(collector.pid), ONE_AGENT_EVENTS);
  const rate = ONE_AGENT_EVENTS / m.wall;
  const size = a.bytes / a.records.length;
  console.log(
    `1 agent (protocol client, ${fmt(ONE_AGENT_EVENTS)} × ~${Math.round(size)} B sealed beforehand): ` +
      `${fmt(rate)} events/s (${((rate * size) / 1024 ** 2).toFixed(1)} MiB/s), ` +
      `collector CPU ${m.collectorCpu.toFixed(0)}% (${usPer(m.cpuS, ONE_AGENT_EVENTS)} µs/event), ` +
      `bench client CPU ${m.benchCpu.toFixed(0)}%, RSS ${m.rss} MiB`,
  );
  console.log(`  collector CPU by thread (µs/event): ${threads}`);
  a.close();
}

// ---- 3. 200 agents at once ----------------------------------------------------------------------
if (PARTS.has(3)) {
  const agents = [];
  for (let i = 0; i < AGENTS; i++) agents.push(new BenchAgent(address, ca));
  const tokens = [];
  for (let i = 0; i < AGENTS; i++) tokens.push(await token());
  await Promise.all(agents.map((a, i) => a.enroll(tokens[i])));
  await Promise.all(agents.map((a) => a.connect()));
  const total = () => agents.reduce((n, a) => n + Number(a.acked) + 1, 0);
  const produced = () => agents.reduce((n, a) => n + a.records.length, 0);
  const idle = meter(collector.pid);
  await sleep(2_000);
  const im = idle();
  console.log(
    `${AGENTS} agents connected, idle: collector CPU ${im.collectorCpu.toFixed(1)}%, RSS ${im.rss} MiB`,
  );

  // 3a. each at RATE events/s, in ticks of 100 ms.
  const perTick = RATE / 10;
  const start = total();
  const stop = meter(collector.pid);
  const ticker = setInterval(() => {
    for (const a of agents) a.seal(perTick);
  }, 100);
  await sleep(SECONDS * 1000);
  clearInterval(ticker);
  await waitUntil('the steady run to be acked', () => total() === produced(), 60_000);
  const m = stop();
  console.log(
    `${AGENTS} agents × ${RATE} events/s for ${SECONDS} s: ${fmt((total() - start) / m.wall)} events/s stored, ` +
      `collector CPU ${m.collectorCpu.toFixed(0)}% (${usPer(m.cpuS, total() - start)} µs/event), RSS ${m.rss} MiB (peak ${m.peak} MiB), ` +
      `bench client CPU ${m.benchCpu.toFixed(0)}%`,
  );

  // 3b. as fast as they can: BURST events each, sealed beforehand, sent together.
  const burstStart = total();
  for (const a of agents) a.seal(BURST, false);
  const bstop = meter(collector.pid);
  for (const a of agents) a.pump();
  await waitUntil('the burst to be acked', () => total() === produced(), 600_000);
  const bm = bstop();
  console.log(
    `${AGENTS} agents × ${fmt(BURST)} events, unthrottled: ${fmt((total() - burstStart) / bm.wall)} events/s stored, ` +
      `collector CPU ${bm.collectorCpu.toFixed(0)}% (${usPer(bm.cpuS, total() - burstStart)} µs/event), RSS ${bm.rss} MiB (peak ${bm.peak} MiB), ` +
      `bench client CPU ${bm.benchCpu.toFixed(0)}%`,
  );
  for (const a of agents) a.close();
}

collector.kill('SIGTERM');
await new Promise((r) => collector.once('exit', r));
