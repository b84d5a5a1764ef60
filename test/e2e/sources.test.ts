/**
 * Sources end to end, with the real binaries: a log_tail source added to a running
 * agent by editing its file and sending SIGHUP; its lines (and a file integrity
 * change) reach the collector's export; an invalid edit plus SIGHUP leaves the
 * agent running with the previous sources.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  agentProc,
  allocatePorts,
  collectorProc,
  readLines,
  tempDir,
  waitFor,
  writeConfigs,
} from './harness.js';

describe('sources through the real agent and collector', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('SIGHUP adds a log_tail and a file_integrity source; an invalid file keeps them', {
    timeout: 120_000,
  }, async () => {
    const ports = await allocatePorts();
    const log = join(dir, 'app.log');
    const watched = join(dir, 'etc');
    mkdirSync(watched);
    writeFileSync(join(watched, 'app.conf'), 'a=1\n');
    writeFileSync(log, 'before the source existed\n');
    const cfg = writeConfigs(dir, ports);
    // The file watcher is off: this test is about SIGHUP.
    writeFileSync(
      cfg.agent,
      readFileSync(cfg.agent, 'utf8').replace(
        '  log_level: warn\n',
        '  log_level: warn\n  watch_config: false\n',
      ),
    );
    const base = readFileSync(cfg.agent, 'utf8');
    const collector = collectorProc(cfg.collector, ports);
    const agent = agentProc(cfg.agent, ports);
    await collector.start();
    await agent.start();
    try {
      writeFileSync(
        cfg.agent,
        `${base}  - type: log_tail
    name: app
    include: [${log}]
    start_at: beginning
    poll_interval: 50ms
  - type: file_integrity
    name: etc
    paths: [${watched}]
`,
      );
      agent.child!.kill('SIGHUP');
      const exported = () => readLines(cfg.exportPath);
      await waitFor(
        'the existing line',
        () => exported().some((e) => e.message === 'before the source existed'),
        30_000,
      );
      await waitFor(
        'the FIM baseline',
        () => exported().some((e) => e.type === 'fim.baseline.created'),
        30_000,
      );
      appendFileSync(log, 'after\n');
      writeFileSync(join(watched, 'app.conf'), 'a=2\n');
      await waitFor('a new line', () => exported().some((e) => e.message === 'after'), 30_000);
      await waitFor('file.modified', () => exported().some((e) => e.type === 'file.modified'), 30_000);

      // An invalid file and SIGHUP: refused, the running sources go on.
      writeFileSync(cfg.agent, `${base}  - type: log_tail\n    name: broken\n`);
      agent.child!.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 500));
      const metrics = await (await fetch(`http://127.0.0.1:${ports.agentHttp}/metrics`)).text();
      expect(metrics).toMatch(/sealtrail_agent_config_valid\{[^}]*\} 0/);
      appendFileSync(log, 'still tailing\n');
      await waitFor(
        'tailing after the refused reload',
        () => exported().some((e) => e.message === 'still tailing'),
        30_000,
      );
      const lines = exported()
        .filter((e) => (e.source as { name: string }).name === 'app')
        .map((e) => e.message);
      expect(lines).toEqual(['before the source existed', 'after', 'still tailing']);
      expect(agent.stderr).toContain('config reload refused');
    } finally {
      expect(await agent.stop()).toBe(0);
      await collector.stop();
    }
  });
});
