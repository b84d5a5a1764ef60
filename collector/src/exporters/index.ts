/** Every exporter type the collector knows: an explicit list, no discovery. */
import { z } from 'zod';
import { datadogExporterConfigSchema } from './datadog/config.js';
import { datadogExporter } from './datadog/exporter.js';
import { elasticsearchExporterConfigSchema } from './elasticsearch/config.js';
import { elasticsearchExporter } from './elasticsearch/exporter.js';
import type { ExporterFactory } from './exporter.js';
import { fileExporterConfigSchema } from './file/config.js';
import { fileExporter } from './file/exporter.js';
import { splunkHecExporterConfigSchema } from './splunk_hec/config.js';
import { splunkHecExporter } from './splunk_hec/exporter.js';
import { syslogExporterConfigSchema } from './syslog/config.js';
import { syslogExporter } from './syslog/exporter.js';
import { webhookExporterConfigSchema } from './webhook/config.js';
import { webhookExporter } from './webhook/exporter.js';

export const exporterConfigSchema = z.discriminatedUnion('type', [
  fileExporterConfigSchema,
  splunkHecExporterConfigSchema,
  elasticsearchExporterConfigSchema,
  datadogExporterConfigSchema,
  webhookExporterConfigSchema,
  syslogExporterConfigSchema,
]);
export type ExporterConfig = z.output<typeof exporterConfigSchema>;

type Factories = { [K in ExporterConfig['type']]: ExporterFactory<Extract<ExporterConfig, { type: K }>> };

const factories: Factories = {
  file: fileExporter,
  splunk_hec: splunkHecExporter,
  elasticsearch: elasticsearchExporter,
  datadog: datadogExporter,
  webhook: webhookExporter,
  syslog: syslogExporter,
};

/** By type; each factory is checked above against its own config, so a config of that type may be passed. */
export const exporterTypes = factories as unknown as Record<
  ExporterConfig['type'],
  ExporterFactory<ExporterConfig>
>;
