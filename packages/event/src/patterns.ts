// The string formats the fast checks (fast.ts, scan.ts) test, taken from the zod schema itself.
import { eventSchema, hostSchema, ingestEventSchema } from './schema.js';

/** The pattern zod itself checks for a string format (so the two cannot drift apart). */
function patternOf(schema: unknown, format?: string): RegExp {
  const def = (schema as { _zod: { def: { pattern?: RegExp; checks?: { _zod: { def: unknown } }[] } } })._zod
    .def;
  if (!format && def.pattern) return def.pattern;
  for (const c of def.checks ?? []) {
    const d = c._zod.def as { format?: string; pattern?: RegExp };
    if (d.format === format && d.pattern) return d.pattern;
  }
  throw new Error(`event schema: no ${format ?? 'format'} pattern found`);
}

export const UUID = patternOf(hostSchema.shape.id);
export const UTC_TIME = patternOf(eventSchema.shape.time);
export const EVENT_TYPE = patternOf(eventSchema.shape.type, 'regex');
/** RFC 3339 with any offset: the `time` an application may post. */
export const OFFSET_TIME = patternOf(ingestEventSchema.shape.time.unwrap());
export const MAX_TYPE_CHARS = 128;
