/**
 * Start-up verifies only the newest 20,000 records of the journal; older ones are
 * verified as the shipper reads them. A real agent whose journal holds 25,000
 * unshipped records with one flipped byte at seq 100 starts, ships the good records
 * before the damage and never the damaged ones, starts a new chain with an
 * integrity event, and still delivers the events posted after it started.
 */
import { rmSync } from 'node:fs';
import {
  chainStartEvent,
  Journal,
  journalPaths,
  loadOrCreateIdentity,
  openWithRecovery,
  readAnchor,
} from '@sealtrail/agent';
import { canonicalBytes, newEventId } from '@sealtrail/event';
import { ClassicLevel } from 'classic-level';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AGENT_BIN,
  agentProc,
  allocatePorts,
  collectorProc,
  readLines,
  runCli,
  tempDir,
  waitFor,
  writeConfigs,
} from './harness.js';

const OFFLINE = 25_000;
const WAIT_MS = 90_000;
const BAD_SEQ = 100;

/** Seq `seq` of chain 0 as a LevelDB key ('r' u32 chain u64 seq). */
function key(seq: number): Buffer {
  const k = Buffer.alloc(13);
  k[0] = 0x72;
  k.writeBigUInt64BE(BigInt(seq), 5);
  return k;
}

describe('journal damage below the verified head region', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is found before shipping: nothing damaged leaves, a new chain carries on', {
    timeout: 180_000,
  }, async () => {
    const ports = await allocatePorts();
    const cfg = writeConfigs(dir, ports);
    const identity = loadOrCreateIdentity(cfg.agentDataDir);
    const host = { id: identity.agentId, name: 'e2e-host', os: 'linux' };
    const paths = journalPaths(cfg.agentDataDir);
    const { journal } = await openWithRecovery(
      () =>
        new Journal({
          dir: paths.journal,
          agentId: identity.agentId,
          hooks: { chainStart: (s) => chainStartEvent(host, identity.publicKey, s) },
        }),
      readAnchor(paths.anchor),
    );
    const now = new Date().toISOString();
    for (let n = 0; n < OFFLINE; n += 1000) {
      const events = Array.from({ length: 1000 }, (_, i) =>
        canonicalBytes({
          id: newEventId(),
          time: now,
          observed_time: now,
          category: 'application',
          type: 'app.e2e.offline',
          severity: 'info',
          outcome: 'success',
          action: 'write',
          host,
          source: { kind: 'http_ingest', name: 'apps' },
          attributes: { n: n + i },
        }),
      );
      await journal.append({ events });
    }
    await journal.close();
    const db = new ClassicLevel<Buffer, Buffer>(paths.journal, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    await db.open();
    const v = (await db.get(key(BAD_SEQ)))!;
    v[v.length - 5]! ^= 0x01;
    await db.put(key(BAD_SEQ), v);
    await db.close();

    const collector = collectorProc(cfg.collector, ports);
    const agent = agentProc(cfg.agent, ports);
    try {
      await collector.start();
      await agent.start();
      const res = await fetch(`http://127.0.0.1:${ports.agentHttp}/v1/events`, {
        method: 'POST',
        body: JSON.stringify(
          Array.from({ length: 10 }, (_, i) => ({
            category: 'application',
            type: 'app.e2e.live',
            action: 'write',
            attributes: { n: i },
          })),
        ),
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status).toBe(202);

      const lines = () => readLines(cfg.exportPath);
      const seen = () => {
        const byType = new Map<unknown, number>();
        for (const l of lines()) byType.set(l.type, (byType.get(l.type) ?? 0) + 1);
        return JSON.stringify([...byType]);
      };
      await waitFor(
        'the live events and the integrity event exported',
        () =>
          lines().filter((l) => l.type === 'app.e2e.live').length >= 10 &&
          lines().some((l) => l.type === 'agent.journal.corruption'),
        WAIT_MS,
      ).catch((err: Error) => {
        throw new Error(
          `${err.message}; exported ${seen()}\nagent: ${agent.stderr}\ncollector: ${collector.stderr}`,
        );
      });
      const all = lines();
      expect(all.filter((l) => l.type === 'app.e2e.live')).toHaveLength(10);
      const st = (l: Record<string, unknown>) => l.sealtrail as { chain_id: string; seq: string };
      const firstChain = st(all[0]!).chain_id;
      const offline = all.filter((l) => l.type === 'app.e2e.offline');
      // Seq 0 is the chain start, so events n = 0..98 are seqs 1..99: all of them, and nothing later.
      expect(offline.map((l) => (l.attributes as { n: number }).n)).toEqual(
        Array.from({ length: BAD_SEQ - 1 }, (_, i) => i),
      );
      expect(offline.every((l) => st(l).chain_id === firstChain)).toBe(true);
      const found = all.find((l) => l.type === 'agent.journal.corruption')!;
      expect(found.attributes).toMatchObject({
        first_bad_seq: String(BAD_SEQ),
        fault: 'record_hash_mismatch',
      });
      expect(st(found).chain_id).not.toBe(firstChain);
      const start = all.find((l) => l.type === 'agent.chain.start' && st(l).chain_id === st(found).chain_id)!;
      expect((start.attributes as { previous: unknown }).previous).toMatchObject({
        chain_id: firstChain,
        last_seq: String(BAD_SEQ - 1),
      });
      const metrics = await (await fetch(`http://127.0.0.1:${ports.agentHttp}/metrics`)).text();
      expect(metrics).toMatch(/sealtrail_journal_quarantines_total\{kind="corruption"[^}]*\} 1\n/);
    } finally {
      await agent.stop();
      await collector.stop();
    }
    // Offline, the journal now verifies; the damaged records are kept aside.
    const verify = await runCli(AGENT_BIN, ['verify', '--data-dir', cfg.agentDataDir, '--json']);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
    expect(JSON.parse(verify.stdout).quarantined).toBeGreaterThan(20_000);
  });
});
