// Spool benchmark (printed, not asserted): the collector's spool alone, without gRPC or
// verification. `BENCH_SPOOL_AGENTS` agents (1) each commit batches of 1,000 records of about
// 400 bytes (UUIDv7 event ids, as agents send them) through `Spool.commit`, two commits in
// flight per agent as a stream keeps them, until `BENCH_SPOOL_RECORDS` (200,000) are in; then
// the spool is closed and opened again. CPU per record: the whole process (LevelDB's write and
// compaction threads included) and the main thread alone; compactions and the bytes they wrote,
// from LevelDB's LOG (`BENCH_SPOOL_LOG=1` prints it).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '@sealtrail/collector';
import { canonicalBytes } from '@sealtrail/event';
import { benchEvent } from './lib/workload.mjs';

const RECORDS = Number(process.env.BENCH_SPOOL_RECORDS ?? 200_000);
const AGENTS = Number(process.env.BENCH_SPOOL_AGENTS ?? 1);
const BATCH = 1_000;
const IN_FLIGHT = 2;

const dir = mkdtempSync(join(tmpdir(), 'sealtrail-bench-spool-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const spoolDir = join(dir, 'spool');

function agentState() {
  return {
    agent_id: randomUUID(),
    public_key: 'AAAA',
    hostname: 'bench',
    first_seen: new Date().toISOString(),
    last_seen: new Date().toISOString(),
    chain_id: randomUUID(),
    seq: null,
    hash: null,
    chains: [],
    records: 0,
    duplicates: 0,
  };
}

function batch(agent, from) {
  const host = { id: agent.agent_id, name: 'bench-host', os: 'linux' };
  const out = [];
  for (let i = 0; i < BATCH; i++) {
    const event = benchEvent(host, from + i);
    out.push({
      chainId: agent.chain_id,
      seq: BigInt(from + i),
      recordHash: randomBytes(32),
      eventBytes: canonicalBytes(event),
      eventId: event.id,
    });
  }
  return out;
}

/** LevelDB's LOG: how many compactions ran and how many bytes they wrote. */
function compactions() {
  let n = 0;
  let bytes = 0;
  for (const f of readdirSync(spoolDir).filter((f) => f.startsWith('LOG'))) {
    const log = readFileSync(join(spoolDir, f), 'utf8');
    if (process.env.BENCH_SPOOL_LOG) console.log(log);
    for (const m of log.matchAll(/Compacted .*? => (\d+) bytes/g)) {
      n++;
      bytes += Number(m[1]);
    }
  }
  return { n, mib: bytes / 1024 ** 2 };
}

let spool = new Spool(spoolDir);
await spool.open();
const agents = Array.from({ length: AGENTS }, agentState);
const perAgent = Math.ceil(RECORDS / AGENTS / BATCH) * BATCH;
// Built beforehand, so the clock and the CPU meters see the spool's work only.
const batches = agents.map((a) => {
  const out = [];
  for (let from = 0; from < perAgent; from += BATCH) out.push(batch(a, from));
  return out;
});
const t0 = performance.now();
const c0 = process.cpuUsage();
const m0 = process.threadCpuUsage();
await Promise.all(
  agents.map(async (a, i) => {
    const pending = [];
    for (let from = 0; from < perAgent; from += BATCH) {
      const records = batches[i][from / BATCH];
      // A stream's copy of the state per batch, as the session hands it over.
      const next = { ...a, seq: String(from + BATCH - 1), hash: 'ab'.repeat(32), records: from + BATCH };
      pending.push(spool.commit(next, records));
      if (pending.length >= IN_FLIGHT) await pending.shift();
    }
    await Promise.all(pending);
  }),
);
const wall = (performance.now() - t0) / 1000;
const c = process.cpuUsage(c0);
const m = process.threadCpuUsage(m0);
const total = perAgent * AGENTS;
const us = (cpuMicros) => (cpuMicros / total).toFixed(2);
const fsyncs = spool.fsyncs;
await spool.close();
const o0 = performance.now();
spool = new Spool(spoolDir);
await spool.open();
const openMs = performance.now() - o0;
const head = spool.headOffset;
await spool.close();
const comp = compactions();
console.log(
  `spool bench (Node ${process.version}): ${total.toLocaleString('en-US')} records × ~${batches[0][0][0].eventBytes.length} B, ` +
    `${AGENTS} agent(s), batches of ${BATCH}: ${Math.round(total / wall).toLocaleString('en-US')} records/s, ` +
    `CPU ${us(c.user + c.system)} µs/record (main thread ${us(m.user + m.system)}), ` +
    `${fsyncs} group commits, ${comp.n} compactions writing ${comp.mib.toFixed(1)} MiB; ` +
    `reopen ${openMs.toFixed(0)} ms (head ${head})`,
);
