/**
 * Redaction rules, applied to an event after a source built it and before it is
 * sealed: what a rule removes never reaches the journal, the collector or a SIEM.
 *
 *   drop   remove the field (only optional fields: `actor.*`, `resource.*`, `message`, `attributes.*`)
 *   mask   replace the value (or, with `pattern`, each match inside a string) by `with`
 *   hash   replace the value by `hmac-sha256:<hex>` keyed with `key`: equal inputs stay
 *          equal (joins, counting) while the value cannot be read back or brute-forced without the key
 */
import { createHmac } from 'node:crypto';
import { type AuditEvent, REQUIRED_EVENT_FIELDS } from '@sealtrail/event';
import { z } from 'zod';

/** Fields the event schema requires: a rule may mask or hash them, never drop them. */
const REQUIRED = new Set(REQUIRED_EVENT_FIELDS);
/** Fields whose value has a fixed shape: changing them would make the event invalid. */
const IMMUTABLE = new Set(['id', 'time', 'observed_time', 'category', 'type', 'severity', 'outcome']);

const fieldPath = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/, 'expected a dotted field path, e.g. "actor.ip"')
  .refine((p) => !IMMUTABLE.has(p) && !p.startsWith('host') && !p.startsWith('source'), {
    message: 'this field is set by the agent and cannot be redacted',
  });

export const redactRuleSchema = z.discriminatedUnion('action', [
  z
    .object({
      /** Dotted path into the event: `actor.ip`, `message`, `attributes.password`. */
      field: fieldPath,
      action: z.literal('drop'),
    })
    .strict()
    .refine((r) => !REQUIRED.has(r.field), {
      message: 'a required field cannot be dropped; use mask or hash',
      path: ['field'],
    }),
  z
    .object({
      field: fieldPath,
      action: z.literal('mask'),
      /** Replacement text. */
      with: z.string().default('[REDACTED]'),
      /** A regular expression: only its matches inside a string value are replaced. */
      pattern: z
        .string()
        .refine(
          (p) => {
            try {
              new RegExp(p, 'g');
              return true;
            } catch {
              return false;
            }
          },
          { message: 'not a valid regular expression' },
        )
        .optional(),
    })
    .strict(),
  z
    .object({
      field: fieldPath,
      action: z.literal('hash'),
      /** HMAC key; put it in the environment: `key: ${SEALTRAIL_REDACT_KEY}`. */
      key: z.string().min(16, 'the key must be at least 16 characters'),
    })
    .strict(),
]);

export type RedactRule = z.output<typeof redactRuleSchema>;
export const redactRulesSchema = z.array(redactRuleSchema).default([]);

type Obj = Record<string, unknown>;

function applyOne(event: Obj, rule: RedactRule, compiled: RegExp | null): void {
  const parts = rule.field.split('.');
  let node: Obj = event;
  for (const p of parts.slice(0, -1)) {
    const next = node[p];
    if (!next || typeof next !== 'object' || Array.isArray(next)) return;
    // Copy on write: the caller's objects are never mutated.
    const copy = { ...(next as Obj) };
    node[p] = copy;
    node = copy;
  }
  const leaf = parts[parts.length - 1]!;
  if (!(leaf in node)) return;
  const value = node[leaf];
  switch (rule.action) {
    case 'drop':
      delete node[leaf];
      return;
    case 'mask':
      if (compiled) {
        if (typeof value === 'string') node[leaf] = value.replace(compiled, rule.with);
      } else node[leaf] = rule.with;
      return;
    case 'hash': {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      node[leaf] = `hmac-sha256:${createHmac('sha256', rule.key).update(text).digest('hex')}`;
      return;
    }
  }
}

/** Compiles rules once; the returned function copies what it changes and leaves the input alone. */
export function compileRedaction(rules: readonly RedactRule[]): (e: AuditEvent) => AuditEvent {
  if (rules.length === 0) return (e) => e;
  const compiled = rules.map((r) => (r.action === 'mask' && r.pattern ? new RegExp(r.pattern, 'g') : null));
  return (e) => {
    const out = { ...e } as Obj;
    rules.forEach((r, i) => {
      applyOne(out, r, compiled[i]!);
    });
    return out as AuditEvent;
  };
}
