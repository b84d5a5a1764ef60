import { describe, expect, it } from 'vitest';
import { ConfigError, formatIssue, formatPath, SealtrailError } from './index.js';

describe('formatPath', () => {
  it('joins keys with dots and writes indexes in brackets', () => {
    expect(formatPath([])).toBe('');
    expect(formatPath(['actor', 'ip'])).toBe('actor.ip');
    expect(formatPath(['sources', 2, 'paths'])).toBe('sources[2].paths');
    expect(formatPath(['matrix', 0, 1])).toBe('matrix[0][1]');
    expect(formatPath([3, 'name'])).toBe('[3].name');
  });

  it('writes symbols by their description', () => {
    expect(formatPath(['a', Symbol('s')])).toBe('a.Symbol(s)');
  });
});

describe('formatIssue', () => {
  it('prefixes the message with the path, or gives the message alone at the root', () => {
    expect(formatIssue({ path: ['actor', 'ip'], message: 'expected string, received number' })).toBe(
      'actor.ip: expected string, received number',
    );
    expect(formatIssue({ path: [], message: 'expected object' })).toBe('expected object');
  });

  it('rewrites unrecognized keys as "unknown key(s)" with each key quoted', () => {
    expect(
      formatIssue({
        path: ['host'],
        message: 'Unrecognized key: "rack"',
        code: 'unrecognized_keys',
        keys: ['rack'],
      }),
    ).toBe('host: unknown key "rack"');
    expect(formatIssue({ path: [], message: 'x', code: 'unrecognized_keys', keys: ['a', 'b'] })).toBe(
      'unknown keys "a", "b"',
    );
    // Other codes keep their message even when `keys` is present.
    expect(formatIssue({ path: ['x'], message: 'kept', code: 'custom', keys: ['a'] })).toBe('x: kept');
  });

  it('uses a describer for the path when given one', () => {
    const describe = (p: readonly PropertyKey[]) => `<${p.join('/')}>`;
    expect(formatIssue({ path: ['sources', 1], message: 'bad' }, describe)).toBe('<sources/1>: bad');
    expect(formatIssue({ path: ['a'], message: 'bad' }, () => '')).toBe('bad');
  });
});

describe('SealtrailError and ConfigError', () => {
  it('carry a stable code, retry hints and the cause', () => {
    const cause = new Error('disk');
    const e = new SealtrailError('ST_X', 'boom', { cause, retryable: true, retryAfterMs: 250 });
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({
      name: 'SealtrailError',
      code: 'ST_X',
      message: 'boom',
      retryable: true,
      retryAfterMs: 250,
    });
    expect(e.cause).toBe(cause);
    const plain = new SealtrailError('ST_Y', 'plain');
    expect(plain.retryable).toBe(false);
    expect(plain.retryAfterMs).toBeUndefined();
    expect('cause' in plain).toBe(false);
  });

  it('ConfigError is a SealtrailError with code ST_CONFIG_INVALID', () => {
    const e = new ConfigError('bad');
    expect(e).toBeInstanceOf(SealtrailError);
    expect(e).toMatchObject({
      name: 'ConfigError',
      code: 'ST_CONFIG_INVALID',
      message: 'bad',
      retryable: false,
    });
  });
});
