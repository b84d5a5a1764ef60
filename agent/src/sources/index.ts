/** Every source type the agent knows: an explicit list, no discovery. */
import { z } from 'zod';
import { httpIngestConfigSchema } from './http_ingest/config.js';
import { httpIngestSource } from './http_ingest/http_ingest.js';

export const sourceConfigSchema = z.discriminatedUnion('type', [httpIngestConfigSchema]);
export type SourceConfig = z.output<typeof sourceConfigSchema>;

export const sourceTypes = { http_ingest: httpIngestSource } as const;
