import { z } from 'zod';
import { commonExporterKeys, httpKeys } from '../common/config.js';

/** Datadog logs intake v2 limits (per request, uncompressed). */
export const DATADOG_MAX_LOGS = 1000;
export const DATADOG_MAX_PAYLOAD_BYTES = 5_000_000;
export const DATADOG_MAX_LOG_BYTES = 1_000_000;

export const datadogExporterConfigSchema = z
  .object({
    type: z.literal('datadog'),
    ...commonExporterKeys('native', { records: DATADOG_MAX_LOGS, bytes: 4_500_000 }),
    ...httpKeys(),
    /** Datadog site: `datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, … */
    site: z.string().min(1).default('datadoghq.com'),
    /** Intake base URL; `https://http-intake.logs.<site>` when absent. `/api/v2/logs` is appended. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    api_key: z.string().min(1),
    service: z.string().min(1).default('sealtrail'),
    ddsource: z.string().min(1).default('sealtrail'),
    /** Extra `key:value` tags on every log. */
    tags: z.array(z.string().min(1)).default([]),
  })
  .strict()
  .refine((c) => c.batch_max_records <= DATADOG_MAX_LOGS, {
    path: ['batch_max_records'],
    message: `Datadog takes at most ${DATADOG_MAX_LOGS} logs per request`,
  })
  .refine((c) => c.batch_max_bytes <= DATADOG_MAX_PAYLOAD_BYTES - 2 - DATADOG_MAX_LOGS, {
    path: ['batch_max_bytes'],
    message: `Datadog takes at most ${DATADOG_MAX_PAYLOAD_BYTES} bytes per request (uncompressed)`,
  });

export type DatadogExporterConfig = z.output<typeof datadogExporterConfigSchema>;
