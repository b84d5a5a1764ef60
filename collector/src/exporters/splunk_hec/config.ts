import { duration } from '@sealtrail/config';
import { z } from 'zod';
import { commonExporterKeys, httpKeys } from '../common/config.js';

export const splunkHecExporterConfigSchema = z
  .object({
    type: z.literal('splunk_hec'),
    ...commonExporterKeys('native', { records: 500, bytes: 1_000_000 }),
    ...httpKeys(),
    /** HEC base URL, e.g. `https://splunk.example:8088`; `/services/collector/event` is appended. */
    endpoint: z.url({ protocol: /^https?$/ }),
    /** HEC token (sent as `Authorization: Splunk <token>`). */
    token: z.string().min(1),
    /** Index for every event; the token's default index when absent. */
    index: z.string().min(1).optional(),
    source: z.string().min(1).default('sealtrail'),
    sourcetype: z.string().min(1).default('_json'),
    /** Indexer acknowledgement: the cursor advances only once Splunk says the events are indexed. */
    ack: z
      .object({
        enabled: z.boolean().default(false),
        /** Channel GUID; a fixed random one per exporter start when absent. */
        channel: z.uuid().optional(),
        poll_interval: duration().default(1000),
        /** Not acknowledged by then: the batch is sent again. */
        timeout: duration().default(60_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type SplunkHecExporterConfig = z.output<typeof splunkHecExporterConfigSchema>;
