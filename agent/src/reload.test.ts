/**
 * Hot reload of a running agent (in process, real files, real HTTP): sources are
 * added and removed under load without losing or repeating events; an invalid file
 * keeps the running config and sets `sealtrail_agent_config_valid 0`; a source that
 * cannot start fails alone.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditEvent, decodeEvent } from '@sealtrail/event';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from './agent.js';
import { loadAgentConfig } from './config.js';
import { Journal } from './journal/journal.js';
import { waitUntil } from './sources/common/testkit.js';

describe('agent hot reload', () => {
  let dir: string;
  let file: string;
  let agent: Agent | null = null;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sealtrail-reload-'));
    file = join(dir, 'agent.yaml');
  });
  afterEach(async () => {
    await agent?.stop();
    agent = null;
    rmSync(dir, { recursive: true, force: true });
  });

  const yaml = (sources: string, watch = true) => `agent:
  data_dir: ${join(dir, 'data')}
  log_level: fatal
  watch_config: ${watch}
collector:
  address: 127.0.0.1:1
  insecure: true
  reconnect_initial: 1s
  reconnect_max: 5s
http:
  listen: 127.0.0.1:0
sources:
  - type: http_ingest
    name: apps
${sources}`;

  const tail = (name: string, path: string) => `  - type: log_tail
    name: ${name}
    include: [${path}]
    start_at: beginning
    poll_interval: 20ms
    glob_interval: 20ms
`;

  async function sealed(): Promise<AuditEvent[]> {
    const j = new Journal({
      dir: join(dir, 'data/journal'),
      agentId: '00000000-0000-0000-0000-000000000000',
      hooks: { chainStart: () => Buffer.alloc(0) },
    });
    await j.open({ startChain: false });
    const out: AuditEvent[] = [];
    for await (const r of j.records()) if (r.seq > 0n) out.push(decodeEvent(r.eventBytes!));
    await j.close();
    return out;
  }

  async function metric(name: string): Promise<string | undefined> {
    const text = await (await fetch(`http://${agent!.httpAddress}/metrics`)).text();
    return text
      .split('\n')
      .find((l) => l.startsWith(name))
      ?.split(' ')
      .at(-1);
  }

  it('adds and removes sources under load without losing or repeating events', async () => {
    const a = join(dir, 'a.log');
    const b = join(dir, 'b.log');
    writeFileSync(a, '');
    writeFileSync(b, '');
    // Reloads are driven by hand here (the watcher is tested below), so each result is this step's.
    const cfg = (sources: string) => yaml(sources, false);
    writeFileSync(file, cfg(tail('a', a)));
    agent = new Agent(loadAgentConfig(file), { configPath: file });
    await agent.start();

    // Load: a writer appends to both files and an application posts events, all the while.
    let line = 0;
    let posted = 0;
    let running = true;
    const writer = (async () => {
      while (running) {
        line++;
        appendFileSync(a, `a ${line}\n`);
        appendFileSync(b, `b ${line}\n`);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const poster = (async () => {
      while (running) {
        const res = await fetch(`http://${agent!.httpAddress}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            category: 'application',
            type: 'app.tick',
            action: 'tick',
            message: `p ${posted + 1}`,
          }),
        });
        if (res.status === 202) posted++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

    await pause(300);
    let r = await agent.reload(loadAgentConfig(writeAndReturn(file, cfg(tail('a', a) + tail('b', b)))));
    expect(r).toMatchObject({ ok: true, started: ['b'], stopped: [], unchanged: ['apps', 'a'] });
    await pause(300);
    r = await agent.reload(loadAgentConfig(writeAndReturn(file, cfg(tail('b', b)))));
    expect(r).toMatchObject({ ok: true, started: [], stopped: ['a'], unchanged: ['apps', 'b'] });
    await pause(300);
    // back again: it resumes from its saved offset
    r = await agent.reload(loadAgentConfig(writeAndReturn(file, cfg(tail('a', a) + tail('b', b)))));
    expect(r).toMatchObject({ ok: true, started: ['a'], stopped: [] });
    await pause(300);
    // changed settings of one source: that source alone restarts
    r = await agent.reload(
      loadAgentConfig(writeAndReturn(file, cfg(tail('a', a) + tail('b', b).replace('20ms\n', '30ms\n')))),
    );
    expect(r).toMatchObject({ ok: true, started: ['b'], stopped: ['b'], unchanged: ['apps', 'a'] });
    await pause(300);
    running = false;
    await Promise.all([writer, poster]);
    const lastLine = line;
    await waitUntil('tails to catch up', async () => {
      const s = agent!.source('a') as unknown as { snapshot(): Record<string, number> };
      const t = agent!.source('b') as unknown as { snapshot(): Record<string, number> };
      return s.snapshot()[a] === (await size(a)) && t.snapshot()[b] === (await size(b));
    });
    await agent.stop();
    agent = null;

    const events = await sealed();
    const aLines = events.filter((e) => e.source.name === 'a').map((e) => Number(e.message!.split(' ')[1]));
    const bLines = events.filter((e) => e.source.name === 'b').map((e) => Number(e.message!.split(' ')[1]));
    const all = Array.from({ length: lastLine }, (_, i) => i + 1);
    expect(aLines).toEqual(all);
    // b started after line 1 was written but reads from the beginning: every line too
    expect(bLines).toEqual(all);
    const ticks = events.filter((e) => e.type === 'app.tick').map((e) => Number(e.message!.split(' ')[1]));
    expect(ticks).toEqual(Array.from({ length: posted }, (_, i) => i + 1));
  }, 60_000);

  it('an invalid file keeps the running config, says why and sets the metric; a valid one clears it', async () => {
    writeFileSync(file, yaml(''));
    agent = new Agent(loadAgentConfig(file), { configPath: file });
    await agent.start();
    expect(await metric('sealtrail_agent_config_valid')).toBe('1');

    writeFileSync(file, yaml('  - type: log_tail\n    name: bad\n    include: /not/a/list\n'));
    const r = await agent.reload();
    expect(r.ok).toBe(false);
    expect(r.error).toContain('sources[1] (name: bad).include: expected a list of paths or globs');
    expect(await metric('sealtrail_agent_config_valid')).toBe('0');
    expect(Object.keys(agent.sourceStatus())).toEqual(['apps']);
    expect(
      (
        await fetch(`http://${agent.httpAddress}/v1/events`, {
          method: 'POST',
          body: '{"category":"application","type":"a.b","action":"x"}',
          headers: { 'content-type': 'application/json' },
        })
      ).status,
    ).toBe(202);

    // and through the file watcher: a fixed file is picked up without a signal
    const log = join(dir, 'c.log');
    writeFileSync(log, 'hello\n');
    writeFileSync(file, yaml(tail('c', log)));
    await waitUntil('watcher reload', () => 'c' in agent!.sourceStatus(), 10_000);
    // A source is listed once it is being started; the reload that starts it sets the metric
    // when it has finished: wait for the reloads the watcher queued, then look.
    await (agent as unknown as { reloading: Promise<unknown> }).reloading;
    expect(await metric('sealtrail_agent_config_valid')).toBe('1');
  }, 30_000);

  it('a source that cannot start fails alone and readiness names it', async () => {
    writeFileSync(
      file,
      yaml('  - type: journald\n    name: journal\n    journalctl_path: /nonexistent/journalctl\n'),
    );
    agent = new Agent(loadAgentConfig(file), { configPath: file });
    await agent.start();
    expect(agent.sourceStatus()).toEqual({
      apps: { type: 'http_ingest', failed: null },
      journal: {
        type: 'journald',
        failed: expect.stringContaining('journald source "journal": /nonexistent/journalctl not found'),
      },
    });
    const ready = await (await fetch(`http://${agent.httpAddress}/readyz`)).json();
    expect(ready.checks.sources).toContain('journal: journald source "journal"');
    expect(await metric('sealtrail_source_up{source="journal"')).toBe('0');
    const res = await fetch(`http://${agent.httpAddress}/v1/events`, {
      method: 'POST',
      body: '{"category":"application","type":"a.b","action":"x"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(202);
  });
});

function writeAndReturn(file: string, text: string): string {
  writeFileSync(file, text);
  return file;
}

async function size(path: string): Promise<number> {
  const { stat } = await import('node:fs/promises');
  return (await stat(path)).size;
}
