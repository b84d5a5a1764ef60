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
  actorSchema,
  CATEGORIES,
  type Category,
  canonicalBytes,
  canonicalBytesOrderedBut,
  eventSchema,
  hostSchema,
  MAX_FIELD_CHARS,
  MAX_MESSAGE_CHARS,
  OUTCOMES,
  resourceSchema,
  SEVERITIES,
  type Severity,
  type SOURCE_KINDS,
  sourceSchema,
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

/** `t` as RFC 3339 UTC. Lines of one second share a time: the last one's text is kept. */
let lastTime: number | undefined;
let lastTimeIso = '';
function toIso(t: EventDraft['time'], fallback: string): string {
  if (t === undefined) return fallback;
  const ms = t instanceof Date ? t.getTime() : new Date(t).getTime();
  if (ms === lastTime) return lastTimeIso;
  if (!Number.isFinite(ms)) return fallback;
  lastTime = ms;
  lastTimeIso = isoUtc(ms);
  return lastTimeIso;
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/**
 * `new Date(ms).toISOString()`, for years 1970–9999 (else that call): a tail whose lines
 * change second from line to line misses toIso's cache on every line, and the native call
 * (with its Date) costs about 0.45 µs, this about a fifth of it. Civil date from days
 * since the epoch after Howard Hinnant's `civil_from_days`; emit.test.ts checks it
 * against toISOString on random and edge instants.
 */
export function isoUtc(ms: number): string {
  if (!(ms >= 0 && ms < 253402300800000) || !Number.isInteger(ms)) return new Date(ms).toISOString();
  const days = Math.floor(ms / 86_400_000);
  let rest = ms - days * 86_400_000;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const mi = Math.floor(rest / 60_000);
  rest -= mi * 60_000;
  const sec = Math.floor(rest / 1000);
  const milli = rest - sec * 1000;
  const msText = milli < 10 ? `00${milli}` : milli < 100 ? `0${milli}` : `${milli}`;
  return `${year}-${pad2(month)}-${pad2(day)}T${pad2(h)}:${pad2(mi)}:${pad2(sec)}.${msText}Z`;
}

/** The keys the schema allows in `actor` and `resource`, in JCS order (so no re-ordering before sealing). */
const ACTOR_KEYS = Object.keys(actorSchema.shape).sort();
const RESOURCE_KEYS = Object.keys(resourceSchema.shape).sort();
const ACTOR_SET = new Set(ACTOR_KEYS);
const RESOURCE_SET = new Set(RESOURCE_KEYS);

/**
 * Copies `src` keeping only defined values, as strings clipped to the field cap, the known
 * keys in JCS order. Other keys are kept too (after them): the schema refuses them.
 */
function fields(
  src: Record<string, string | number | undefined> | undefined,
  keys: readonly string[],
  known: ReadonlySet<string>,
  clipped: string[],
  prefix: string,
): Record<string, string> | undefined {
  if (!src) return undefined;
  let out: Record<string, string> | undefined;
  let seen = 0;
  let clips = false;
  const put = (k: string) => {
    const v = src[k];
    if (v === undefined || v === '') return;
    const s = String(v);
    out ??= {};
    if (s.length > MAX_FIELD_CHARS) {
      out[k] = s.slice(0, MAX_FIELD_CHARS);
      clips = true;
    } else out[k] = s;
  };
  for (const k of keys) {
    if (!(k in src)) continue;
    seen++;
    put(k);
  }
  let all = 0;
  for (const _ in src) all++;
  if (all > seen) for (const k in src) if (!known.has(k)) put(k);
  // Clipped fields are named in the draft's own order.
  if (clips) {
    for (const k in src) {
      const v = src[k];
      if (v !== undefined && String(v).length > MAX_FIELD_CHARS) clipped.push(`${prefix}.${k}`);
    }
  }
  return out;
}

/**
 * UUIDv7 (RFC 9562: 48-bit Unix ms, version 7, variant 10, 74 random bits) from a pooled
 * random buffer: one `randomBytes` per 400 ids instead of one per few, which a 100,000
 * lines/s tail notices. The pool gets its version and variant bits and its hex text once,
 * at refill, and the time part's text is kept for the millisecond: an id is then slices of
 * two strings (about 0.1 µs, against 0.25 for a Buffer write and hex per id). Same format
 * as `newEventId()`; emit.test.ts checks the layout and the time.
 */
const POOL_IDS = 400;
let poolHex = '';
let poolPos = 0;
let prefixMs = -1;
let prefix = '';

function refillIds(): void {
  const b = randomBytes(POOL_IDS * 10);
  for (let i = 0; i < b.length; i += 10) {
    b[i] = 0x70 | (b[i]! & 0x0f); // version 7 (id byte 6)
    b[i + 2] = 0x80 | (b[i + 2]! & 0x3f); // variant 10 (id byte 8)
  }
  poolHex = b.toString('hex');
  poolPos = 0;
}

export function fastEventId(now = Date.now()): string {
  if (poolPos === poolHex.length) refillIds();
  if (now !== prefixMs) {
    const t = now.toString(16).padStart(12, '0');
    prefix = `${t.slice(0, 8)}-${t.slice(8, 12)}-`;
    prefixMs = now;
  }
  const p = poolPos;
  poolPos += 20;
  return `${prefix}${poolHex.slice(p, p + 4)}-${poolHex.slice(p + 4, p + 8)}-${poolHex.slice(p + 8, p + 20)}`;
}

const TYPE_RE = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;
const CATEGORY_SET = new Set<string>(CATEGORIES);
const SEVERITY_SET = new Set<string>(SEVERITIES);
const OUTCOME_SET = new Set<string>(OUTCOMES);
/** Types already checked against TYPE_RE: a source uses a few, over and over. */
const typesSeen = new Set<string>();

function plainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function textFields(part: unknown, known: ReadonlySet<string>): boolean {
  if (part === undefined) return true;
  if (!plainObject(part)) return false;
  for (const k in part) {
    const v = part[k];
    if (!known.has(k) || typeof v !== 'string' || v.length > MAX_FIELD_CHARS) return false;
  }
  return true;
}

/**
 * The event schema's verdict on an event from `build()`, after redaction, without zod:
 * `id` is a fresh UUIDv7, host and source are the encoder's own (checked once), and the
 * times come from `toISOString()`, which leaves RFC 3339's 24-character form only for a
 * year past 9999. What redaction or a draft can change is checked as the schema does.
 * emit.test.ts checks this agrees with `eventSchema` on random drafts and redactions.
 */
export function builtValid(
  e: AuditEvent,
  host: AuditEvent['host'] | null,
  source: AuditEvent['source'] | null,
): boolean {
  if (e.host !== host || e.source !== source) return false;
  if (e.time.length !== 24 || e.observed_time.length !== 24) return false;
  if (!typesSeen.has(e.type)) {
    if (typeof e.type !== 'string' || e.type.length > 128 || !TYPE_RE.test(e.type)) return false;
    if (typesSeen.size < 1024) typesSeen.add(e.type);
  }
  if (!CATEGORY_SET.has(e.category) || !SEVERITY_SET.has(e.severity) || !OUTCOME_SET.has(e.outcome))
    return false;
  if (typeof e.action !== 'string' || e.action.length === 0 || e.action.length > MAX_FIELD_CHARS)
    return false;
  if (e.message !== undefined && (typeof e.message !== 'string' || e.message.length > MAX_MESSAGE_CHARS))
    return false;
  if (!textFields(e.actor, ACTOR_SET) || !textFields(e.resource, RESOURCE_SET)) return false;
  return e.attributes === undefined || plainObject(e.attributes);
}

export interface EncoderOptions {
  /**
   * Drafts come from outside the agent's own code (a user's json/regex mapping): every event
   * is checked against the full schema. Otherwise the builder's shape is trusted and only
   * what can vary is checked (`builtValid`).
   */
  external?: boolean;
}

export class EventEncoder {
  private readonly redact: (e: AuditEvent) => AuditEvent;
  private readonly events: Counter<string>;
  private readonly errors: Counter<string>;
  private readonly external: boolean;
  readonly source: AuditEvent['source'];
  /** `settings.host` and `source` once they passed the schema (the same objects in every event). */
  private hostChecked: AuditEvent['host'] | null = null;
  /** `hostChecked`'s members are in JCS order (its JSON text is its canonical text). */
  private hostOrdered = false;
  private readonly sourceChecked: AuditEvent['source'] | null;
  /** Events replaced by a stand-in so far. */
  private replaced = 0;
  /** Events encoded (not replaced) by `encodeInto` and not yet added to the events metric. */
  private uncounted = 0;

  constructor(
    private readonly settings: SourceSettings,
    kind: SourceKind,
    name: string,
    rules: readonly RedactRule[] = [],
    opts: EncoderOptions = {},
  ) {
    this.source = { kind, name };
    this.sourceChecked = sourceSchema.safeParse(this.source).success ? this.source : null;
    const own = compileRedaction(rules);
    this.redact = (e) => own(settings.redact(e));
    this.events = sourceEvents(settings.registry);
    this.errors = sourceErrors(settings.registry);
    this.external = opts.external ?? false;
  }

  private lastNow: Date | null = null;
  private lastIso = '';

  /** The full event (before redaction), for callers and tests that want to look at it. */
  build(d: EventDraft, now: Date = new Date()): AuditEvent {
    // A batch shares one `now`: its ISO form is computed once.
    if (now !== this.lastNow) {
      this.lastNow = now;
      this.lastIso = now.toISOString();
    }
    const observed = this.lastIso;
    const clipped: string[] = [];
    const actor = fields(d.actor, ACTOR_KEYS, ACTOR_SET, clipped, 'actor');
    const resource = fields(d.resource, RESOURCE_KEYS, RESOURCE_SET, clipped, 'resource');
    let attributes = d.attributes;
    let message = d.message;
    if (message !== undefined && message.length > MAX_MESSAGE_CHARS) {
      // The whole text stays in the event; only the human line is shortened.
      attributes = { ...attributes, full_message: message };
      message = message.slice(0, MAX_MESSAGE_CHARS);
      clipped.push('message');
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
      if (!any && Object.keys(attributes).length === 0) attributes = undefined;
    }
    // Members in JCS order (optional ones only when present): the canonicalizer then has
    // nothing to re-order at the top level.
    const e = { action: d.action.slice(0, MAX_FIELD_CHARS) } as AuditEvent;
    if (actor) e.actor = actor;
    if (attributes) e.attributes = attributes;
    e.category = d.category;
    e.host = this.settings.host;
    e.id = fastEventId();
    if (message !== undefined) e.message = message;
    e.observed_time = observed;
    e.outcome = d.outcome ?? 'unknown';
    if (resource) e.resource = resource;
    e.severity = d.severity ?? 'info';
    e.source = this.source;
    e.time = toIso(d.time, observed);
    e.type = d.type;
    return e;
  }

  /** Canonical bytes of one event, redacted and validated; never over `maxEventBytes`. */
  encode(d: EventDraft, now: Date = new Date()): Buffer {
    return this.encodeAll([d], now)[0]!;
  }

  /** `encode` for a batch: one metric update for all of it. */
  encodeAll(drafts: readonly EventDraft[], now: Date = new Date()): Buffer[] {
    const out: Buffer[] = [];
    this.encodeInto(out, drafts, now);
    this.flushCount();
    return out;
  }

  /**
   * `encodeAll` onto `out`, with the metric update left to `flushCount`: a source can encode
   * each line's drafts as it parses them (so they die young instead of surviving scavenges
   * while a whole chunk is parsed) and still update the metric once per batch.
   */
  encodeInto(out: Buffer[], drafts: readonly EventDraft[], now: Date): void {
    const replaced = this.replaced;
    for (let i = 0; i < drafts.length; i++)
      out.push(this.sealOne(this.build(drafts[i]!, now), !this.external));
    this.uncounted += drafts.length - (this.replaced - replaced);
  }

  /** Adds what `encodeInto` encoded since the last call to the events metric. */
  flushCount(): void {
    if (this.uncounted > 0)
      this.events.inc({ source: this.source.name, kind: this.source.kind }, this.uncounted);
    this.uncounted = 0;
  }

  /** Redacts, validates (against the full schema) and encodes an event that is already complete. */
  seal(event: AuditEvent): Buffer {
    const replaced = this.replaced;
    const bytes = this.sealOne(event, false);
    if (this.replaced === replaced) this.events.inc({ source: this.source.name, kind: this.source.kind });
    return bytes;
  }

  /** The event's canonical bytes, or those of its stand-in (counted in `replaced` and as an error). */
  private sealOne(event: AuditEvent, built: boolean): Buffer {
    const e = this.redact(event);
    const host = this.settings.host;
    if (built && host !== this.hostChecked && hostSchema.safeParse(host).success) {
      this.hostChecked = host;
      this.hostOrdered = canonicalBytes(host).toString() === JSON.stringify(host);
    }
    const trusted = built && builtValid(e, this.hostChecked, this.sourceChecked);
    const v = trusted ? { success: true as const } : eventSchema.safeParse(e);
    if (!v.success) {
      return this.replacement(event, 'invalid_event', 'agent.event.invalid', {
        errors: v.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`),
      });
    }
    // Built, left as it was by redaction (no rule copies it) and accepted by builtValid: every
    // member is in JCS order and plain JSON but the attributes (build, fields, builtValid).
    const ordered = trusted && e === event && this.hostOrdered;
    let bytes: Buffer;
    try {
      bytes = ordered
        ? canonicalBytesOrderedBut(e as unknown as Record<string, unknown>, 'attributes')
        : canonicalBytes(e);
    } catch (err) {
      // JCS refuses lone surrogates (a JSON log line can carry "\ud800"): never a crash, a visible stand-in.
      return this.replacement(event, 'invalid_event', 'agent.event.invalid', {
        errors: [(err as Error).message],
      });
    }
    if (bytes.length > this.settings.maxEventBytes) {
      return this.replacement(event, 'too_large', 'agent.event.too_large', {
        size_bytes: bytes.length,
        limit_bytes: this.settings.maxEventBytes,
      });
    }
    return bytes;
  }

  /** A small event that stands for one that could not be sealed, so the gap is visible. */
  private replacement(
    original: AuditEvent,
    stage: string,
    type: string,
    detail: Record<string, unknown>,
  ): Buffer {
    this.replaced++;
    this.errors.inc({ source: this.source.name, kind: this.source.kind, stage });
    // The stand-in must itself be valid: what made the original invalid may be its id or time.
    const shape = eventSchema.shape;
    const observed = shape.observed_time.safeParse(original.observed_time).success
      ? original.observed_time
      : new Date().toISOString();
    const e: AuditEvent = {
      id: shape.id.safeParse(original.id).success ? original.id : fastEventId(),
      time: shape.time.safeParse(original.time).success ? original.time : observed,
      observed_time: observed,
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
