import { z } from 'zod';

export const CATEGORIES = [
  'authentication',
  'file',
  'process',
  'network',
  'account',
  'configuration',
  'application',
  'system',
  'integrity',
  'agent',
] as const;
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export const OUTCOMES = ['success', 'failure', 'unknown'] as const;
export const SOURCE_KINDS = ['fim', 'log_tail', 'inventory', 'http_ingest', 'journald', 'agent'] as const;

/** Caps that keep one event from dominating memory or a SIEM's field limits. */
export const MAX_MESSAGE_CHARS = 8192;
export const MAX_FIELD_CHARS = 1024;

const text = z.string().max(MAX_FIELD_CHARS);
const uuid = z.uuid();
/** RFC 3339 in UTC (`Z`), as every stored event carries it. */
const utcTime = z.iso.datetime({ precision: undefined });
/** Dotted lower case: `auth.login.failure`. */
const eventType = z
  .string()
  .max(128)
  .regex(/^[a-z0-9_]+(\.[a-z0-9_]+)*$/, 'expected dotted lower case, e.g. "auth.login.failure"');

export const actorSchema = z
  .object({
    user: text,
    uid: text,
    ip: text,
    session_id: text,
    user_agent: text,
    request_id: text,
  })
  .partial()
  .strict();

export const resourceSchema = z.object({ kind: text, name: text, id: text }).partial().strict();

export const hostSchema = z.object({ id: uuid, name: text, os: text }).strict();
export const sourceSchema = z.object({ kind: z.enum(SOURCE_KINDS), name: text }).strict();
export const attributesSchema = z.record(z.string(), z.unknown());

export const eventSchema = z
  .object({
    id: uuid,
    time: utcTime,
    observed_time: utcTime,
    category: z.enum(CATEGORIES),
    type: eventType,
    severity: z.enum(SEVERITIES),
    outcome: z.enum(OUTCOMES),
    actor: actorSchema.optional(),
    action: text.min(1),
    resource: resourceSchema.optional(),
    host: hostSchema,
    source: sourceSchema,
    message: z.string().max(MAX_MESSAGE_CHARS).optional(),
    attributes: attributesSchema.optional(),
  })
  .strict();

export type AuditEvent = z.infer<typeof eventSchema>;

/**
 * Member names read off the schemas, for code that checks or edits events by hand (the fast
 * validators, redaction): one list to keep in step with the schema, the schema itself.
 */
const requiredOf = (shape: Record<string, z.ZodType>): readonly string[] =>
  Object.entries(shape)
    .filter(([, s]) => !s.safeParse(undefined).success)
    .map(([k]) => k);
export const REQUIRED_EVENT_FIELDS = requiredOf(eventSchema.shape);
export const ACTOR_FIELDS: readonly string[] = Object.keys(actorSchema.shape);
export const RESOURCE_FIELDS: readonly string[] = Object.keys(resourceSchema.shape);
export type Category = (typeof CATEGORIES)[number];
export type Severity = (typeof SEVERITIES)[number];

/**
 * What an application may post: `category`, `type` and `action` are required;
 * the agent fills the rest. `host` and `source` are the agent's to set, so they
 * are unknown keys here (an app cannot pose as another host).
 */
export const ingestEventSchema = eventSchema
  .omit({ host: true, source: true, id: true, time: true, observed_time: true })
  .extend({
    id: uuid.optional(),
    time: z.iso.datetime({ offset: true }).optional(),
    severity: z.enum(SEVERITIES).default('info'),
    outcome: z.enum(OUTCOMES).default('unknown'),
  })
  .strict();

export type IngestEvent = z.infer<typeof ingestEventSchema>;
/** What a post must carry (a member with a default, like `severity`, may be left out). */
export const REQUIRED_INGEST_FIELDS = requiredOf(ingestEventSchema.shape);
