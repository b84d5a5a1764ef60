import { z } from 'zod';
import { commonExporterKeys, httpKeys } from '../common/config.js';

export const webhookExporterConfigSchema = z
  .object({
    type: z.literal('webhook'),
    ...commonExporterKeys('native', { records: 100, bytes: 1_000_000 }),
    ...httpKeys(),
    /** gzip request bodies; off by default since many receivers do not inflate them. */
    compression: z.enum(['gzip', 'none']).default('none'),
    /** Receiver URL; each request's body is a JSON array of events. */
    url: z.url({ protocol: /^https?$/ }),
    method: z.enum(['POST', 'PUT']).default('POST'),
    /** Extra request headers (e.g. an `authorization`). */
    headers: z.record(z.string(), z.string()).default({}),
    /** Key for the HMAC-SHA256 signature; unsigned when absent. */
    secret: z.string().min(16, 'use a secret of at least 16 characters').optional(),
    signature_header: z.string().min(1).default('x-sealtrail-signature'),
    timestamp_header: z.string().min(1).default('x-sealtrail-timestamp'),
  })
  .strict();

export type WebhookExporterConfig = z.output<typeof webhookExporterConfigSchema>;
