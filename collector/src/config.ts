/** collector.yaml: one zod schema, defaults in it, unknown keys rejected. */
import { join } from 'node:path';
import {
  byteSize,
  duration,
  hostPort,
  loadConfigFile,
  logLevel,
  parseConfig,
  uniqueNames,
} from '@sealtrail/config';
import { z } from 'zod';
import { exporterConfigSchema } from './exporters/index.js';

export const collectorConfigSchema = z
  .object({
    collector: z
      .object({
        data_dir: z.string().min(1).default('/var/lib/sealtrail/collector'),
        log_level: logLevel(),
        /** How long an event id is remembered for dedupe (an app that retried a POST). */
        dedupe_window: duration().default(7 * 86_400_000),
      })
      .strict()
      .prefault({}),
    grpc: z
      .object({
        listen: hostPort().default('127.0.0.1:7701'),
        /** Plaintext gRPC, loopback development only; agents are then trusted on first use. */
        insecure: z.boolean().default(false),
        tls: z
          .object({
            /** Defaults: server.crt / server.key in the PKI dir made by `sealtrail-collector init`. */
            cert_file: z.string().optional(),
            key_file: z.string().optional(),
            /** Set to require client certificates signed by this CA (mutual TLS, your own PKI). */
            client_ca_file: z.string().optional(),
          })
          .strict()
          .prefault({}),
        max_message_bytes: byteSize().default(16 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    http: z
      .object({ listen: hostPort().default('127.0.0.1:7700') })
      .strict()
      .prefault({}),
    pki: z
      .object({
        /** Where `init` writes the CA, server certificate, API key hashes and token secret. Default: <data_dir>/pki. */
        dir: z.string().optional(),
      })
      .strict()
      .prefault({}),
    enrollment: z
      .object({
        /** How long a token from `token create` stays valid. */
        token_ttl: duration().default(86_400_000),
      })
      .strict()
      .prefault({}),
    exporters: z.array(exporterConfigSchema).default([]),
  })
  .strict()
  .superRefine(uniqueNames('exporters', 'exporter'));

export type CollectorConfig = z.output<typeof collectorConfigSchema>;

/** The PKI directory: configured, or `<data_dir>/pki`. */
export function pkiDir(cfg: CollectorConfig): string {
  return cfg.pki.dir ?? join(cfg.collector.data_dir, 'pki');
}

export function loadCollectorConfig(file: string): CollectorConfig {
  return loadConfigFile(file, collectorConfigSchema);
}

export function parseCollectorConfig(text: string): CollectorConfig {
  return parseConfig(text, collectorConfigSchema);
}
