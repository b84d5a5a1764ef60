/**
 * TLS end to end with the real binaries: `sealtrail-collector init` makes the PKI, the
 * collector serves TLS from it, `token create` issues a one-time token, `sealtrail-agent
 * enroll` pins the CA by fingerprint and registers the agent's key, and an agent running
 * over TLS ships what applications post into the collector's export file. A used token is
 * refused with a clear message; an operator's revoke stops the agent's stream.
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { newEventId } from '@sealtrail/event';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AGENT_BIN,
  agentProc,
  allocatePorts,
  COLLECTOR_BIN,
  collectorProc,
  type Proc,
  readLines,
  runCli,
  tempDir,
  waitFor,
  writeConfigs,
} from './harness.js';

const EVENTS = 300;

describe('agent → collector over TLS with an enrolled agent', () => {
  const dir = tempDir('sealtrail-e2e-tls-');
  const running: Proc[] = [];
  afterAll(async () => {
    for (const p of running) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('init, token, enroll with a pinned CA, stream over TLS, export; a used token is refused', {
    timeout: 120_000,
  }, async () => {
    const ports = await allocatePorts();
    const pkiDir = join(dir, 'pki');
    // By name, as operators do: grpc-js puts the dialled host in TLS SNI, and Node warns
    // (DEP0123) when that is an IP address.
    const cfg = writeConfigs(dir, ports, '', { tls: { pkiDir }, collectorHost: 'localhost' });

    // The collector's PKI: CA, server certificate, admin API key, token secret.
    const init = await runCli(COLLECTOR_BIN, ['init', '--dir', pkiDir]);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const fingerprint = /CA fingerprint\s+(sha256:[0-9a-f]{64})/.exec(init.stdout)?.[1];
    const apiKey = /^\s+(stk_\S+)$/m.exec(init.stdout)?.[1];
    expect(fingerprint, init.stdout).toBeDefined();
    expect(apiKey, init.stdout).toBeDefined();
    for (const secret of ['ca.key', 'server.key', 'api-keys', 'token.secret'])
      expect(statSync(join(pkiDir, secret)).mode & 0o777, secret).toBe(0o600);
    // init never overwrites keys.
    const again = await runCli(COLLECTOR_BIN, ['init', '--dir', pkiDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists; init never overwrites keys/);

    // An agent that has not enrolled has no CA to trust: a config error, before anything runs.
    const unenrolled = await runCli(AGENT_BIN, ['run', '--config', cfg.agent]);
    expect(unenrolled.code).toBe(2);
    expect(unenrolled.stderr).toContain(
      `collector.ca_file: cannot read ${join(cfg.agentDataDir, 'collector-ca.crt')} (ENOENT); run \`sealtrail-agent enroll\` first`,
    );

    const collector = collectorProc(cfg.collector, ports);
    running.push(collector);
    await collector.start();

    const created = await runCli(COLLECTOR_BIN, [
      'token',
      'create',
      '--dir',
      pkiDir,
      '--ttl',
      '10m',
      '--json',
    ]);
    expect(created.code).toBe(0);
    const { token, expires } = JSON.parse(created.stdout) as { token: string; expires: string };
    expect(Date.parse(expires) - Date.now()).toBeGreaterThan(9 * 60_000);

    const address = `localhost:${ports.grpc}`;
    const enrolled = await runCli(AGENT_BIN, [
      'enroll',
      '--collector',
      address,
      '--token',
      token,
      '--ca-fingerprint',
      fingerprint!,
      '--config',
      cfg.agent,
    ]);
    expect(enrolled.stderr).toBe('');
    expect(enrolled.code).toBe(0);
    const agentId = /enrolled as agent ([0-9a-f-]{36}) with /.exec(enrolled.stdout)?.[1];
    expect(agentId, enrolled.stdout).toBeDefined();
    expect(JSON.parse(readFileSync(join(cfg.agentDataDir, 'agent.json'), 'utf8')).agent_id).toBe(agentId);
    // The pinned CA is what the agent trusts from now on.
    expect(readFileSync(join(cfg.agentDataDir, 'collector-ca.crt'), 'utf8').trim()).toBe(
      readFileSync(join(pkiDir, 'ca.crt'), 'utf8').trim(),
    );

    // The token is spent: another agent enrolling with it is refused, saying why.
    const reused = await runCli(AGENT_BIN, [
      'enroll',
      '--collector',
      address,
      '--token',
      token,
      '--ca-fingerprint',
      fingerprint!,
      '--data-dir',
      join(dir, 'second-agent'),
    ]);
    expect(reused.code).toBe(1);
    expect(reused.stderr.trim()).toBe(
      `sealtrail-agent: enrollment refused by ${address}: enrollment token was already used`,
    );
    // And a fingerprint that is not the collector's CA is refused before any token is sent.
    const wrongPin = await runCli(AGENT_BIN, [
      'enroll',
      '--collector',
      address,
      '--token',
      token,
      '--ca-fingerprint',
      `sha256:${'0'.repeat(64)}`,
      '--data-dir',
      join(dir, 'third-agent'),
    ]);
    expect(wrongPin.code).toBe(1);
    expect(wrongPin.stderr).toMatch(/no certificate presented by .* has fingerprint sha256:0{64}/);

    const agent = agentProc(cfg.agent, ports);
    running.push(agent);
    await agent.start();
    // Ready means the stream is up: TLS verified against the pinned CA, the challenge signed.
    const agentReady = `http://127.0.0.1:${ports.agentHttp}/readyz`;
    await waitFor('agent stream up', async () => (await fetch(agentReady)).status === 200, 20_000);

    const ids = Array.from({ length: EVENTS }, () => newEventId());
    for (let i = 0; i < EVENTS; i += 100) {
      const res = await fetch(`http://127.0.0.1:${ports.agentHttp}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          ids.slice(i, i + 100).map((id, k) => ({
            id,
            category: 'authentication',
            type: 'auth.login.failure',
            action: 'login',
            outcome: 'failure',
            actor: { user: `user${(i + k) % 7}`, ip: '203.0.113.9' },
          })),
        ),
      });
      expect(res.status).toBe(202);
    }
    const exported = () => readLines(cfg.exportPath).filter((l) => l.type === 'auth.login.failure');
    await waitFor(`${EVENTS} events exported`, () => exported().length >= EVENTS, 30_000);
    const lines = exported();
    expect(lines.map((l) => l.id)).toEqual(ids);
    for (const l of lines) expect((l.sealtrail as { agent_id: string }).agent_id).toBe(agentId);

    // The operator sees the enrolled agent, then revokes it: its stream is refused from then on.
    const cliApi = ['--url', `http://127.0.0.1:${ports.collectorHttp}`, '--api-key', apiKey!];
    const list = await runCli(COLLECTOR_BIN, ['agent', 'list', ...cliApi]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(agentId);
    const revoke = await runCli(COLLECTOR_BIN, [
      'agent',
      'revoke',
      agentId!,
      '--reason',
      'e2e revoke',
      ...cliApi,
    ]);
    expect(revoke.code).toBe(0);
    expect(revoke.stdout.trim()).toBe(`agent ${agentId} revoked`);
    await waitFor(
      'agent refused as revoked',
      async () => {
        const res = await fetch(agentReady);
        const body = (await res.json()) as { checks: Record<string, string> };
        return (
          res.status === 503 && /refused: revoked: .*e2e revoke/.test(body.checks.collector_stream ?? '')
        );
      },
      20_000,
    );

    expect(await agent.stop()).toBe(0);
    expect(await collector.stop()).toBe(0);
    const verify = await runCli(COLLECTOR_BIN, ['verify', '--data-dir', join(dir, 'collector'), '--json']);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, agents: [{ agent_id: agentId, ok: true }] });
  });
});
