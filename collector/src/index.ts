export { Collector } from './collector.js';
export {
  type CollectorConfig,
  collectorConfigSchema,
  loadCollectorConfig,
  parseCollectorConfig,
} from './config.js';
export { type ExporterConfig, exporterConfigSchema, exporterTypes } from './exporters/index.js';
export { Spool } from './spool/spool.js';
export { verifySpool } from './spool/verify.js';
