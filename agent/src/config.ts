/** agent.yaml: one zod schema, defaults in it, unknown keys rejected. */
import { hostname } from 'node:os';
import { byteSize, duration, hostPort, loadConfigFile, parseConfig } from '@sealtrail/config';
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
        log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
        /** Reload the sources when the config file changes (SIGHUP always reloads). */
        watch_config: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    collector: z
      .object({
        address: hostPort().default('127.0.0.1:7701'),
        /** Plaintext gRPC. This build has no TLS yet, so it must be true. */
        insecure: z.boolean().default(false),
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
        /** Unshipped records above which producers are held back (HTTP ingest answers 429). */
        high_water_records: z.number().int().positive().default(1_000_000),
      })
      .strict()
      .prefault({}),
    sources: z.array(sourceConfigSchema).default([]),
    /** Redaction rules applied to every source's events before sealing (then each source's own). */
    redact: redactRulesSchema,
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.sources.forEach((s, i) => {
      if (seen.has(s.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['sources', i, 'name'],
          message: `duplicate source name "${s.name}"`,
        });
      }
      seen.add(s.name);
    });
    if (!cfg.collector.insecure) {
      ctx.addIssue({
        code: 'custom',
        path: ['collector', 'insecure'],
        message:
          'TLS to the collector is not available in this build yet; set insecure: true (loopback only)',
      });
    }
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;

export function loadAgentConfig(file: string): AgentConfig {
  return loadConfigFile(file, agentConfigSchema);
}

export function parseAgentConfig(text: string): AgentConfig {
  return parseConfig(text, agentConfigSchema);
}
