/**
 * `collector.compression: gzip`: the agent compresses its stream and the
 * collector (grpc-js negotiates per message) still verifies and stores every
 * record. Checked on the wire too: the agent's connection carries far fewer
 * bytes than the events it shipped.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import {
  agentProc,
  allocatePorts,
  collectorProc,
  freePort,
  readLines,
  tempDir,
  waitFor,
  writeConfigs,
} from './harness.js';

const EVENTS = 2000;

describe('gzip between agent and collector', () => {
  const dir = tempDir('sealtrail-e2e-gzip-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ships every event compressed', { timeout: 120_000 }, async () => {
    const ports = await allocatePorts();
    const cfg = writeConfigs(dir, ports);
    // A counting relay on the agent's path to the collector: bytes agent → collector.
    const relayPort = await freePort();
    let wireBytes = 0;
    const sockets = new Set<Socket>();
    const relay = createServer((client) => {
      const upstream = connect(ports.grpc, '127.0.0.1');
      sockets.add(client).add(upstream);
      client.on('data', (d) => {
        wireBytes += d.length;
      });
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((r) => relay.listen(relayPort, '127.0.0.1', r));
    const agentYaml = readFileSync(cfg.agent, 'utf8')
      .replace(`address: 127.0.0.1:${ports.grpc}`, `address: 127.0.0.1:${relayPort}`)
      .replace('  insecure: true\n', '  insecure: true\n  compression: gzip\n');
    expect(agentYaml).toContain('compression: gzip');
    writeFileSync(cfg.agent, agentYaml);

    const collector = collectorProc(cfg.collector, ports);
    const agent = agentProc(cfg.agent, ports);
    try {
      await collector.start();
      await agent.start();
      // Repetitive, compressible events: what audit logs mostly are.
      const body = Array.from({ length: EVENTS }, (_, i) => ({
        category: 'application',
        type: 'app.gzip.event',
        action: 'write',
        message: `user alice wrote record ${i} of the quarterly report to the shared drive`,
        attributes: { path: '/srv/share/reports/quarterly.xlsx', bytes: 4096 },
      }));
      const res = await fetch(`http://127.0.0.1:${ports.agentHttp}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(202);
      await waitFor(
        'all events exported',
        () => readLines(cfg.exportPath).filter((l) => l.type === 'app.gzip.event').length >= EVENTS,
        60_000,
      );
      const lines = readLines(cfg.exportPath).filter((l) => l.type === 'app.gzip.event');
      expect(new Set(lines.map((l) => l.id)).size).toBe(EVENTS);
      const exportedBytes = lines.reduce((n, l) => n + JSON.stringify(l).length, 0);
      // Without compression the wire carries at least the event bytes themselves.
      expect(wireBytes).toBeLessThan(exportedBytes / 3);
    } finally {
      await agent.stop();
      await collector.stop();
      for (const s of sockets) s.destroy();
      relay.close();
    }
  });
});
