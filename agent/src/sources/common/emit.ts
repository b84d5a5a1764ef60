/**
 * Builds a source's events: fills what the agent owns (id, times, host, source),
 * keeps every string within the schema's caps (saying so in `attributes`),
 * applies redaction, validates, and returns canonical bytes within the size cap.
 * An event over the cap is replaced by an `agent.event.too_large` event naming it,
 * so nothing disappears silently.
 */
import { randomBytes } from 'node:crypto';
import {
  type AuditEvent,
  CATEGORIES,
  type Category,
  canonicalBytes,
  eventSchema,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  OUTCOMES,
  SEVERITIES,
  type Severity,
  type SOURCE_KINDS,
} from '@sealtrail/event';
import type { Counter } from '@sealtrail/telemetry';
import type { SourceSettings } from '../source.js';
import { sourceErrors, sourceEvents } from './metrics.js';
import { compileRedaction, type RedactRule } from './redact.js';

export type SourceKind = (typeof SOURCE_KINDS)[number];
type Outcome = AuditEvent['outcome'];

export interface EventDraft {
  /** When it happened: a Date, an RFC 3339 string, or epoch ms. Defaults to observed. */
  time?: Date | string | number;
  category: Category;
  type: string;
  action: string;
  severity?: Severity;
  outcome?: Outcome;
  actor?: Record<string, string | number | undefined>;
  resource?: Record<string, string | number | undefined>;
  message?: string;
  attributes?: Record<string, unknown>;
}

function toIso(t: EventDraft['time'], fallback: string): string {
  if (t === undefined) return fallback;
  const d = t instanceof Date ? t : new Date(t);
  const ms = d.getTime();
  return Number.isFinite(ms) ? d.toISOString() : fallback;
}

/** Copies `src` keeping only defined values, as strings clipped to the field cap. */
function fields(
  src: Record<string, string | number | undefined> | undefined,
  clipped: string[],
  prefix: string,
): Record<string, string> | undefined {
  if (!src) return undefined;
  let out: Record<string, string> | undefined;
  for (const [k, v] of Object.entries(src)) {
    if (v === undefined || v === '') continue;
    let s = String(v);
    if (s.length > MAX_FIELD_CHARS) {
      s = s.slice(0, MAX_FIELD_CHARS);
      clipped.push(`${prefix}.${k}`);
    }
    out ??= {};
    out[k] = s;
  }
  return out;
}

/**
 * UUIDv7 (RFC 9562: 48-bit Unix ms, version 7, variant 10, 74 random bits) from a pooled
 * random buffer: one `randomFillSync` per 400 ids instead of one per few, which a
 * 100,000 lines/s tail notices. Same format as `newEventId()`.
 */
let pool = Buffer.alloc(0);
let poolOffset = 0;
const idBytes = Buffer.alloc(16);

