// Journal benchmark (printed, not asserted): sealed appends with durable group
// commit, offline verification, open time with a large backlog, and RSS.
// Env: BENCH_JOURNAL_RECORDS (default 5,000,000), BENCH_JOURNAL_PRODUCERS (default 8).
// CPU is process.cpuUsage() over each phase: every thread of the process, LevelDB's
// background compaction and verify's worker thread included, so it stays meaningful on a
// shared machine; "main thread" is process.threadCpuUsage(), the JavaScript thread alone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chainStartEvent,
  Journal,
  journalPaths,
  loadOrCreateIdentity,
  openWithRecovery,
  readAnchor,
} from '@sealtrail/agent';
import { canonicalBytes, newEventId } from '@sealtrail/event';

const TOTAL = Number(process.env.BENCH_JOURNAL_RECORDS ?? 5_000_000);
const PRODUCERS = Number(process.env.BENCH_JOURNAL_PRODUCERS ?? 8);
const BATCH = 500;

const dataDir = mkdtempSync(join(tmpdir(), 'sealtrail-bench-journal-'));
const identity = loadOrCreateIdentity(dataDir);
const host = { id: identity.agentId, name: 'bench', os: 'linux' };
const paths = journalPaths(dataDir);
const make = () =>
  new Journal({
    dir: paths.journal,
    agentId: identity.agentId,
    hooks: { chainStart: (s) => chainStartEvent(host, identity.publicKey, s) },
    limits: { maxBytes: 64 * 1024 ** 3, maxRecords: 1e12 },
    commitWindowMs: 2,
  });

// One ~400-byte canonical event, as in the rsyslog peer workload; ids differ per event.
const template = (() => {
  const now = new Date().toISOString();
  return {
    time: now,
    observed_time: now,
    category: 'application',
    type: 'app.bench.event',
    severity: 'info',
    outcome: 'success',
    action: 'write',
    host,
    source: { kind: 'http_ingest', name: 'bench' },
    message: 'x'.repeat(120),
  };
})();
const sample = canonicalBytes({ ...template, id: newEventId() });
// Payloads are made before the clock starts: this measures the journal, not event building.
const pool = Array.from({ length: 20_000 }, () => canonicalBytes({ ...template, id: newEventId() }));
const rss = () => Math.round(process.memoryUsage().rss / 1024 / 1024);
/** CPU µs (user + system, all threads) since `from`. */
const cpuSince = (from) => {
  const c = process.cpuUsage(from);
  return c.user + c.system;
};
/** CPU µs of the main (JavaScript) thread alone since `from`: what one core has to carry. */
const mainCpuSince = (from) => {
  const c = process.threadCpuUsage(from);
  return c.user + c.system;
};

try {
  let journal = make();
  await journal.open();
  let next = 0;
  let cpu = process.cpuUsage();
  let mainCpu = process.threadCpuUsage();
  const started = performance.now();
  let lastReport = started;
  async function producer() {
    while (next < TOTAL) {
      const n = Math.min(BATCH, TOTAL - next);
      next += n;
      const at = next % (pool.length - BATCH);
      const events = pool.slice(at, at + n);
      await journal.append({ events });
      const now = performance.now();
      if (now - lastReport > 5000) {
        lastReport = now;
        console.error(`  … ${next} appended`);
      }
    }
  }
  await Promise.all(Array.from({ length: PRODUCERS }, producer));
  const appendS = (performance.now() - started) / 1000;
  const appendCpu = cpuSince(cpu);
  const appendMainCpu = mainCpuSince(mainCpu);
  const fsyncs = journal.fsyncs;
  const rssAfterAppend = rss();
  await journal.close();

  let t = performance.now();
  journal = make();
  await journal.open({ startChain: false });
  const openS = (performance.now() - t) / 1000;
  await journal.close();

  // What the agent does before it runs: open, check the anchor, verify what open verifies.
  t = performance.now();
  cpu = process.cpuUsage();
  const recovered = await openWithRecovery(make, readAnchor(paths.anchor));
  const startupS = (performance.now() - t) / 1000;
  const startupCpu = cpuSince(cpu);
  journal = recovered.journal;
  if (recovered.findings.length > 0)
    throw new Error(`start-up found damage: ${JSON.stringify(recovered.findings)}`);

  t = performance.now();
  cpu = process.cpuUsage();
  mainCpu = process.threadCpuUsage();
  const fault = await journal.verifyTail();
  const verifyS = (performance.now() - t) / 1000;
  const verifyCpu = cpuSince(cpu);
  const verifyMainCpu = mainCpuSince(mainCpu);
  const verifyWorker = journal.workerVerified;
  await journal.close();
  if (fault) throw new Error(`benchmark journal does not verify: ${JSON.stringify(fault)}`);

  const fmt = (n) => Math.round(n).toLocaleString('en-US');
  const perRecord = (us) => (us / TOTAL).toFixed(2);
  console.log(
    `journal benchmark — ${fmt(TOTAL)} events of ${sample.length} canonical bytes, ${PRODUCERS} producers, batches of ${BATCH}`,
  );
  console.log(
    `  append (sealed, fsynced group commit): ${fmt(TOTAL / appendS)} events/s  (${appendS.toFixed(1)} s, ${fmt(fsyncs)} fsyncs, CPU ${perRecord(appendCpu)} µs/event, main thread ${perRecord(appendMainCpu)})`,
  );
  console.log(`  LevelDB open with ${fmt(TOTAL)} unshipped records: ${(openS * 1000).toFixed(0)} ms`);
  console.log(
    `  agent start-up (openWithRecovery):     ${(startupS * 1000).toFixed(0)} ms  (CPU ${(startupCpu / 1000).toFixed(0)} ms)`,
  );
  console.log(
    `  verify (recompute every hash):         ${fmt(TOTAL / verifyS)} records/s  (${verifyS.toFixed(1)} s, CPU ${perRecord(verifyCpu)} µs/record, main thread ${perRecord(verifyMainCpu)}; ${fmt(verifyWorker)} records checked by the worker thread)`,
  );
  console.log(`  RSS after appends: ${rssAfterAppend} MB`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
