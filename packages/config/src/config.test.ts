// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${VAR}` is the config syntax under test.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@sealtrail/errors';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  byteSize,
  describePath,
  duration,
  hostPort,
  loadConfigFile,
  parseBytes,
  parseConfig,
  parseDuration,
  splitHostPort,
  substituteEnv,
} from './index.js';

const schema = z
  .object({
    server: z
      .object({
        listen: hostPort().default('127.0.0.1:7701'),
        timeout: duration().default(30_000),
        max_body: byteSize().default(1024),
        token: z.string().optional(),
      })
      .strict()
      .prefault({}),
    sources: z
      .array(
        z
          .object({
            name: z.string().optional(),
            kind: z.enum(['fim', 'log_tail']),
            paths: z.array(z.string()).default([]),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

const DEFAULTS = {
  server: { listen: '127.0.0.1:7701', timeout: 30_000, max_body: 1024 },
  sources: [],
};

/** The ConfigError a parse throws (and fails the test if it does not throw). */
function configError(text: string, env: NodeJS.ProcessEnv = {}, origin = 'test.yaml'): ConfigError {
  try {
    parseConfig(text, schema, { env, origin });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('ST_CONFIG_INVALID');
    return err as ConfigError;
  }
  throw new Error('expected parseConfig to throw');
}

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

describe('parseConfig', () => {
  it('applies schema defaults to an empty or comment-only document', () => {
    expect(parseConfig('', schema, { env: {} })).toEqual(DEFAULTS);
    expect(parseConfig('# nothing here\n', schema, { env: {} })).toEqual(DEFAULTS);
  });

  it('parses values and units', () => {
    const cfg = parseConfig(
      yaml(
        'server:',
        '  listen: "[::1]:9000"',
        '  timeout: 5s',
        '  max_body: 64KiB',
        'sources:',
        '  - { name: etc, kind: fim, paths: [/etc] }',
      ),
      schema,
      { env: {} },
    );
    expect(cfg).toEqual({
      server: { listen: '[::1]:9000', timeout: 5000, max_body: 65536 },
      sources: [{ name: 'etc', kind: 'fim', paths: ['/etc'] }],
    });
  });

  describe('environment substitution', () => {
    it('replaces ${VAR} in values, anywhere in a string and in list items', () => {
      const cfg = parseConfig(
        yaml(
          'server:',
          '  listen: ${HOST}:${PORT}',
          '  token: Bearer-${TOKEN}-end',
          'sources:',
          '  - kind: log_tail',
          '    paths: ["${LOG_DIR}/auth.log", /var/log/syslog]',
        ),
        schema,
        { env: { HOST: 'collector.internal', PORT: '7701', TOKEN: 's3cr3t', LOG_DIR: '/var/log' } },
      );
      expect(cfg.server.listen).toBe('collector.internal:7701');
      expect(cfg.server.token).toBe('Bearer-s3cr3t-end');
      expect(cfg.sources[0]!.paths).toEqual(['/var/log/auth.log', '/var/log/syslog']);
    });

    it('uses ${VAR:-default} when the variable is unset or empty, and the variable when set', () => {
      const text = yaml('server:', '  listen: ${LISTEN:-0.0.0.0:7701}', '  token: ${TOKEN:-}');
      expect(parseConfig(text, schema, { env: {} }).server).toMatchObject({
        listen: '0.0.0.0:7701',
        token: '',
      });
      expect(parseConfig(text, schema, { env: { LISTEN: '' } }).server.listen).toBe('0.0.0.0:7701');
      expect(parseConfig(text, schema, { env: { LISTEN: '10.0.0.1:1' } }).server.listen).toBe('10.0.0.1:1');
    });

    it('turns $$ into a literal $, so $${VAR} stays as written', () => {
      const cfg = parseConfig(yaml('server:', '  token: "pa$$word and $${NOT_A_VAR} and $5"'), schema, {
        env: { NOT_A_VAR: 'x' },
      });
      expect(cfg.server.token).toBe('pa$word and ${NOT_A_VAR} and $5');
    });

    it('substitutes after parsing, so a value cannot inject YAML structure', () => {
      const cfg = parseConfig(yaml('server:', '  token: ${EVIL}'), schema, {
        env: { EVIL: 'x\n  listen: 6.6.6.6:1\nsources: [{kind: fim}]' },
      });
      expect(cfg.server.token).toBe('x\n  listen: 6.6.6.6:1\nsources: [{kind: fim}]');
      expect(cfg.server.listen).toBe('127.0.0.1:7701');
      expect(cfg.sources).toEqual([]);
    });

    it('leaves keys alone: a ${VAR} key is an unknown key, not substituted', () => {
      const err = configError(yaml('server:', '  ${KEY}: 1'), { KEY: 'token' });
      expect(err.message).toContain('server: unknown key "${KEY}"');
    });

    it('a substituted string is parsed by the field: durations and sizes from variables', () => {
      const text = yaml('server:', '  timeout: ${TIMEOUT}', '  max_body: ${MAX_BODY}');
      expect(parseConfig(text, schema, { env: { TIMEOUT: '2m', MAX_BODY: '1MiB' } }).server).toMatchObject({
        timeout: 120_000,
        max_body: 1_048_576,
      });
      // A bare number from a variable is still a string: milliseconds and bytes.
      expect(parseConfig(text, schema, { env: { TIMEOUT: '250', MAX_BODY: '512' } }).server).toMatchObject({
        timeout: 250,
        max_body: 512,
      });
    });

    it('a missing variable is an error naming the file, the path and the variable', () => {
      const err = configError(yaml('server:', '  listen: ${LISTEN_ADDR}'));
      expect(err.message).toBe('test.yaml: server.listen: environment variable LISTEN_ADDR is not set');
      // Set but empty, with no default, counts as missing.
      expect(configError(yaml('server:', '  listen: ${LISTEN_ADDR}'), { LISTEN_ADDR: '' }).message).toContain(
        'environment variable LISTEN_ADDR is not set',
      );
    });

    it('a missing variable in a list names the index and the item name', () => {
      const err = configError(
        yaml(
          'sources:',
          '  - { name: etc, kind: fim, paths: [/etc] }',
          '  - name: auth',
          '    kind: log_tail',
          '    paths: [/var/log/auth.log, "${APP_LOG}"]',
        ),
      );
      expect(err.message).toBe(
        'test.yaml: sources[1] (name: auth).paths[1]: environment variable APP_LOG is not set',
      );
    });
  });

  it('a YAML syntax error names the file and says invalid YAML', () => {
    const err = configError(yaml('server:', '  listen: [unclosed', '  timeout: 5s'));
    expect(err.message).toMatch(/^test\.yaml: invalid YAML: /);
    expect(configError('server: {listen: a\n').message).toMatch(/^test\.yaml: invalid YAML: /);
  });

  it('a duplicate key is a YAML error, not a silent override', () => {
    const err = configError(yaml('server:', '  listen: a:1', '  listen: b:2'));
    expect(err.message).toMatch(/^test\.yaml: invalid YAML: .*unique/i);
  });

  it('names unknown keys with their path, including list index and item name', () => {
    const err = configError(
      yaml(
        'extra: 1',
        'server:',
        '  tls: true',
        'sources:',
        '  - { name: etc, kind: fim }',
        '  - { name: auth, kind: log_tail, path: /var/log/auth.log }',
        '  - { kind: fim, recursive: true }',
      ),
    );
    const lines = err.message.split('\n').map((l) => l.trim());
    expect(lines[0]).toBe('test.yaml: 4 problems:');
    expect(lines).toContain('unknown key "extra"');
    expect(lines).toContain('server: unknown key "tls"');
    expect(lines).toContain('sources[1] (name: auth): unknown key "path"');
    expect(lines).toContain('sources[2]: unknown key "recursive"');
  });

  it('names wrong types with their path, including list index and item name', () => {
    const err = configError(
      yaml(
        'server:',
        '  timeout: true',
        '  listen: 7701',
        'sources:',
        '  - { name: etc, kind: fim, paths: /etc }',
        '  - { name: auth, kind: journald }',
        '  - { kind: fim, paths: [1] }',
      ),
    );
    const lines = err.message.split('\n').map((l) => l.trim());
    expect(lines[0]).toBe('test.yaml: 5 problems:');
    expect(lines.some((l) => l.startsWith('server.timeout: '))).toBe(true);
    expect(lines.some((l) => l.startsWith('server.listen: ') && l.includes('expected string'))).toBe(true);
    expect(
      lines.some((l) => l.startsWith('sources[0] (name: etc).paths: ') && l.includes('expected array')),
    ).toBe(true);
    expect(
      lines.some((l) => l.startsWith('sources[1] (name: auth).kind: ') && l.includes('"log_tail"')),
    ).toBe(true);
    expect(lines.some((l) => l.startsWith('sources[2].paths[0]: ') && l.includes('expected string'))).toBe(
      true,
    );
  });

  it('one problem is singular; bad units are named with the offending value', () => {
    const err = configError(yaml('server:', '  timeout: 5 fortnights'));
    expect(err.message).toBe(
      'test.yaml: 1 problem:\n  server.timeout: expected a duration like "250ms", "30s", "5m", got "5 fortnights"',
    );
    expect(configError(yaml('server:', '  max_body: 1TB')).message).toContain(
      'server.max_body: expected a size like "64KiB", "512MiB", got "1TB"',
    );
  });

  it('a root that is not a mapping is refused', () => {
    expect(configError('- a\n- b\n').message).toMatch(/^test\.yaml: 1 problem:/);
  });

  it('names "config" when no origin is given', () => {
    try {
      parseConfig('nope: 1\n', schema, { env: {} });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/^config: 1 problem:/);
    }
  });
});

describe('loadConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealtrail-config-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and validates a file, naming the file in errors', () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, yaml('server:', '  timeout: ${T:-1h}'));
    expect(loadConfigFile(good, schema, { env: {} }).server.timeout).toBe(3_600_000);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, yaml('server:', '  token: ${NOPE}'));
    expect(() => loadConfigFile(bad, schema, { env: {} })).toThrow(
      `${bad}: server.token: environment variable NOPE is not set`,
    );
  });

  it('a missing file is a ConfigError naming it', () => {
    const missing = join(dir, 'missing.yaml');
    try {
      loadConfigFile(missing, schema);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(
        new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read`),
      );
    }
  });
});

describe('substituteEnv and describePath', () => {
  it('substituteEnv leaves non-strings and keys as they are', () => {
    const input = { n: 1, b: true, z: null, '${K}': ['${V}', 2] };
    expect(substituteEnv(input, { K: 'k', V: 'v' })).toEqual({ n: 1, b: true, z: null, '${K}': ['v', 2] });
  });

  it('describePath joins keys with dots, indexes with brackets, and names list items', () => {
    const root = { sources: [{ name: 'a' }, { kind: 'fim' }, { name: 7 }] };
    expect(describePath(['sources', 0, 'paths', 2], root)).toBe('sources[0] (name: a).paths[2]');
    expect(describePath(['sources', 1, 'kind'], root)).toBe('sources[1].kind');
    expect(describePath(['sources', 2], root)).toBe('sources[2]');
    expect(describePath(['sources', 0])).toBe('sources[0]');
    expect(describePath([])).toBe('');
  });
});

describe('parseDuration', () => {
  it('parses every unit, decimals, spaces and any case', () => {
    const cases: [string, number][] = [
      ['250ms', 250],
      ['30s', 30_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['7d', 604_800_000],
      ['1.5s', 1500],
      ['0.25h', 900_000],
      [' 10 s ', 10_000],
      ['10S', 10_000],
      ['2MS', 2],
      ['0s', 0],
      ['250', 250], // a bare number is milliseconds
    ];
    for (const [text, ms] of cases) expect(parseDuration(text), text).toBe(ms);
  });

  it('returns undefined for bad units and shapes', () => {
    for (const bad of [
      '',
      's',
      '5y',
      '5 minutes',
      '5sec',
      '-5s',
      '+5s',
      '1e3s',
      '5s5',
      '1.s',
      '.5s',
      '5 m s',
      'five s',
    ]) {
      expect(parseDuration(bad), bad).toBeUndefined();
    }
  });
});

describe('parseBytes', () => {
  it('parses decimal and binary units in any case', () => {
    const cases: [string, number][] = [
      ['512', 512],
      ['512b', 512],
      ['64KiB', 65_536],
      ['64kib', 65_536],
      ['1KB', 1000],
      ['10 MB', 10_000_000],
      ['1MiB', 1_048_576],
      ['1.5MiB', 1_572_864],
      ['1GB', 1_000_000_000],
      ['2GiB', 2_147_483_648],
      ['0', 0],
    ];
    for (const [text, n] of cases) expect(parseBytes(text), text).toBe(n);
  });

  it('returns undefined for bad units and shapes', () => {
    for (const bad of ['', 'KiB', '1TB', '1TiB', '64k', '64KB/s', '-1', '1.5.2MiB', '1ib', 'lots']) {
      expect(parseBytes(bad), bad).toBeUndefined();
    }
  });
});

describe('duration() and byteSize() schemas', () => {
  it('duration() takes whole non-negative milliseconds or a string with a unit', () => {
    const d = duration();
    expect(d.parse(1500)).toBe(1500);
    expect(d.parse('1.5s')).toBe(1500);
    expect(d.safeParse(-1).success).toBe(false);
    expect(d.safeParse(1.5).success).toBe(false);
    expect(d.safeParse(true).success).toBe(false);
    const r = d.safeParse('soon');
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toBe('expected a duration like "250ms", "30s", "5m", got "soon"');
  });

  it('byteSize() takes whole non-negative bytes or a string with a unit', () => {
    const b = byteSize();
    expect(b.parse(4096)).toBe(4096);
    expect(b.parse('4KiB')).toBe(4096);
    expect(b.safeParse(-1).success).toBe(false);
    expect(b.safeParse(0.5).success).toBe(false);
    const r = b.safeParse('big');
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toBe('expected a size like "64KiB", "512MiB", got "big"');
  });
});

describe('hostPort() and splitHostPort', () => {
  it('accepts host:port with a name, IPv4 or bracketed IPv6', () => {
    for (const ok of [
      '127.0.0.1:7701',
      'localhost:80',
      'collector.example.com:443',
      '[::1]:7701',
      '[fe80::1]:0',
      '0.0.0.0:65535',
    ]) {
      expect(hostPort().safeParse(ok).success, ok).toBe(true);
    }
  });

  it('refuses anything else with one clear message', () => {
    for (const bad of [
      '127.0.0.1',
      ':7701',
      'host:',
      'host:port',
      '::1:7701',
      'http://host:80',
      'host:123456',
      'a b:1',
      '',
    ]) {
      const r = hostPort().safeParse(bad);
      expect(r.success, bad).toBe(false);
      expect(
        r.error!.issues.map((i) => i.message),
        bad,
      ).toEqual(['expected "host:port", e.g. "127.0.0.1:7701"']);
    }
  });

  it('refuses a port above 65535', () => {
    for (const bad of ['host:65536', '127.0.0.1:99999', '[::1]:70000']) {
      const r = hostPort().safeParse(bad);
      expect(r.success, bad).toBe(false);
      expect(
        r.error!.issues.map((i) => i.message),
        bad,
      ).toEqual(['port must be at most 65535']);
    }
  });

  it('splitHostPort separates host and numeric port, unbracketing IPv6', () => {
    expect(splitHostPort('127.0.0.1:7701')).toEqual({ host: '127.0.0.1', port: 7701 });
    expect(splitHostPort('collector.example.com:443')).toEqual({ host: 'collector.example.com', port: 443 });
    expect(splitHostPort('[::1]:7701')).toEqual({ host: '::1', port: 7701 });
    expect(splitHostPort('[fe80::1:2]:0')).toEqual({ host: 'fe80::1:2', port: 0 });
  });
});
