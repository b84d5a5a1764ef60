/**
 * Keys every exporter shares: what it selects (`filter`), which schema it
 * writes (`schema`), how it batches (`batch_*`) and how it retries (`retry_*`).
 * Each exporter's schema spreads `commonExporterKeys` and adds its own keys.
 */
import { byteSize, duration } from '@sealtrail/config';
import { CATEGORIES, SEVERITIES } from '@sealtrail/event';
import { z } from 'zod';

export const filterSchema = z
  .object({
    /** Only these categories (all when absent). */
    categories: z.array(z.enum(CATEGORIES)).min(1).optional(),
    /** Only these types; a trailing `.*` matches a prefix (`auth.*`), `*` alone matches all. */
    types: z
      .array(
        z
          .string()
          .regex(
            /^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$/,
            'expected a type like "auth.login.failure" or "auth.*"',
          ),
      )
      .min(1)
      .optional(),
    /** Only events at this severity or above. */
    min_severity: z.enum(SEVERITIES).default('info'),
  })
  .strict()
  .prefault({});

export type FilterConfig = z.output<typeof filterSchema>;

export const SCHEMAS = ['native', 'ecs', 'ocsf'] as const;
export type SchemaName = (typeof SCHEMAS)[number];

export const tlsSchema = z
  .object({
    /** PEM bundle of CAs to trust instead of the system's. */
    ca_file: z.string().min(1).optional(),
    /** Client certificate and key (PEM) for mutual TLS. */
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    /** Name to check the server certificate against (default: the host). */
    server_name: z.string().min(1).optional(),
    /** Verify the server certificate. Turn off only for a test bench. */
    verify: z.boolean().default(true),
  })
  .strict()
  .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), {
    message: 'cert_file and key_file go together',
  });

export type TlsConfig = z.output<typeof tlsSchema>;

/** Keys that every exporter has; `schemaDefault` is the exporter's natural schema. */
export function commonExporterKeys(
  schemaDefault: SchemaName,
  batch: { records: number; bytes: number; timeoutMs?: number },
) {
  return {
    name: z.string().min(1),
    filter: filterSchema,
    /** Shape of each exported event: `native` (the event plus a `sealtrail` object), `ecs`, `ocsf`. */
    schema: z.enum(SCHEMAS).default(schemaDefault),
    /** A batch is sent when it holds this many records… */
    batch_max_records: z.number().int().positive().default(batch.records),
    /** …or this many encoded bytes… */
    batch_max_bytes: byteSize().default(batch.bytes),
    /** …or when its first record has waited this long for more. */
    batch_timeout: duration().default(batch.timeoutMs ?? 1000),
    /** First retry waits up to this long (full jitter: uniform in [0, cap]). */
    retry_initial_backoff: duration().default(500),
    /** The cap doubles per failed attempt up to this. */
    retry_max_backoff: duration().default(60_000),
  };
}

export interface CommonExporterConfig {
  type: string;
  name: string;
  filter: FilterConfig;
  schema: SchemaName;
  batch_max_records: number;
  batch_max_bytes: number;
  batch_timeout: number;
  retry_initial_backoff: number;
  retry_max_backoff: number;
}

/** Keys of HTTP exporters. */
export function httpKeys(timeoutMs = 30_000) {
  return {
    /** Whole-request deadline, from connect to the last byte of the answer. */
    request_timeout: duration().default(timeoutMs),
    /** Keep-alive connections to the destination. */
    max_connections: z.number().int().positive().default(4),
    /** gzip request bodies. */
    compression: z.enum(['gzip', 'none']).default('gzip'),
    /** gzip level: 1 is fastest (the default, as in Elastic's Beats), 9 smallest. */
    compression_level: z.number().int().min(1).max(9).default(1),
    tls: tlsSchema.optional(),
  };
}
