#!/usr/bin/env node
/**
 * log_tail end to end: N linux_auth lines in a file → a real agent (log_tail, journal, gRPC)
 * → a real collector (verify, spool) → its file export. Prints figures; asserts nothing
 * about time.
 *
 *   node bench/tail-e2e.mjs [N=300000]   (npm run build first; Node 24: npx node …)
 *
 * Both processes start first (collector ready, agent streaming); the tail is then added by
 * a reload (SIGHUP) and the clock runs from the signal until the export holds all N lines.
 * Reading and shipping overlap, as on a host that finds a large log: the agent tails,
 * seals, checkpoints, ships and deletes acknowledged records at once. CPU is each process's
 * user+system over that window.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExportFollower } from './lib/export-watch.mjs';
import { cpuSeconds, freePort, peakRssMb, start, stop, waitHttp } from './lib/proc.mjs';
import { writeAuthLog } from './lib/workload.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const n = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 300_000);
const dir = mkdtempSync(join(tmpdir(), 'sealtrail-tail-e2e-'));

try {
  const file = join(dir, 'auth.log');
  writeAuthLog(file, n);

  const [grpcPort, collectorHttp, agentHttp] = [await freePort(), await freePort(), await freePort()];
  const exportFile = join(dir, 'export', 'events.jsonl');
  writeFileSync(
    join(dir, 'collector.yaml'),
    `collector:\n  data_dir: ${join(dir, 'collector')}\ngrpc:\n  listen: 127.0.0.1:${grpcPort}\n  insecure: true\n` +
      `http:\n  listen: 127.0.0.1:${collectorHttp}\nexporters:\n  - type: file\n    name: archive\n    path: ${exportFile}\n`,
  );
  const agentYaml = join(dir, 'agent.yaml');
  const base =
    `agent:\n  data_dir: ${join(dir, 'agent')}\n  name: bench-host\ncollector:\n  address: 127.0.0.1:${grpcPort}\n  insecure: true\n` +
    `http:\n  listen: 127.0.0.1:${agentHttp}\nsources:\n  - type: http_ingest\n    name: apps\n`;
  writeFileSync(agentYaml, base);

  const collector = start(
    'collector',
    process.execPath,
    [join(ROOT, 'collector/bin/sealtrail-collector.js'), 'run', '--config', join(dir, 'collector.yaml')],
    { cwd: dir, logFile: join(dir, 'collector.log') },
  );
  await waitHttp(`http://127.0.0.1:${collectorHttp}/readyz`, { entry: collector });
  const agent = start(
    'agent',
    process.execPath,
    [join(ROOT, 'agent/bin/sealtrail-agent.js'), 'run', '--config', agentYaml],
    { cwd: dir, logFile: join(dir, 'agent.log') },
  );
  await waitHttp(`http://127.0.0.1:${agentHttp}/readyz`, { entry: agent });

  writeFileSync(
    agentYaml,
    `${base}  - type: log_tail\n    name: auth\n    include: [${file}]\n    start_at: beginning\n` +
      '    parser: linux_auth\n',
  );
  const cpu0 = { agent: cpuSeconds(agent.child.pid), collector: cpuSeconds(collector.child.pid) };
  const t0 = performance.now();
  process.kill(agent.child.pid, 'SIGHUP');

  // The tail's lines in the export (checkpoints and record 0 are in the file too).
  const follower = new ExportFollower(exportFile, '"kind":"log_tail"');
  let grewAt = performance.now();
  while (follower.benchLines < n) {
    await new Promise((r) => setTimeout(r, 50));
    if (await follower.poll()) grewAt = performance.now();
    else if (performance.now() - grewAt > 30_000) {
      const log = readFileSync(join(dir, 'agent.log'), 'utf8').split('\n').slice(-5).join('\n');
      throw new Error(`export stalled at ${follower.benchLines} of ${n} lines for 30 s; agent log:\n${log}`);
    }
  }
  const tEnd = performance.now();
  await follower.close();
  const seconds = (tEnd - t0) / 1000;
  const cpu = {
    agent: cpuSeconds(agent.child.pid) - cpu0.agent,
    collector: cpuSeconds(collector.child.pid) - cpu0.collector,
  };
  const rss = { agent: peakRssMb(agent.child.pid), collector: peakRssMb(collector.child.pid) };
  await stop(agent);
  await stop(collector);
  console.log(
    JSON.stringify({
      bench: 'log_tail_end_to_end',
      lines: n,
      seconds: +seconds.toFixed(2),
      lines_per_second: Math.round(n / seconds),
      agent_cpu_us_per_line: +((cpu.agent * 1e6) / n).toFixed(1),
      collector_cpu_us_per_line: +((cpu.collector * 1e6) / n).toFixed(1),
      peak_rss_mb: rss,
      load_after: readFileSync('/proc/loadavg', 'utf8').split(' ')[0],
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
