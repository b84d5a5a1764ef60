import { byteSize, duration } from '@sealtrail/config';
import { CATEGORIES } from '@sealtrail/event';
import { z } from 'zod';
import { redactRulesSchema } from '../common/redact.js';
import { MAPPING_TARGETS } from './parsers/mapping.js';

const mapping = z
  .record(z.string(), z.string())
  .default({})
  .superRefine((m, ctx) => {
    for (const k of Object.keys(m)) {
      if (!MAPPING_TARGETS.test(k)) {
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message:
            'not an event field a mapping can set (time, category, type, action, severity, outcome, message, actor.*, resource.*, attributes.*)',
        });
      }
    }
  });

const mapped = {
  /** Event field ← template; `{name}` is a parsed value. */
  mapping,
  /** Category when the mapping sets none. */
  category: z.enum(CATEGORIES).default('application'),
  /** `type` when the mapping sets none. */
  event_type: z
    .string()
    .regex(/^[a-z0-9_]+(\.[a-z0-9_]+)*$/, 'expected dotted lower case, e.g. "app.login"')
    .default('log.parsed'),
  /** `action` when the mapping sets none. */
  action: z.string().min(1).default('log'),
  /** Keep every parsed value in `attributes.fields`. */
  keep_fields: z.boolean().default(true),
};

export const parserSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({ type: z.literal('linux_auth') }).strict(),
  z.object({ type: z.literal('linux_audit') }).strict(),
  z.object({ type: z.literal('json'), ...mapped }).strict(),
  z
    .object({
      type: z.literal('regex'),
      /** A JavaScript regular expression with named groups: `(?<user>\\S+)`. */
      pattern: z.string().superRefine((p, ctx) => {
        try {
          new RegExp(p);
        } catch (err) {
          ctx.addIssue({
            code: 'custom',
            message: `not a valid regular expression: ${(err as Error).message}`,
          });
        }
      }),
      ...mapped,
    })
    .strict(),
]);

export type ParserConfig = z.output<typeof parserSchema>;

export const logTailConfigSchema = z
  .object({
    type: z.literal('log_tail'),
    name: z.string().min(1),
    /** Files or glob patterns (`/var/log/nginx/*.log`); every match is tailed. */
    include: z
      .array(z.string().min(1), 'expected a list of paths or globs')
      .min(1, 'expected at least one path'),
    /** Glob patterns of matches to leave out (`*.gz`, `*.1`). */
    exclude: z.array(z.string().min(1)).default([]),
    /**
     * Where to start a file the source has never read: `end` (only new lines) or `beginning`.
     * Applies on the source's first run; a file that appears later (after rotation) is always read from its beginning.
     */
    start_at: z.enum(['end', 'beginning']).default('end'),
    /** A parser name (`linux_auth`) or a parser object (`{type: regex, pattern: ..., mapping: ...}`). */
    parser: z
      .union([
        z
          .enum(['none', 'linux_auth', 'linux_audit', 'json'])
          .transform((type) => parserSchema.parse({ type })),
        parserSchema,
      ])
      .prefault('none'),
    /** Longer lines are cut to this length and marked `truncated: true` (the rest is skipped). */
    max_line_bytes: byteSize().default(32 * 1024),
    /** Bytes at the start of a file that identify it (with device and inode) across restarts and rotation. */
    fingerprint_bytes: z.number().int().min(16).max(65536).default(256),
    /** How often open files are checked for new data. */
    poll_interval: duration().default(250),
    /** How often the include patterns are expanded again to find new and rotated files. */
    glob_interval: duration().default(1000),
    /** How long a rotated-away (renamed or deleted) file is kept open and read after its last new data. */
    rotate_wait: duration().default(5000),
    /** Most bytes read from one file before others get a turn (and one journal batch). */
    read_chunk_bytes: byteSize().default(256 * 1024),
    /** Most files open at once. */
    max_open_files: z.number().int().positive().default(1024),
    /** Redaction rules for this source's events, after the agent-wide ones. */
    redact: redactRulesSchema,
  })
  .strict();

export type LogTailConfig = z.output<typeof logTailConfigSchema>;
