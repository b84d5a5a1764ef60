import { fileURLToPath } from 'node:url';
import { ConfigError } from '@sealtrail/errors';
import { describe, expect, it } from 'vitest';
import { loadCollectorConfig, parseCollectorConfig } from './config.js';

const MINIMAL = fileURLToPath(new URL('../../config/collector.yaml', import.meta.url));

function problems(text: string): string {
  try {
    parseCollectorConfig(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error(`expected a config error for:\n${text}`);
}

const BASE = 'grpc:\n  insecure: true\n';

describe('collector config', () => {
  it('parses the design’s minimal collector.yaml with defaults filled in', () => {
    expect(loadCollectorConfig(MINIMAL)).toEqual({
      collector: { data_dir: '.sealtrail/collector', log_level: 'info', dedupe_window: 7 * 86_400_000 },
      grpc: { listen: '127.0.0.1:7701', insecure: true, max_message_bytes: 16 * 1024 * 1024 },
      http: { listen: '127.0.0.1:7700' },
      exporters: [
        {
          type: 'file',
          name: 'archive',
          path: '.sealtrail/export/events.jsonl',
          filter: { min_severity: 'info' },
          schema: 'native',
          batch_max_records: 1000,
          batch_max_bytes: 8 * 1024 * 1024,
          batch_timeout: 0,
          retry_initial_backoff: 500,
          retry_max_backoff: 60_000,
          compress: true,
          keep_files: 0,
        },
      ],
    });
  });

  it('fills every section from defaults when only insecure is given', () => {
    const cfg = parseCollectorConfig(BASE);
    expect(cfg.collector.data_dir).toBe('/var/lib/sealtrail/collector');
    expect(cfg.grpc.listen).toBe('127.0.0.1:7701');
    expect(cfg.http.listen).toBe('127.0.0.1:7700');
    expect(cfg.exporters).toEqual([]);
  });

  it('parses units in sizes and durations', () => {
    const cfg = parseCollectorConfig(`${BASE}  max_message_bytes: 4MiB\ncollector:\n  dedupe_window: 1d\n`);
    expect(cfg.grpc.max_message_bytes).toBe(4 * 1024 * 1024);
    expect(cfg.collector.dedupe_window).toBe(86_400_000);
  });

  it('names the path of an unknown key', () => {
    expect(problems(`${BASE}  port: 7701\n`)).toMatch(/^ {2}grpc: unknown key "port"$/m);
    expect(problems(`${BASE}spool: {}\n`)).toMatch(/^ {2}unknown key "spool"$/m);
    expect(
      problems(`${BASE}exporters:\n  - type: file\n    name: archive\n    path: a\n    rotate: daily\n`),
    ).toMatch(/exporters\[0\] \(name: archive\): unknown key "rotate"/);
  });

  it('names the path of a wrong type or a missing field', () => {
    expect(problems(`${BASE}  max_message_bytes: huge\n`)).toMatch(
      /grpc\.max_message_bytes: expected a size like "64KiB"/,
    );
    expect(problems(`${BASE}collector:\n  dedupe_window: forever\n`)).toMatch(
      /collector\.dedupe_window: expected a duration like "250ms"/,
    );
    expect(problems(`${BASE}collector:\n  log_level: loud\n`)).toMatch(/collector\.log_level: /);
    expect(problems(`${BASE}exporters:\n  - type: file\n    name: archive\n`)).toMatch(
      /exporters\[0\] \(name: archive\)\.path: .*expected string/,
    );
    expect(problems(`${BASE}exporters:\n  - type: file\n    name: archive\n    path: [a]\n`)).toMatch(
      /exporters\[0\] \(name: archive\)\.path: .*expected string, received array/,
    );
    expect(problems(`${BASE}exporters:\n  - type: splunk\n    name: s\n`)).toMatch(
      /exporters\[0\] \(name: s\)\.type: /,
    );
  });

  it('refuses duplicate exporter names, naming the second', () => {
    expect(
      problems(
        `${BASE}exporters:\n  - type: file\n    name: archive\n    path: a\n  - type: file\n    name: archive\n    path: b\n`,
      ),
    ).toMatch(/exporters\[1\] \(name: archive\)\.name: duplicate exporter name "archive"/);
  });

  it('refuses insecure: false (and a missing insecure) naming grpc.insecure', () => {
    expect(problems('grpc:\n  insecure: false\n')).toMatch(/grpc\.insecure: TLS .* set insecure: true/);
    expect(problems('collector:\n  data_dir: x\n')).toMatch(/grpc\.insecure: /);
  });
});
