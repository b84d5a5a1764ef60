/**
 * The foundation's promise: 20,000 events posted to a real agent, the collector
 * and then the agent killed with SIGKILL mid-stream and restarted, and the
 * export file still holds every event exactly once, with the collector's
 * verified chain covering all of them.
 */
import { rmSync } from 'node:fs';
import { newEventId } from '@sealtrail/event';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AGENT_BIN,
  agentProc,
  allocatePorts,
  COLLECTOR_BIN,
  collectorProc,
  readLines,
  runCli,
  tempDir,
  waitFor,
  writeConfigs,
} from './harness.js';

const TOTAL = 20_000;
const PER_REQUEST = 250;

describe('agent → collector → file export survives kill -9 on both sides', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exports every posted event exactly once and the chain verifies', { timeout: 240_000 }, async () => {
    const ports = await allocatePorts();
    const cfg = writeConfigs(dir, ports);
    const collector = collectorProc(cfg.collector, ports);
    const agent = agentProc(cfg.agent, ports);
    await collector.start();
    await agent.start();

    // The test names every event, so it can retry a request whose answer was lost
    // (the agent killed mid-request) with the same ids, as a careful app would.
    const requests: { id: string; body: string }[][] = [];
    for (let r = 0; r < TOTAL / PER_REQUEST; r++) {
      const batch = [];
      for (let i = 0; i < PER_REQUEST; i++) {
        const id = newEventId();
        batch.push({
          id,
          body: JSON.stringify({
            id,
            category: 'application',
            type: 'app.e2e.event',
            action: 'write',
            severity: 'low',
            actor: { user: `user${i % 17}`, ip: '198.51.100.7' },
            message: `event ${r * PER_REQUEST + i}`,
            attributes: { n: r * PER_REQUEST + i },
          }),
        });
      }
      requests.push(batch);
    }

    const url = `http://127.0.0.1:${ports.agentHttp}/v1/events`;
    let retries = 0;
    const post = async (batch: { body: string }[]) => {
      for (;;) {
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: `[${batch.map((b) => b.body).join(',')}]`,
          });
          if (res.status === 202) return;
          expect([429, 503]).toContain(res.status);
        } catch {
          // Connection refused or reset: the agent is down; retry the same events.
        }
        retries++;
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    const exported = () => readLines(cfg.exportPath).filter((l) => l.type === 'app.e2e.event').length;

    for (let r = 0; r < requests.length; r++) {
      if (r === 20) {
        // Collector killed while the agent streams: the agent must hold its backlog and resume.
        await waitFor('some events exported', () => exported() > 0, 30_000);
        await collector.kill9();
        await collector.start();
      }
      if (r === 50) {
        // Agent killed with a request in flight and a backlog not yet shipped.
        const inflight = post(requests[r]!);
        await new Promise((res) => setTimeout(res, 5));
        await agent.kill9();
        await agent.start();
        await inflight;
        continue;
      }
      await post(requests[r]!);
    }

    await waitFor(`${TOTAL} events exported`, () => exported() >= TOTAL, 120_000);
    // Anything still in flight would show up now as a duplicate line.
    await new Promise((r) => setTimeout(r, 1000));

    expect(await agent.stop()).toBe(0);
    expect(await collector.stop()).toBe(0);

    const lines = readLines(cfg.exportPath);
    const ids = lines.filter((l) => l.type === 'app.e2e.event').map((l) => l.id as string);
    const counts = new Map<string, number>();
    for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    const posted = requests.flat().map((b) => b.id);
    const missing = posted.filter((id) => !counts.has(id));
    const twice = [...counts].filter(([, n]) => n > 1);
    expect(missing).toEqual([]);
    expect(twice).toEqual([]);
    expect(ids.length).toBe(TOTAL);
    // One chain for the agent's whole life: its record 0, then the events, restarts included.
    const starts = lines.filter((l) => l.type === 'agent.chain.start');
    expect(starts).toHaveLength(1);
    const seqs = lines.map((l) => BigInt((l.sealtrail as { seq: string }).seq));
    expect(seqs[0]).toBe(0n);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]! > seqs[i - 1]!).toBe(true);

    const verify = await runCli(COLLECTOR_BIN, ['verify', '--data-dir', `${dir}/collector`, '--json']);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const report = JSON.parse(verify.stdout);
    expect(report.ok).toBe(true);
    expect(report.agents).toHaveLength(1);
    // Every exported line is a verified record; re-posted copies (same id) are in the chain too.
    expect(report.records).toBeGreaterThanOrEqual(TOTAL + 1);
    expect(report.agents[0].head.seq).toBe(String(report.records - 1));
    const maxExportedSeq = seqs[seqs.length - 1]!;
    expect(BigInt(report.agents[0].head.seq) >= maxExportedSeq).toBe(true);

    const agentVerify = await runCli(AGENT_BIN, ['verify', '--data-dir', `${dir}/agent`, '--json']);
    expect(agentVerify.code).toBe(0);
    expect(JSON.parse(agentVerify.stdout)).toMatchObject({ ok: true, records: 0 });
    console.log(`kill -9 e2e: ${TOTAL} events, ${retries} client retries, ${report.records} chain records`);
  });
});
