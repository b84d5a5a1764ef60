import type { AuditEvent } from '@sealtrail/event';
import { describe, expect, it } from 'vitest';
import { compileRedaction, redactRulesSchema } from './redact.js';

const event: AuditEvent = {
  id: '0190a5e4-0000-7000-8000-000000000002',
  time: '2024-01-01T00:00:00.000Z',
  observed_time: '2024-01-01T00:00:00.000Z',
  category: 'authentication',
  type: 'auth.login.failure',
  severity: 'low',
  outcome: 'failure',
  action: 'login',
  actor: { user: 'alice', ip: '203.0.113.9' },
  host: { id: '0190a5e4-0000-7000-8000-000000000001', name: 'h', os: 'linux' },
  source: { kind: 'log_tail', name: 'auth' },
  message: 'Failed password for alice from 203.0.113.9 port 22',
  attributes: { password: 'hunter2', nested: { token: 'abc' } },
};

const rules = (r: unknown) => redactRulesSchema.parse(r);

describe('redaction', () => {
  it('drops, masks (whole or by pattern) and keyed-hashes fields without touching the input', () => {
    const redact = compileRedaction(
      rules([
        { field: 'attributes.password', action: 'drop' },
        { field: 'actor.user', action: 'mask' },
        { field: 'message', action: 'mask', pattern: '\\d+\\.\\d+\\.\\d+\\.\\d+', with: '<ip>' },
        { field: 'actor.ip', action: 'hash', key: 'a-key-of-16-chars' },
        { field: 'attributes.nested.token', action: 'mask', with: '***' },
        { field: 'resource.name', action: 'drop' },
      ]),
    );
    const out = redact(event);
    expect(out.attributes).toEqual({ nested: { token: '***' } });
    expect(out.actor!.user).toBe('[REDACTED]');
    expect(out.message).toBe('Failed password for alice from <ip> port 22');
    expect(out.actor!.ip).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    // deterministic with one key, different with another
    expect(redact(event).actor!.ip).toBe(out.actor!.ip);
    const other = compileRedaction(
      rules([{ field: 'actor.ip', action: 'hash', key: 'another-16-char-key' }]),
    );
    expect(other(event).actor!.ip).not.toBe(out.actor!.ip);
    // the input is unchanged
    expect(event.actor).toEqual({ user: 'alice', ip: '203.0.113.9' });
    expect(event.attributes).toEqual({ password: 'hunter2', nested: { token: 'abc' } });
  });

  it('no rules: the same object', () => {
    expect(compileRedaction([])(event)).toBe(event);
  });
});
