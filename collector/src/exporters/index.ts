/** Every exporter type the collector knows: an explicit list, no discovery. */
import { z } from 'zod';
import { fileExporterConfigSchema } from './file/config.js';
import { fileExporter } from './file/exporter.js';

export const exporterConfigSchema = z.discriminatedUnion('type', [fileExporterConfigSchema]);
export type ExporterConfig = z.output<typeof exporterConfigSchema>;

export const exporterTypes = { file: fileExporter } as const;
