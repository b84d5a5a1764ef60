/**
 * A real agent streams to a real collector through a TCP fault proxy that cuts
 * connections mid-batch (and mid-ack) at random byte counts, delays chunks,
 * stalls, and black-holes a connection until keepalive notices. 20,000 events
 * posted to the agent during all this arrive in the export exactly once, the
 * agent's seqs run contiguously, and the collector's chain verifies.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newEventId } from '@sealtrail/event';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_BIN, freePort, Proc, runCli, tempDir, waitFor } from '../e2e/harness.js';
import { chaosCollector, readExport, seqProblem, verifyCollector } from './lib/collector.js';
import { FaultProxy, seededRandom } from './lib/fault-proxy.js';

const TOTAL = 20_000;
const PER_REQUEST = 250;
const SEED = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe('agent → fault proxy → collector', () => {
  const dir = tempDir('sealtrail-faults-');
  let proxy: FaultProxy | null = null;
  const procs: Proc[] = [];
  afterAll(async () => {
    await Promise.allSettled(procs.map((p) => p.stop()));
    await proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`loses and duplicates nothing (seed ${SEED})`, { timeout: 150_000 }, async () => {
    const started = Date.now();
    const c = await chaosCollector(dir);
    procs.push(c.proc);
    await c.proc.start();
    const [host, port] = c.grpcAddress.split(':');
    proxy = new FaultProxy(
      { host: host!, port: Number(port) },
      {
        cutProbability: 0.9,
        cutAfterBytesUp: [0, 1_500_000],
        // Downstream is handshakes and acks (~40 B each) and few WINDOW_UPDATEs, now that the
        // collector's receive window holds a whole batch: cut within the first few dozen acks.
        cutAfterBytesDown: [0, 600],
        cutDownstreamShare: 0.25,
        maxCuts: 30,
        delayMs: [0, 4],
        stallProbability: 0.02,
        stallMs: [200, 1_500],
        maxStalls: 8,
        blackholeProbability: 0.1,
        maxBlackholes: 1,
      },
      seededRandom(SEED),
    );
    const proxyPort = await proxy.listen();

    const agentHttp = await freePort();
    const agentConfig = join(dir, 'agent.yaml');
    writeFileSync(
      agentConfig,
      `agent:
  data_dir: ${join(dir, 'agent')}
  log_level: error
collector:
  address: 127.0.0.1:${proxyPort}
  insecure: true
  reconnect_initial: 50ms
  reconnect_max: 500ms
http:
  listen: 127.0.0.1:${agentHttp}
sources:
  - type: http_ingest
    name: apps
`,
    );
    const agent = new Proc(
      'agent',
      [AGENT_BIN, 'run', '--config', agentConfig],
      `http://127.0.0.1:${agentHttp}/healthz`,
    );
    procs.push(agent);
    await agent.start();

    const posted: string[] = [];
    const url = `http://127.0.0.1:${agentHttp}/v1/events`;
    let refused = 0;
    for (let r = 0; r < TOTAL / PER_REQUEST; r++) {
      const batch = Array.from({ length: PER_REQUEST }, (_, i) => {
        const n = r * PER_REQUEST + i;
        return {
          id: newEventId(),
          category: 'application',
          type: 'app.fault.event',
          action: 'write',
          severity: 'low',
          actor: { user: `user${n % 17}`, ip: '198.51.100.7' },
          message: `event ${n} ${'x'.repeat(150)}`,
          attributes: { n },
        };
      });
      for (let attempt = 0; ; attempt++) {
        expect(attempt).toBeLessThan(600);
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(batch),
        });
        await res.body?.cancel();
        if (res.status === 202) break;
        // Only back-pressure is expected: the journal over its high-water mark while the link is bad.
        expect(res.status).toBe(429);
        refused++;
        await new Promise((res) => setTimeout(res, 100));
      }
      posted.push(...batch.map((b) => b.id));
      await new Promise((res) => setTimeout(res, 40));
    }

    const status = async () =>
      (await (await fetch(`http://127.0.0.1:${agentHttp}/v1/status`)).json()) as {
        backlog_records: number;
        head_seq: string;
      };
    const appLines = () => readExport(c.exportPath).lines;
    // Faults go on (within their bounds) until the backlog drains; then the link is calm for the end.
    await waitFor('the agent backlog to drain', async () => (await status()).backlog_records === 0, 90_000);
    proxy.calm();
    const faults = { ...proxy.stats };
    await waitFor(
      'the export to catch up',
      async () => appLines() >= Number((await status()).head_seq) + 1,
      30_000,
    );
    await new Promise((r) => setTimeout(r, 500));

    expect(await agent.stop()).toBe(0);
    expect(await c.proc.stop()).toBe(0);

    const ex = readExport(c.exportPath);
    expect(ex.twice).toEqual([]);
    expect(posted.filter((id) => !ex.ids.has(id))).toEqual([]);
    expect(ex.seqs.size).toBe(1);
    const [agentId, seqs] = [...ex.seqs][0]!;
    expect(seqProblem(seqs, seqs.length)).toBeNull();

    const { code, report } = await verifyCollector(c.dataDir);
    expect(report.agents[0]?.fault).toBeUndefined();
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.violations).toBe(0);
    expect(report.agents.map((a) => a.agent_id)).toEqual([agentId]);
    // Every record in the chain was exported once: nothing else is in the spool.
    expect(report.records).toBe(seqs.length);
    expect(report.agents[0]!.head.seq).toBe(String(seqs.length - 1));

    const agentVerify = await runCli(AGENT_BIN, ['verify', '--data-dir', join(dir, 'agent'), '--json']);
    expect(agentVerify.code).toBe(0);
    expect(JSON.parse(agentVerify.stdout)).toMatchObject({ ok: true, records: 0 });

    console.log(JSON.stringify(faults));
    // The faults this run was about did happen.
    expect(faults.cuts).toBeGreaterThanOrEqual(5);
    expect(faults.tornChunks).toBeGreaterThanOrEqual(3);
    console.log(
      `fault proxy (seed ${SEED}): ${TOTAL} events, ${seqs.length} chain records, ${refused} x 429, ` +
        `faults ${JSON.stringify(faults)}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
