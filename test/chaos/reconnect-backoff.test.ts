/**
 * The agent's reconnect backoff is the configured one: with `reconnect_max: 500ms` it
 * tries again at least about every half second however long the collector has been
 * away. (gRPC channels back off their own connection attempts, by default from 1 s
 * growing to 120 s, which alone would keep an agent away from a collector that is
 * back for up to two minutes.) A listener that drops every connection at once stands
 * in for an unreachable collector and notes when each attempt came.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_BIN, freePort, Proc, tempDir } from '../e2e/harness.js';

describe('agent reconnect backoff', () => {
  const dir = tempDir('sealtrail-backoff-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('retries within reconnect_max however many attempts failed', { timeout: 60_000 }, async () => {
    const attempts: number[] = [];
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      attempts.push(performance.now());
      sockets.add(s);
      s.on('error', () => undefined);
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const http = await freePort();
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `agent:
  data_dir: ${join(dir, 'agent')}
  log_level: fatal
collector:
  address: 127.0.0.1:${port}
  insecure: true
  reconnect_initial: 50ms
  reconnect_max: 500ms
http:
  listen: 127.0.0.1:${http}
sources:
  - type: http_ingest
    name: apps
`,
    );
    const agent = new Proc(
      'agent',
      [AGENT_BIN, 'run', '--config', config],
      `http://127.0.0.1:${http}/healthz`,
    );
    await agent.start();
    await new Promise((r) => setTimeout(r, 10_000));
    expect(await agent.stop()).toBe(0);
    await new Promise<void>((r) => server.close(() => r()));

    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    // 500 ms of full-jitter backoff, plus the channel's own (up to 500 ms + 20%) and scheduling noise;
    // without the bound the gaps grow 1 s, 1.6 s, 2.6 s, 4.1 s … and 10 s hold 5 attempts.
    expect(attempts.length).toBeGreaterThanOrEqual(15);
    expect(Math.max(...gaps)).toBeLessThan(2_000);
  });
});
