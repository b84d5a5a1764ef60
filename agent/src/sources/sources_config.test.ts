/** Config errors of the sources section, with their exact messages (what `check-config` prints). */
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '@sealtrail/config';
import { ConfigError } from '@sealtrail/errors';
import { describe, expect, it } from 'vitest';
import { agentConfigSchema, parseAgentConfig } from '../config.js';

function problems(yaml: string): string {
  try {
    parseAgentConfig(`collector:\n  insecure: true\n${yaml}`);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a config error');
}

describe('sources config errors name the path and the source', () => {
  it('wrong type of a list', () => {
    expect(
      problems(`sources:
  - type: http_ingest
    name: apps
  - type: file_integrity
    name: etc
    paths: /etc
`),
    ).toBe('config: 1 problem:\n  sources[1] (name: etc).paths: expected a list of paths');
  });

  it('unknown keys, bad units, bad enums, bad cron', () => {
    const msg = problems(`sources:
  - type: log_tail
    name: auth
    include: [/var/log/auth.log]
    start_at: middle
    max_line_bytes: 12 parsecs
    bogus: 1
  - type: inventory
    name: inv
    tables:
      users: { schedule: "every day" }
  - type: journald
    name: j
    priority: loud
`);
    expect(
      msg
        .split('\n')
        .slice(1)
        .map((l) => l.trim())
        .sort(),
    ).toEqual(
      [
        'sources[0] (name: auth): unknown key "bogus"',
        'sources[0] (name: auth).max_line_bytes: expected a size like "64KiB", "512MiB", got "12 parsecs"',
        'sources[0] (name: auth).start_at: Invalid option: expected one of "end"|"beginning"',
        'sources[1] (name: inv).tables.users.schedule: expected a cron expression, e.g. "*/5 * * * *" (5 fields, or 6 with seconds first)',
        'sources[2] (name: j).priority: Invalid option: expected one of "emerg"|"alert"|"crit"|"err"|"warning"|"notice"|"info"|"debug"',
      ].sort(),
    );
  });

  it('an unknown source type', () => {
    expect(problems(`sources:\n  - type: syslog_udp\n    name: x\n`)).toBe(
      "config: 1 problem:\n  sources[0] (name: x).type: Invalid discriminator value. Expected 'http_ingest' | 'file_integrity' | 'log_tail' | 'inventory' | 'journald'",
    );
  });

  it('redaction rules: a required field cannot be dropped; a hash needs a key', () => {
    const msg = problems(`redact:
  - { field: action, action: drop }
  - { field: actor.ip, action: hash }
  - { field: id, action: mask }
`);
    expect(msg).toContain('redact[0].field: a required field cannot be dropped; use mask or hash');
    expect(msg).toContain('redact[1].key: Invalid input: expected string, received undefined');
    expect(msg).toContain('redact[2].field: this field is set by the agent and cannot be redacted');
  });

  it('duplicate source names', () => {
    expect(
      problems(`sources:
  - { type: http_ingest, name: a }
  - { type: journald, name: a }
`),
    ).toBe('config: 1 problem:\n  sources[1] (name: a).name: duplicate source name "a"');
  });

  it('a complete valid config with every source type parses, with defaults', () => {
    const cfg = parseAgentConfig(`collector:
  insecure: true
redact:
  - { field: actor.ip, action: mask, with: "x.x.x.x" }
sources:
  - { type: http_ingest, name: apps, auth_token: "\${TOKEN:-0123456789abcdef}" }
  - { type: file_integrity, name: etc, paths: [/etc], ignore: ["*.swp"] }
  - { type: log_tail, name: auth, include: [/var/log/auth.log], parser: linux_auth }
  - { type: log_tail, name: app, include: [/var/log/app/*.log], parser: { type: json, mapping: { "actor.user": "{user}" } } }
  - { type: inventory, name: inv }
  - { type: journald, name: journal, units: [ssh.service] }
`);
    expect(cfg.sources.map((s) => s.type)).toEqual([
      'http_ingest',
      'file_integrity',
      'log_tail',
      'log_tail',
      'inventory',
      'journald',
    ]);
    const auth = cfg.sources[2]!;
    expect(auth.type === 'log_tail' && auth.parser).toEqual({ type: 'linux_auth' });
    expect(auth.type === 'log_tail' && auth.max_line_bytes).toBe(32 * 1024);
    const fim = cfg.sources[1]!;
    expect(fim.type === 'file_integrity' && fim.max_hash_bytes_per_sec).toBe(32 * 1024 * 1024);
    const http = cfg.sources[0]!;
    expect(http.type === 'http_ingest' && http.auth_token).toBe('0123456789abcdef');
  });
});

describe('sample configs', () => {
  it('installers/config/agent.linux.yaml is valid', () => {
    const file = fileURLToPath(new URL('../../../installers/config/agent.linux.yaml', import.meta.url));
    const cfg = loadConfigFile(file, agentConfigSchema, { env: {} });
    expect(cfg.sources.map((s) => `${s.type}:${s.name}`)).toEqual([
      'http_ingest:apps',
      'file_integrity:system-files',
      'log_tail:auth',
      'log_tail:audit',
      'journald:journal',
      'inventory:inventory',
    ]);
  });
});
