import { byteSize } from '@sealtrail/config';
import { z } from 'zod';

export const httpIngestConfigSchema = z
  .object({
    type: z.literal('http_ingest'),
    name: z.string().min(1),
    /** Largest request body accepted; a larger one gets 413 before it is read. */
    max_body_bytes: byteSize().default(16 * 1024 * 1024),
    /** Most events in one request. */
    max_events_per_request: z.number().int().positive().default(10_000),
  })
  .strict();

export type HttpIngestConfig = z.output<typeof httpIngestConfigSchema>;
