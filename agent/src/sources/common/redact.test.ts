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

describe('event encoder', () => {
  it('ids are UUIDv7 and valid; an unencodable event becomes a visible stand-in, never a crash', async () => {
    const { makeKit } = await import('./testkit.js');
    const { EventEncoder, fastEventId } = await import('./emit.js');
    const { decodeEvent } = await import('@sealtrail/event');
    const id = fastEventId(Date.UTC(2024, 0, 1));
    expect(id).toMatch(/^018cc251-f400-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const kit = await makeKit({ maxEventBytes: 2048 });
    const enc = new EventEncoder(kit.settings, 'log_tail', 't');
    const ok = decodeEvent(enc.encode({ category: 'system', type: 'log.line', action: 'log', message: 'x' }));
    expect(ok.type).toBe('log.line');
    const lone = decodeEvent(
      enc.encode({ category: 'system', type: 'log.line', action: 'log', attributes: { bad: '\ud800' } }),
    );
    expect(lone).toMatchObject({ type: 'agent.event.invalid', attributes: { original_type: 'log.line' } });
    const big = decodeEvent(
      enc.encode({
        category: 'system',
        type: 'log.line',
        action: 'log',
        attributes: { blob: 'x'.repeat(5000) },
      }),
    );
    expect(big).toMatchObject({ type: 'agent.event.too_large', attributes: { limit_bytes: 2048 } });
    const badType = decodeEvent(enc.encode({ category: 'system', type: 'Not A Type', action: 'log' }));
    expect(badType.type).toBe('agent.event.invalid');
    await kit.close();
  });
});
