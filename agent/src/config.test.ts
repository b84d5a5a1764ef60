import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@sealtrail/errors';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig, parseAgentConfig } from './config.js';
import { CA_FILE_NAME, transport } from './shipper/credentials.js';

const MINIMAL = fileURLToPath(new URL('../../config/agent.yaml', import.meta.url));
/** A CA certificate (public part only) for the TLS transport. */
const TEST_CA = fileURLToPath(new URL('./shipper/testdata/ca.crt', import.meta.url));

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
      agent: { data_dir: '.sealtrail/agent', name: hostname(), log_level: 'info', watch_config: true },
      collector: {
        address: '127.0.0.1:7701',
        insecure: true,
        compression: 'none',
        batch_max_records: 1000,
        batch_max_bytes: 1024 * 1024,
        max_inflight_batches: 8,
        reconnect_initial: 250,
        reconnect_max: 30_000,
        reconnect_multiplier: 2,
      },
      http: { listen: '127.0.0.1:7780' },
      journal: {
        max_event_bytes: 64 * 1024,
        max_bytes: 1024 ** 3,
        max_records: 10_000_000,
        high_water: 0.8,
        on_full: 'block',
        commit_window: 2,
      },
      checkpoint: { every_events: 1000, every_seconds: 30, idle_seconds: 60 },
      sources: [
        {
          type: 'http_ingest',
          name: 'apps',
          max_body_bytes: 16 * 1024 * 1024,
          max_events_per_request: 10_000,
          unix_socket_mode: '0660',
          redact: [],
        },
      ],
      redact: [],
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
      `${BASE}  batch_max_bytes: 2MiB\n  reconnect_initial: 1s\n  reconnect_max: 5m\njournal:\n  max_event_bytes: 128KiB\n  max_bytes: 512MiB\n  commit_window: 5ms\n`,
    );
    expect(cfg.collector.batch_max_bytes).toBe(2 * 1024 * 1024);
    expect(cfg.collector.reconnect_initial).toBe(1000);
    expect(cfg.collector.reconnect_max).toBe(300_000);
    expect(cfg.journal.max_event_bytes).toBe(128 * 1024);
    expect(cfg.journal.max_bytes).toBe(512 * 1024 * 1024);
    expect(cfg.journal.commit_window).toBe(5);
  });

  it('reads the journal bounds and checkpoint keys, naming a bad one', () => {
    const cfg = parseAgentConfig(
      `${BASE}journal:\n  max_records: 5000\n  high_water: 0.5\n  on_full: drop_oldest\ncheckpoint:\n  every_events: 10\n  every_seconds: 2\n  idle_seconds: 5\n`,
    );
    expect(cfg.journal).toMatchObject({ max_records: 5000, high_water: 0.5, on_full: 'drop_oldest' });
    expect(cfg.checkpoint).toEqual({ every_events: 10, every_seconds: 2, idle_seconds: 5 });
    expect(problems(`${BASE}journal:\n  on_full: panic\n`)).toMatch(/journal\.on_full: /);
    expect(problems(`${BASE}journal:\n  high_water: 1.5\n`)).toMatch(/journal\.high_water: /);
    expect(problems(`${BASE}checkpoint:\n  every_events: 0\n`)).toMatch(/checkpoint\.every_events: /);
    // high_water_records gave way to high_water (a fraction of max_bytes / max_records).
    expect(problems(`${BASE}journal:\n  high_water_records: 1000\n`)).toMatch(
      /^ {2}journal: unknown key "high_water_records"$/m,
    );
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
    expect(problems(`${BASE}sources:\n  - type: nosuch\n    name: j\n`)).toMatch(
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

  it('defaults to TLS: insecure: false (or none) parses, with the TLS keys unset', () => {
    for (const text of ['collector:\n  insecure: false\n', 'agent:\n  data_dir: x\n']) {
      const cfg = parseAgentConfig(text);
      expect(cfg.collector.insecure, text).toBe(false);
      expect(cfg.collector.compression, text).toBe('none');
      for (const k of ['ca_file', 'cert_file', 'key_file', 'server_name'] as const)
        expect(cfg.collector[k], `${text} ${k}`).toBeUndefined();
    }
    const cfg = parseAgentConfig(
      'collector:\n  ca_file: /etc/st/ca.crt\n  cert_file: c.crt\n  key_file: c.key\n  server_name: collector.example\n  compression: gzip\n',
    );
    expect(cfg.collector).toMatchObject({
      insecure: false,
      ca_file: '/etc/st/ca.crt',
      cert_file: 'c.crt',
      key_file: 'c.key',
      server_name: 'collector.example',
      compression: 'gzip',
    });
    expect(problems('collector:\n  compression: brotli\n')).toMatch(/collector\.compression: /);
  });

  it('with insecure: false, the transport needs the collector CA (<data_dir>/collector-ca.crt by default)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealtrail-agent-tls-'));
    try {
      // No CA yet: a config error that names the key, the file and what to do.
      const plain = parseAgentConfig(`agent:\n  data_dir: ${dir}\ncollector:\n  insecure: false\n`);
      let err: unknown;
      try {
        transport(plain);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toBe(
        `collector.ca_file: cannot read ${join(dir, CA_FILE_NAME)} (ENOENT); run \`sealtrail-agent enroll\` first, or set collector.ca_file`,
      );
      const missing = parseAgentConfig(`collector:\n  ca_file: ${join(dir, 'nope.crt')}\n`);
      expect(() => transport(missing)).toThrow(/^collector\.ca_file: cannot read .*nope\.crt \(ENOENT\)/);

      // Once `enroll` stored the CA where the default points, TLS credentials are built from it.
      writeFileSync(join(dir, CA_FILE_NAME), readFileSync(TEST_CA));
      const t = transport(plain);
      expect(t.tls).toBe(true);
      expect(t.credentials._isSecure()).toBe(true);
      expect(t.options).toEqual({});
      // A configured CA file, a server name and gzip.
      const named = transport(
        parseAgentConfig(
          `collector:\n  ca_file: ${TEST_CA}\n  server_name: collector.example\n  compression: gzip\n`,
        ),
      );
      expect(named.tls).toBe(true);
      expect(named.options).toEqual({
        'grpc.ssl_target_name_override': 'collector.example',
        'grpc.default_compression_algorithm': 2,
      });
      // Mutual TLS needs both halves, and each must be readable.
      expect(() =>
        transport(parseAgentConfig(`collector:\n  ca_file: ${TEST_CA}\n  cert_file: c.crt\n`)),
      ).toThrow(/cert_file and key_file go together/);
      expect(() =>
        transport(
          parseAgentConfig(
            `collector:\n  ca_file: ${TEST_CA}\n  cert_file: ${join(dir, 'c.crt')}\n  key_file: ${join(dir, 'c.key')}\n`,
          ),
        ),
      ).toThrow(/^collector\.key_file: cannot read .*c\.key \(ENOENT\)/);

      // insecure: true needs no file at all.
      const insecure = transport(parseAgentConfig(`agent:\n  data_dir: ${dir}/none\n${BASE}`));
      expect(insecure.tls).toBe(false);
      expect(insecure.credentials._isSecure()).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses duplicate YAML keys', () => {
    expect(problems(`${BASE}collector:\n  insecure: true\n`)).toMatch(/invalid YAML/);
  });

  it('names the file when loading one, and a missing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealtrail-agent-config-'));
    try {
      const file = join(dir, 'agent.yaml');
      writeFileSync(file, 'collector:\n  insecure: "no"\n');
      expect(() => loadAgentConfig(file)).toThrow(new RegExp(`^${file}: 1 problem`));
      expect(() => loadAgentConfig(join(dir, 'missing.yaml'))).toThrow(
        /missing\.yaml: cannot read config file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