export function fastEventId(now = Date.now()): string {
  if (poolOffset + 10 > pool.length) {
    pool = randomBytes(4000);
    poolOffset = 0;
  }
  idBytes.writeUIntBE(now, 0, 6);
  pool.copy(idBytes, 6, poolOffset, poolOffset + 10);
  poolOffset += 10;
  idBytes[6] = 0x70 | (idBytes[6]! & 0x0f);
  idBytes[8] = 0x80 | (idBytes[8]! & 0x3f);
  const h = idBytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const TYPE_RE = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;
const CATEGORY_SET = new Set<string>(CATEGORIES);
const SEVERITY_SET = new Set<string>(SEVERITIES);
const OUTCOME_SET = new Set<string>(OUTCOMES);

/**
 * The checks an event from `build()` can fail after redaction (its shape is fixed by
 * construction): the full zod schema runs only when one of these fails, for its message.
 * Keeps validation off the hot path of a 100,000 lines/s tail.
 */
function quickValid(e: AuditEvent): boolean {
  if (!TYPE_RE.test(e.type) || e.type.length > 128) return false;
  if (!CATEGORY_SET.has(e.category) || !SEVERITY_SET.has(e.severity) || !OUTCOME_SET.has(e.outcome))
    return false;
  if (typeof e.action !== 'string' || e.action.length === 0 || e.action.length > MAX_FIELD_CHARS)
    return false;
  if (e.message !== undefined && (typeof e.message !== 'string' || e.message.length > MAX_MESSAGE_CHARS))
    return false;
  for (const part of [e.actor, e.resource]) {
    if (part === undefined) continue;
    if (typeof part !== 'object' || part === null) return false;
    for (const v of Object.values(part))
      if (typeof v !== 'string' || v.length > MAX_FIELD_CHARS) return false;
  }
  return e.attributes === undefined || (typeof e.attributes === 'object' && e.attributes !== null);
}

export class EventEncoder {
  private readonly redact: (e: AuditEvent) => AuditEvent;
  private readonly events: Counter<string>;
  private readonly errors: Counter<string>;
  readonly source: AuditEvent['source'];

  constructor(
    private readonly settings: SourceSettings,
    kind: SourceKind,
    name: string,
    rules: readonly RedactRule[] = [],
  ) {
    this.source = { kind, name };
    const own = compileRedaction(rules);
    this.redact = (e) => own(settings.redact(e));
    this.events = sourceEvents(settings.registry);
    this.errors = sourceErrors(settings.registry);
  }

  /** The full event (before redaction), for callers and tests that want to look at it. */
  private lastNow: Date | null = null;
  private lastIso = '';

  build(d: EventDraft, now: Date = new Date()): AuditEvent {
    // A batch shares one `now`: its ISO form is computed once.
    if (now !== this.lastNow) {
      this.lastNow = now;
      this.lastIso = now.toISOString();
    }
    const observed = this.lastIso;
    const clipped: string[] = [];
    const e: AuditEvent = {
      id: fastEventId(),
      time: toIso(d.time, observed),
      observed_time: observed,
      category: d.category,
      type: d.type,
      severity: d.severity ?? 'info',
      outcome: d.outcome ?? 'unknown',
      action: d.action.slice(0, MAX_FIELD_CHARS),
      host: this.settings.host,
      source: this.source,
    };
    const actor = fields(d.actor, clipped, 'actor');
    if (actor) e.actor = actor;
    const resource = fields(d.resource, clipped, 'resource');
    if (resource) e.resource = resource;
    let attributes = d.attributes;
    if (d.message !== undefined) {
      if (d.message.length > MAX_MESSAGE_CHARS) {
        // The whole text stays in the event; only the human line is shortened.
        e.message = d.message.slice(0, MAX_MESSAGE_CHARS);
        attributes = { ...attributes, full_message: d.message };
        clipped.push('message');
      } else e.message = d.message;
    }
    if (clipped.length > 0) attributes = { ...attributes, clipped_fields: clipped };
    if (attributes) {
      let any = false;
      for (const k in attributes) {
        if (attributes[k] === undefined) {
          attributes = Object.fromEntries(Object.entries(attributes).filter(([, v]) => v !== undefined));
          break;
        }
        any = true;
      }
      if (any || Object.keys(attributes).length > 0) e.attributes = attributes;
    }
    return e;
  }

  /** Canonical bytes of one event, redacted and validated; never over `maxEventBytes`. */
  encode(d: EventDraft, now: Date = new Date()): Buffer {
    return this.seal(this.build(d, now), true);
  }

  /** Redacts, validates and encodes an event that is already complete. */
  seal(event: AuditEvent, built = false): Buffer {
    const e = this.redact(event);
    const v = built && quickValid(e) ? { success: true as const } : eventSchema.safeParse(e);
    if (!v.success) {
      this.errors.inc({ source: this.source.name, kind: this.source.kind, stage: 'invalid_event' });
      return this.replacement(event, 'agent.event.invalid', {
        errors: v.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`),
      });
    }
    let bytes: Buffer;
    try {
      bytes = canonicalBytes(e);
    } catch (err) {
      // JCS refuses lone surrogates (a JSON log line can carry "\ud800"): never a crash, a visible stand-in.
      this.errors.inc({ source: this.source.name, kind: this.source.kind, stage: 'invalid_event' });
      return this.replacement(event, 'agent.event.invalid', { errors: [(err as Error).message] });
    }
    if (bytes.length > this.settings.maxEventBytes) {
      this.errors.inc({ source: this.source.name, kind: this.source.kind, stage: 'too_large' });
      return this.replacement(event, 'agent.event.too_large', {
        size_bytes: bytes.length,
        limit_bytes: this.settings.maxEventBytes,
      });
    }
    this.events.inc({ source: this.source.name, kind: this.source.kind });
    return bytes;
  }

  /** A small event that stands for one that could not be sealed, so the gap is visible. */
  private replacement(original: AuditEvent, type: string, detail: Record<string, unknown>): Buffer {
    const e: AuditEvent = {
      id: original.id,
      time: original.time,
      observed_time: original.observed_time,
      category: 'agent',
      type,
      severity: 'medium',
      outcome: 'failure',
      action: 'seal',
      host: this.settings.host,
      source: this.source,
      message: `${this.source.kind} source "${this.source.name}" produced a ${original.type} event that could not be sealed`,
      attributes: { original_type: String(original.type).slice(0, 128), ...detail },
    };
    return canonicalBytes(e);
  }
}
