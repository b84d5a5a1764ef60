/** Every source type the agent knows: an explicit list, no discovery. */
import { z } from 'zod';
import { fileIntegrityConfigSchema } from './file_integrity/config.js';
import { fileIntegritySource } from './file_integrity/file_integrity.js';
import { httpIngestConfigSchema } from './http_ingest/config.js';
import { httpIngestSource } from './http_ingest/http_ingest.js';
import { inventoryConfigSchema } from './inventory/config.js';
import { inventorySource } from './inventory/inventory.js';
import { journaldConfigSchema } from './journald/config.js';
import { journaldSource } from './journald/journald.js';
import { logTailConfigSchema } from './log_tail/config.js';
import { logTailSource } from './log_tail/log_tail.js';
import type { Source, SourceFactory, SourceSettings } from './source.js';

export const sourceConfigSchema = z.discriminatedUnion('type', [
  httpIngestConfigSchema,
  fileIntegrityConfigSchema,
  logTailConfigSchema,
  inventoryConfigSchema,
  journaldConfigSchema,
]);
export type SourceConfig = z.output<typeof sourceConfigSchema>;

export const sourceTypes = {
  http_ingest: httpIngestSource,
  file_integrity: fileIntegritySource,
  log_tail: logTailSource,
  inventory: inventorySource,
  journald: journaldSource,
} as const;

/** Creates the source a config entry describes. */
export function createSource(settings: SourceSettings, config: SourceConfig): Source {
  const factory = sourceTypes[config.type] as SourceFactory<SourceConfig>;
  return factory.create(settings, config);
}
