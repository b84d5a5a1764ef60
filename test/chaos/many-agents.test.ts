/**
 * 200 simulated agents in this process, each with its own Ed25519 key and hash
 * chain and its own gRPC connection, stream concurrently to a real collector
 * process that is killed with SIGKILL once and stopped with SIGTERM once while
 * they send. Afterwards every event is in the export exactly once, each agent's
 * seqs run contiguously from 0, and the collector's offline verify passes for
 * all 200 chains.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '../e2e/harness.js';
import { chaosCollector, readExport, seqProblem, verifyCollector } from './lib/collector.js';
import { SimAgent } from './lib/sim-agent.js';

const AGENTS = 200;
const EVENTS_PER_AGENT = 300;
const ROUNDS = 30;
const ROUND_MS = 150;

describe('200 agents while the collector restarts twice', () => {
  const dir = tempDir('sealtrail-many-');
  const agents: SimAgent[] = [];
  afterAll(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores every event exactly once and every chain verifies', { timeout: 180_000 }, async () => {
    const started = Date.now();
    const c = await chaosCollector(dir);
    await c.proc.start();
    for (let i = 0; i < AGENTS; i++) {
      agents.push(
        new SimAgent({
          address: c.grpcAddress,
          batchRecords: 50,
          maxInflightBatches: 4,
          reconnectInitialMs: 50,
          reconnectMaxMs: 1000,
          // The channel's own reconnect backoff (default 1 s → 120 s) would dominate the test's runtime.
          channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
        }),
      );
    }
    for (const a of agents) a.start();

    const total = AGENTS * (EVENTS_PER_AGENT + 1);
    const acked = () => agents.reduce((n, a) => n + Number(a.acked) + 1, 0);
    const produced = () => agents.reduce((n, a) => n + a.records.length, 0);

    // Events keep coming in rounds while the collector is killed and stopped.
    const producing = (async () => {
      for (let r = 0; r < ROUNDS; r++) {
        for (const a of agents) a.produce(EVENTS_PER_AGENT / ROUNDS);
        await new Promise((res) => setTimeout(res, ROUND_MS));
      }
    })();

    const restarts: string[] = [];
    // Each restart comes once every agent streams to the current collector and a share is acknowledged.
    await waitFor(
      'a quarter acknowledged',
      () => acked() >= total / 4 && agents.every((a) => a.sessions >= 1),
      60_000,
    );
    restarts.push(`SIGKILL at ${acked()} acked / ${produced()} produced`);
    await c.proc.kill9();
    await c.proc.start();

    await waitFor(
      '60% acknowledged',
      () => acked() >= (total * 3) / 5 && agents.every((a) => a.sessions >= 2),
      60_000,
    );
    restarts.push(`SIGTERM at ${acked()} acked / ${produced()} produced`);
    expect(await c.proc.stop()).toBe(0);
    await c.proc.start();

    await producing;
    await waitFor('every agent acknowledged', () => agents.every((a) => a.backlog === 0), 90_000);
    await waitFor('the export caught up', () => readExport(c.exportPath).lines >= total, 30_000);
    // Anything still in flight would show up now as an extra line.
    await new Promise((r) => setTimeout(r, 500));
    await Promise.all(agents.map((a) => a.stop()));
    expect(await c.proc.stop()).toBe(0);

    expect(agents.flatMap((a) => a.errors)).toEqual([]);
    // Every agent streamed in at least three collector lifetimes.
    expect(Math.min(...agents.map((a) => a.sessions))).toBeGreaterThanOrEqual(3);

    const ex = readExport(c.exportPath);
    expect(ex.twice).toEqual([]);
    expect(ex.lines).toBe(total);
    const missing = agents.flatMap((a) => a.records.filter((r) => !ex.ids.has(r.id)).map((r) => r.id));
    expect(missing).toEqual([]);
    const problems = agents
      .map((a) => [a.agentId, seqProblem(ex.seqs.get(a.agentId) ?? [], a.records.length)])
      .filter(([, p]) => p !== null);
    expect(problems).toEqual([]);

    const { code, report } = await verifyCollector(c.dataDir);
    expect(report.agents.filter((a) => !a.ok)).toEqual([]);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.violations).toBe(0);
    expect(report.agents).toHaveLength(AGENTS);
    expect(report.records).toBe(total);
    for (const a of agents) {
      const r = report.agents.find((x) => x.agent_id === a.agentId);
      expect(r?.head.seq).toBe(String(a.head));
    }
    console.log(
      `many agents: ${AGENTS} agents, ${total} records, ${restarts.join('; ')}, ` +
        `sessions ${agents.reduce((n, a) => n + a.sessions, 0)}, ` +
        `resumed past a lost ack ${agents.reduce((n, a) => n + a.resumedPastAck, 0)}, ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
