/** agent.yaml: one zod schema, defaults in it, unknown keys rejected. */
import { hostname } from 'node:os';
import {
  byteSize,
  duration,
  hostPort,
  loadConfigFile,
  logLevel,
  parseConfig,
  uniqueNames,
} from '@sealtrail/config';
import { DEFAULT_MAX_EVENT_BYTES } from '@sealtrail/event';
import { z } from 'zod';
import { redactRulesSchema } from './sources/common/redact.js';
import { sourceConfigSchema } from './sources/index.js';

export const agentConfigSchema = z
  .object({
    agent: z
      .object({
        data_dir: z.string().min(1).default('/var/lib/sealtrail/agent'),
        /** Host name put on every event; the machine's by default. */
        name: z.string().min(1).default(hostname()),
        log_level: logLevel(),
        /** Reload the sources when the config file changes (SIGHUP always reloads). */
        watch_config: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    collector: z
      .object({
        address: hostPort().default('127.0.0.1:7701'),
        /** Plaintext gRPC, loopback development only. TLS otherwise. */
        insecure: z.boolean().default(false),
        /** The collector's CA certificate. Default: <data_dir>/collector-ca.crt, written by `enroll`. */
        ca_file: z.string().optional(),
        /** Client certificate and key, for collectors that require mutual TLS. */
        cert_file: z.string().optional(),
        key_file: z.string().optional(),
        /** The name to verify the collector's certificate against, when it differs from the address's host. */
        server_name: z.string().optional(),
        compression: z.enum(['none', 'gzip']).default('none'),
        batch_max_records: z.number().int().positive().default(1000),
        batch_max_bytes: byteSize().default(1024 * 1024),
        /** Batches sent but not yet acknowledged. */
        max_inflight_batches: z.number().int().positive().default(8),
        reconnect_initial: duration().default(250),
        reconnect_max: duration().default(30_000),
        reconnect_multiplier: z.number().min(1).default(2),
      })
      .strict()
      .prefault({}),
    http: z
      .object({ listen: hostPort().default('127.0.0.1:7780') })
      .strict()
      .prefault({}),
    journal: z
      .object({
        /** Canonical size cap per event; larger input is refused, never truncated. */
        max_event_bytes: byteSize().default(DEFAULT_MAX_EVENT_BYTES),
        /** Unshipped event bytes the journal may hold. */
        max_bytes: byteSize().default(1024 ** 3),
        /** Unshipped records the journal may hold. */
        max_records: z.number().int().positive().default(10_000_000),
        /** Fraction of the bound above which HTTP ingest answers 429 (other sources keep going until full). */
        high_water: z.number().gt(0).max(1).default(0.8),
        /** When full: `block` holds producers back; `drop_oldest` drops the oldest unshipped payloads and seals a gap event. */
        on_full: z.enum(['block', 'drop_oldest']).default('block'),
        /** How long an append waits for others to share its fsync. */
        commit_window: duration().default(2),
      })
      .strict()
      .prefault({}),
    checkpoint: z
      .object({
        every_events: z.number().int().positive().default(1000),
        every_seconds: z.number().positive().default(30),
        /** An idle agent still checkpoints this often, so silence is visible. */
        idle_seconds: z.number().positive().default(60),
      })
      .strict()
      .prefault({}),
    sources: z.array(sourceConfigSchema).default([]),
    /** Redaction rules applied to every source's events before sealing (then each source's own). */
    redact: redactRulesSchema,
  })
  .strict()
  .superRefine(uniqueNames('sources', 'source'));

export type AgentConfig = z.output<typeof agentConfigSchema>;

export function loadAgentConfig(file: string): AgentConfig {
  return loadConfigFile(file, agentConfigSchema);
}

export function parseAgentConfig(text: string): AgentConfig {
  return parseConfig(text, agentConfigSchema);
}
