// One Sealtrail run: a real collector and agent (child processes on this Node), N events posted
// over HTTP, timed until the collector's file export holds them all.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExportFollower, verifyExport, waitForLines } from './export-watch.mjs';
import {
  alive,
  cpuSeconds,
  freePort,
  machineCpu,
  peakRssMb,
  start,
  stop,
  stoppingEverything,
  waitHttp,
} from './proc.mjs';
import { eventFactory, requestBody } from './workload.mjs';

const HOST_NAME = 'bench-host';
const SOURCE_NAME = 'bench';

function post(agent, port, body, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        path: '/v1/events',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': body.length },
        timeout: timeoutMs,
      },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST /v1/events: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Selected Prometheus samples (unlabelled or summed over labels) from a /metrics page. */
async function scrape(url, names) {
  const out = {};
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(900) })).text();
    for (const line of text.split('\n')) {
      const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
      if (m && names[m[1]]) out[names[m[1]]] = (out[names[m[1]]] ?? 0) + Number(m[3]);
    }
  } catch {}
  return out;
}

const AGENT_METRICS = {
  sealtrail_journal_backlog_records: 'agent_backlog',
  sealtrail_shipper_records_sent_total: 'shipped',
  sealtrail_shipper_records_acked_total: 'acked',
};
const COLLECTOR_METRICS = {
  sealtrail_receiver_records_stored_total: 'spooled',
  sealtrail_exporter_file_lag_records: 'export_lag',
};

function tail(file, lines = 20) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * opts: { root, dir, n, batch, concurrency, eventBytes, highWater, stallMs, deadlineMs, cpuProf, nodeFlags, log }
 * Returns the figures; throws (after stopping both processes) when the run cannot complete.
 */
