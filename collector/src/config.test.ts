import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@sealtrail/errors';
import { describe, expect, it } from 'vitest';
import { Collector } from './collector.js';
import { loadCollectorConfig, parseCollectorConfig, pkiDir } from './config.js';
import { initPki } from './pki/pki.js';

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
      grpc: { listen: '127.0.0.1:7701', insecure: true, tls: {}, max_message_bytes: 16 * 1024 * 1024 },
      http: { listen: '127.0.0.1:7700' },
      pki: {},
      enrollment: { token_ttl: 86_400_000 },
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
    const cfg = parseCollectorConfig(
      `${BASE}  max_message_bytes: 4MiB\ncollector:\n  dedupe_window: 1d\nenrollment:\n  token_ttl: 1h\n`,
    );
    expect(cfg.grpc.max_message_bytes).toBe(4 * 1024 * 1024);
    expect(cfg.collector.dedupe_window).toBe(86_400_000);
    expect(cfg.enrollment.token_ttl).toBe(3_600_000);
  });

  it('puts the PKI under <data_dir>/pki unless pki.dir says otherwise', () => {
    expect(pkiDir(parseCollectorConfig('collector:\n  data_dir: /srv/st\n'))).toBe('/srv/st/pki');
    expect(pkiDir(parseCollectorConfig('collector:\n  data_dir: /srv/st\npki:\n  dir: /etc/st/pki\n'))).toBe(
      '/etc/st/pki',
    );
    expect(problems('pki:\n  path: x\n')).toMatch(/^ {2}pki: unknown key "path"$/m);
    expect(problems('grpc:\n  tls:\n    ca_file: x\n')).toMatch(/^ {2}grpc\.tls: unknown key "ca_file"$/m);
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

  it('defaults to TLS: insecure: false (or none) parses, with the TLS files left to the PKI', () => {
    for (const text of ['grpc:\n  insecure: false\n', 'collector:\n  data_dir: x\n']) {
      const cfg = parseCollectorConfig(text);
      expect(cfg.grpc.insecure, text).toBe(false);
      expect(cfg.grpc.tls, text).toEqual({});
    }
    const cfg = parseCollectorConfig(
      'grpc:\n  tls:\n    cert_file: /etc/st/server.crt\n    key_file: /etc/st/server.key\n    client_ca_file: /etc/st/clients.crt\n',
    );
    expect(cfg.grpc.tls).toEqual({
      cert_file: '/etc/st/server.crt',
      key_file: '/etc/st/server.key',
      client_ca_file: '/etc/st/clients.crt',
    });
  });

  it('with insecure: false, starting needs the TLS files: a config error naming them, then TLS once init made them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealtrail-collector-tls-'));
    const yaml = (extra = '') =>
      `collector:\n  data_dir: ${dir}/data\n  log_level: fatal\ngrpc:\n  listen: 127.0.0.1:0\n  insecure: false\n${extra}http:\n  listen: 127.0.0.1:0\n`;
    try {
      const cfg = parseCollectorConfig(yaml());
      const pki = pkiDir(cfg);
      const refused = new Collector(cfg);
      const err = await refused.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toBe(
        `grpc.tls: cannot read the server certificate ${pki}/server.crt; run \`sealtrail-collector init --config FILE\` or set grpc.insecure: true for loopback development`,
      );
      await refused.stop();
      // Nothing was opened or started before the refusal.
      expect(existsSync(join(dir, 'data/spool'))).toBe(false);

      // Files named in grpc.tls are the ones needed.
      const named = new Collector(
        parseCollectorConfig(yaml(`  tls:\n    cert_file: ${dir}/mine.crt\n    key_file: ${dir}/mine.key\n`)),
      );
      await expect(named.start()).rejects.toThrow(`cannot read the server certificate ${dir}/mine.crt`);
      await named.stop();

      const init = await initPki(pki);
      const mtls = new Collector(
        parseCollectorConfig(yaml(`  tls:\n    client_ca_file: ${dir}/clients.crt\n`)),
      );
      await expect(mtls.start()).rejects.toThrow(`grpc.tls: cannot read the client CA ${dir}/clients.crt`);
      await mtls.stop();

      // With what `init` wrote, the collector serves gRPC over TLS.
      const collector = new Collector(cfg);
      await collector.start();
      try {
        expect(collector.grpcAddress).toMatch(/^127\.0\.0\.1:\d+$/);
        const ready = await fetch(`http://${collector.httpAddress}/readyz`);
        expect(ready.status).toBe(200);
        const [host, port] = collector.grpcAddress.split(':');
        // A TLS handshake that verifies the server against the CA `init` made, speaking h2.
        const peer = await new Promise<string>((resolve, reject) => {
          const sock = connect({
            host,
            port: Number(port),
            ca: [readFileSync(init.paths.caCert)],
            servername: 'localhost',
            ALPNProtocols: ['h2'],
          });
          sock.once('secureConnect', () => {
            resolve(sock.alpnProtocol || '');
            sock.end();
          });
          sock.once('error', reject);
        });
        expect(peer).toBe('h2');
      } finally {
        await collector.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
