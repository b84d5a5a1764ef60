import { z } from 'zod';
import { commonExporterKeys, httpKeys } from '../common/config.js';

export const elasticsearchExporterConfigSchema = z
  .object({
    type: z.literal('elasticsearch'),
    ...commonExporterKeys('ecs', { records: 1000, bytes: 5_000_000 }),
    ...httpKeys(),
    /** Elasticsearch or OpenSearch base URL, e.g. `https://es.example:9200`; `/_bulk` is appended. */
    endpoint: z.url({ protocol: /^https?$/ }),
    /** Data stream (or index) written with `create`; the event id is the document `_id`. */
    index: z.string().min(1).default('logs-sealtrail-default'),
    /** Ingest pipeline to run on every document. */
    pipeline: z.string().min(1).optional(),
    auth: z
      .discriminatedUnion('type', [
        z.object({ type: z.literal('basic'), username: z.string().min(1), password: z.string() }).strict(),
        /** The `encoded` value Elasticsearch returns when it creates an API key. */
        z.object({ type: z.literal('api_key'), api_key: z.string().min(1) }).strict(),
      ])
      .optional(),
  })
  .strict();

export type ElasticsearchExporterConfig = z.output<typeof elasticsearchExporterConfigSchema>;