export async function runSealtrail(opts) {
  const { root, dir, n, batch, concurrency, log } = opts;
  const [grpcPort, collectorHttp, agentHttp] = [await freePort(), await freePort(), await freePort()];
  const exportPath = join(dir, 'export', 'events.jsonl');
  const profDir = join(dir, 'prof');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'collector.yaml'),
    `collector:
  data_dir: ${join(dir, 'collector')}
grpc:
  listen: 127.0.0.1:${grpcPort}
  insecure: true
http:
  listen: 127.0.0.1:${collectorHttp}
exporters:
  - type: file
    name: archive
    path: ${exportPath}
`,
  );
  writeFileSync(
    join(dir, 'agent.yaml'),
    `agent:
  data_dir: ${join(dir, 'agent')}
  name: ${HOST_NAME}
collector:
  address: 127.0.0.1:${grpcPort}
  insecure: true
http:
  listen: 127.0.0.1:${agentHttp}
${opts.highWater ? `journal:\n  high_water_records: ${opts.highWater}\n` : ''}sources:
  - type: http_ingest
    name: ${SOURCE_NAME}
`,
  );

  const nodeArgs = (name) => [
    ...(opts.nodeFlags ?? []),
    ...(opts.cpuProf
      ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`]
      : []),
  ];
  const logs = { collector: join(dir, 'collector.log'), agent: join(dir, 'agent.log') };
  let collector = null;
  let agent = null;
  const procs = () => [collector, agent].filter(Boolean);
  const ensureAlive = () => {
    for (const p of procs()) {
      if (!alive(p)) throw new Error(`${p.name} exited unexpectedly (${JSON.stringify(p.exit)})`);
    }
  };

  const result = { ports: { grpc: grpcPort, collector_http: collectorHttp, agent_http: agentHttp } };
  const follower = new ExportFollower(exportPath);
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  let sampler = null;
  try {
    collector = start(
      'collector',
      process.execPath,
      [
        ...nodeArgs('collector'),
        join(root, 'collector/bin/sealtrail-collector.js'),
        'run',
        '--config',
        join(dir, 'collector.yaml'),
      ],
      { cwd: dir, logFile: logs.collector },
    );
    await waitHttp(`http://127.0.0.1:${collectorHttp}/readyz`, { entry: collector, timeoutMs: 30_000 });
    agent = start(
      'agent',
      process.execPath,
      [
        ...nodeArgs('agent'),
        join(root, 'agent/bin/sealtrail-agent.js'),
        'run',
        '--config',
        join(dir, 'agent.yaml'),
      ],
      { cwd: dir, logFile: logs.agent },
    );
    // ready = journal open and the stream to the collector established
    await waitHttp(`http://127.0.0.1:${agentHttp}/readyz`, { entry: agent, timeoutMs: 30_000 });
    result.pids = { collector: collector.child.pid, agent: agent.child.pid };

    // record 0 (agent.chain.start) reaches the export before the clock starts
    const startDeadline = Date.now() + 30_000;
    while (follower.lines < 1) {
      ensureAlive();
      if (Date.now() > startDeadline)
        throw new Error('record 0 (agent.chain.start) was not exported within 30 s');
      await follower.poll();
      await sleep(20);
    }

    const factory = eventFactory({
      targetBytes: opts.eventBytes,
      hostName: HOST_NAME,
      sourceName: SOURCE_NAME,
    });
    const batches = Math.ceil(n / batch);
    let next = 0;
    let answered = 0;
    let retries429 = 0;
    let retries503 = 0;
    let retryWaitMs = 0;
    const latencies = [];
    const cpu0 = { agent: cpuSeconds(agent.child.pid), collector: cpuSeconds(collector.child.pid) };
    const benchCpu0 = process.cpuUsage();
    const machine0 = machineCpu();

    const poster = async () => {
      for (;;) {
        const k = next++;
        if (k >= batches) return;
        const from = k * batch;
        const to = Math.min(n, from + batch);
        const body = requestBody(factory, from, to);
        let waitedMs = 0; // bounded: one batch waits at most stallMs in total for 429/503
        for (;;) {
          const t = performance.now();
          const res = await post(httpAgent, agentHttp, body, 120_000);
          latencies.push(performance.now() - t);
          if (res.status === 202) {
            const accepted = JSON.parse(res.body).accepted;
            if (accepted !== to - from) throw new Error(`batch ${k}: ${accepted} of ${to - from} accepted`);
            answered += to - from;
            break;
          }
          if ((res.status === 429 || res.status === 503) && waitedMs < opts.stallMs) {
            if (res.status === 429) retries429++;
            else retries503++;
            const wait = Math.max(0.05, Number(res.headers['retry-after']) || 1) * 1000;
            retryWaitMs += wait;
            waitedMs += wait;
            await sleep(wait);
            ensureAlive();
            continue;
          }
          throw new Error(`batch ${k}: POST /v1/events answered ${res.status}: ${res.body.slice(0, 300)}`);
        }
      }
    };

    const timeline = [];
    const t0 = performance.now();
    // once a second: what was answered, journalled, shipped, spooled and exported (not on the hot path)
    sampler = setInterval(async () => {
      const t_s = Math.round((performance.now() - t0) / 100) / 10;
      const posted = answered;
      const exported = follower.benchLines;
      const [a, c] = await Promise.all([
        scrape(`http://127.0.0.1:${agentHttp}/metrics`, AGENT_METRICS),
        scrape(`http://127.0.0.1:${collectorHttp}/metrics`, COLLECTOR_METRICS),
      ]);
      timeline.push({ t_s, posted, ...a, ...c, exported });
    }, 1000);
    let ingestDone = null;
    let exportedAtIngest = null;
    const posting = Promise.all(Array.from({ length: concurrency }, poster)).then(() => {
      ingestDone = performance.now();
      exportedAtIngest = follower.benchLines;
    });
    let postError = null;
    posting.catch((err) => {
      postError = err;
    });
    const doneAt = await waitForLines(follower, n, {
      stallMs: opts.stallMs,
      deadlineMs: opts.deadlineMs,
      check: () => {
        if (postError) throw postError;
        ensureAlive();
      },
    });
    const t1 = doneAt;
    clearInterval(sampler);
    await posting; // answered before the export completed, or it throws here
    const benchCpu = process.cpuUsage(benchCpu0);

    // figures are read before anything is stopped
    const pa = agent.child.pid;
    const pc = collector.child.pid;
    const figures = {
      agent: { rss_mb: peakRssMb(pa), cpu_s: cpuSeconds(pa) },
      collector: { rss_mb: peakRssMb(pc), cpu_s: cpuSeconds(pc) },
    };
    figures.agent.cpu_run_s = figures.agent.cpu_s - cpu0.agent;
    figures.collector.cpu_run_s = figures.collector.cpu_s - cpu0.collector;
    // CPU the rest of the machine used meanwhile: other load makes the figures incomparable
    const machine1 = machineCpu();
    const benchCpuS = (benchCpu.user + benchCpu.system) / 1e6;
    const machine =
      machine0 && machine1
        ? {
            busy_s: machine1.busy - machine0.busy,
            capacity_s: machine1.total - machine0.total,
            other_s: Math.max(
              0,
              machine1.busy -
                machine0.busy -
                figures.agent.cpu_run_s -
                figures.collector.cpu_run_s -
                benchCpuS,
            ),
          }
        : null;
    if (machine) machine.other_pct = (100 * machine.other_s) / machine.capacity_s;

    latencies.sort((a, b) => a - b);
    const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    const e2eS = (t1 - t0) / 1000;
    const ingestS = (ingestDone - t0) / 1000;
    Object.assign(result, {
      n,
      batch,
      concurrency,
      e2e_s: e2eS,
      e2e_events_per_s: n / e2eS,
      ingest_s: ingestS,
      ingest_events_per_s: n / ingestS,
      exported_when_ingest_done: exportedAtIngest,
      post_latency_ms: { p50: q(0.5), p99: q(0.99), max: latencies[latencies.length - 1] },
      retries: { http_429: retries429, http_503: retries503, waited_s: retryWaitMs / 1000 },
      agent: figures.agent,
      collector: figures.collector,
      rss_mb_total: figures.agent.rss_mb + figures.collector.rss_mb,
      cpu_s_total: figures.agent.cpu_s + figures.collector.cpu_s,
      bench_client_cpu_s: benchCpuS,
      machine_cpu: machine,
      timeline,
    });
  } catch (err) {
    for (const p of stoppingEverything() ? [] : procs()) {
      log(`--- ${p.name} log (last lines) ---\n${tail(logs[p.name])}`);
    }
    throw err;
  } finally {
    clearInterval(sampler);
    await follower.close();
    httpAgent.destroy();
    // agent first: it would otherwise keep reconnecting to a stopped collector
    const exits = {};
    if (agent) exits.agent = await stop(agent, 20_000);
    if (collector) exits.collector = await stop(collector, 20_000);
    result.exits = exits;
  }

  log('verifying the export file');
  result.export = await verifyExport(exportPath, n);
  if (opts.cpuProf && existsSync(profDir)) {
    result.profiles = readdirSync(profDir).map((f) => join(profDir, f));
  }
  return result;
}
