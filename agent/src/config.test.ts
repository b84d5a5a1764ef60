import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@sealtrail/errors';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig, parseAgentConfig } from './config.js';

const MINIMAL = fileURLToPath(new URL('../../config/agent.yaml', import.meta.url));

/** The ConfigError message of parsing `text`, or fails when it parses. */
function problems(text: string): string {
  try {
    parseAgentConfig(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error(`expected a config error for:\n${text}`);
}

const BASE = 'collector:\n  insecure: true\n';

describe('agent config', () => {
  it('parses the design’s minimal agent.yaml with defaults filled in', () => {
    const cfg = loadAgentConfig(MINIMAL);
    expect(cfg).toEqual({
      agent: { data_dir: '.sealtrail/agent', name: hostname(), log_level: 'info' },
      collector: {
        address: '127.0.0.1:7701',
        insecure: true,
        batch_max_records: 1000,
        batch_max_bytes: 1024 * 1024,
        max_inflight_batches: 8,
        reconnect_initial: 250,
        reconnect_max: 30_000,
        reconnect_multiplier: 2,
      },
      http: { listen: '127.0.0.1:7780' },
      journal: { max_event_bytes: 64 * 1024, high_water_records: 1_000_000 },
      sources: [
        {
          type: 'http_ingest',
          name: 'apps',
          max_body_bytes: 16 * 1024 * 1024,
          max_events_per_request: 10_000,
        },
      ],
    });
  });

  it('fills every section from defaults when only insecure is given', () => {
    const cfg = parseAgentConfig(BASE);
    expect(cfg.agent.data_dir).toBe('/var/lib/sealtrail/agent');
    expect(cfg.collector.address).toBe('127.0.0.1:7701');
    expect(cfg.http.listen).toBe('127.0.0.1:7780');
    expect(cfg.sources).toEqual([]);
  });

  it('parses units in sizes and durations', () => {
    const cfg = parseAgentConfig(
      `${BASE}  batch_max_bytes: 2MiB\n  reconnect_initial: 1s\n  reconnect_max: 5m\njournal:\n  max_event_bytes: 128KiB\n`,
    );
    expect(cfg.collector.batch_max_bytes).toBe(2 * 1024 * 1024);
    expect(cfg.collector.reconnect_initial).toBe(1000);
    expect(cfg.collector.reconnect_max).toBe(300_000);
    expect(cfg.journal.max_event_bytes).toBe(128 * 1024);
  });

  it('substitutes environment variables in values, with a fallback', () => {
    process.env.SEALTRAIL_TEST_ADDR = '10.0.0.5:7701';
    try {
      const cfg = parseAgentConfig(
        `collector:\n  insecure: true\n  address: \${SEALTRAIL_TEST_ADDR}\nagent:\n  data_dir: \${SEALTRAIL_TEST_UNSET:-/srv/st}\n`,
      );
      expect(cfg.collector.address).toBe('10.0.0.5:7701');
      expect(cfg.agent.data_dir).toBe('/srv/st');
    } finally {
      delete process.env.SEALTRAIL_TEST_ADDR;
    }
    expect(() => parseAgentConfig(`${BASE}  address: \${SEALTRAIL_TEST_UNSET}\n`)).toThrow(
      /collector\.address: environment variable SEALTRAIL_TEST_UNSET is not set/,
    );
  });

  it('names the path of an unknown key', () => {
    expect(problems(`${BASE}agent:\n  data_dir: x\n  datadir: y\n`)).toMatch(
      /^ {2}agent: unknown key "datadir"$/m,
    );
    expect(problems(`${BASE}colector: {}\n`)).toMatch(/^ {2}unknown key "colector"$/m);
    expect(problems(`${BASE}sources:\n  - type: http_ingest\n    name: apps\n    paths: [a]\n`)).toMatch(
      /sources\[0\] \(name: apps\): unknown key "paths"/,
    );
  });

  it('names the path of a wrong type', () => {
    expect(problems(`${BASE}  batch_max_records: many\n`)).toMatch(
      /collector\.batch_max_records: .*expected number, received string/,
    );
    expect(problems('collector:\n  insecure: "yes"\n')).toMatch(/collector\.insecure: .*expected boolean/);
    expect(problems(`${BASE}  address: nope\n`)).toMatch(/collector\.address: expected "host:port"/);
    expect(problems(`${BASE}  batch_max_bytes: lots\n`)).toMatch(
      /collector\.batch_max_bytes: expected a size like "64KiB"/,
    );
    expect(problems(`${BASE}sources:\n  type: http_ingest\n`)).toMatch(/sources: .*expected array/);
    expect(problems(`${BASE}sources:\n  - type: journald\n    name: j\n`)).toMatch(
      /sources\[0\] \(name: j\)\.type: /,
    );
  });

  it('lists every problem, each on its own line', () => {
    const msg = problems(`${BASE}  batch_max_records: 0\nhttp:\n  listen: 7780\n`);
    expect(msg).toMatch(/: 2 problems:/);
    expect(msg).toMatch(/^ {2}collector\.batch_max_records: /m);
    expect(msg).toMatch(/^ {2}http\.listen: /m);
  });

  it('refuses duplicate source names, naming the second', () => {
    expect(
      problems(
        `${BASE}sources:\n  - type: http_ingest\n    name: apps\n  - type: http_ingest\n    name: apps\n`,
      ),
    ).toMatch(/sources\[1\] \(name: apps\)\.name: duplicate source name "apps"/);
  });

  it('refuses insecure: false (and a missing insecure) naming collector.insecure', () => {
    expect(problems('collector:\n  insecure: false\n')).toMatch(
      /collector\.insecure: TLS .* set insecure: true/,
    );
    expect(problems('agent:\n  data_dir: x\n')).toMatch(/collector\.insecure: /);
  });

  it('refuses duplicate YAML keys', () => {
    expect(problems(`${BASE}collector:\n  insecure: true\n`)).toMatch(/invalid YAML/);
  });

  it('names the file when loading one, and a missing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealtrail-agent-config-'));
    try {
      const file = join(dir, 'agent.yaml');
      writeFileSync(file, 'collector:\n  insecure: false\n');
      expect(() => loadAgentConfig(file)).toThrow(new RegExp(`^${file}: 1 problem`));
      expect(() => loadAgentConfig(join(dir, 'missing.yaml'))).toThrow(
        /missing\.yaml: cannot read config file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
