/** collector.yaml: one zod schema, defaults in it, unknown keys rejected. */
import { byteSize, duration, hostPort, loadConfigFile, parseConfig } from '@sealtrail/config';
import { z } from 'zod';
import { exporterConfigSchema } from './exporters/index.js';

export const collectorConfigSchema = z
  .object({
    collector: z
      .object({
        data_dir: z.string().min(1).default('/var/lib/sealtrail/collector'),
        log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
        /** How long an event id is remembered for dedupe (an app that retried a POST). */
        dedupe_window: duration().default(7 * 86_400_000),
      })
      .strict()
      .prefault({}),
    grpc: z
      .object({
        listen: hostPort().default('127.0.0.1:7701'),
        /** Plaintext gRPC. This build has no TLS yet, so it must be true. */
        insecure: z.boolean().default(false),
        max_message_bytes: byteSize().default(16 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    http: z
      .object({ listen: hostPort().default('127.0.0.1:7700') })
      .strict()
      .prefault({}),
    exporters: z.array(exporterConfigSchema).default([]),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.exporters.forEach((e, i) => {
      if (seen.has(e.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['exporters', i, 'name'],
          message: `duplicate exporter name "${e.name}"`,
        });
      }
      seen.add(e.name);
    });
    if (!cfg.grpc.insecure) {
      ctx.addIssue({
        code: 'custom',
        path: ['grpc', 'insecure'],
        message: 'TLS is not available in this build yet; set insecure: true (loopback only)',
      });
    }
  });

export type CollectorConfig = z.output<typeof collectorConfigSchema>;

export function loadCollectorConfig(file: string): CollectorConfig {
  return loadConfigFile(file, collectorConfigSchema);
}

export function parseCollectorConfig(text: string): CollectorConfig {
  return parseConfig(text, collectorConfigSchema);
}
