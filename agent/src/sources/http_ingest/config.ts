import { byteSize } from '@sealtrail/config';
import { z } from 'zod';
import { redactRulesSchema } from '../common/redact.js';

export const httpIngestConfigSchema = z
  .object({
    type: z.literal('http_ingest'),
    name: z.string().min(1),
    /** Largest request body accepted; a larger one gets 413 before it is read. */
    max_body_bytes: byteSize().default(16 * 1024 * 1024),
    /** Most events in one request. */
    max_events_per_request: z.number().int().positive().default(10_000),
    /**
     * When set, a request must carry `Authorization: Bearer <token>` (401 otherwise).
     * Put the token in the environment: `auth_token: ${SEALTRAIL_INGEST_TOKEN}`.
     */
    auth_token: z.string().min(16, 'the token must be at least 16 characters').optional(),
    /**
     * Serve `POST /v1/events` on this Unix socket instead of the agent's HTTP listener
     * (file permissions then decide who may post).
     */
    unix_socket: z.string().min(1).optional(),
    /** Permissions of the socket file, octal. */
    unix_socket_mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, 'expected an octal mode like "0660"')
      .default('0660'),
    /** Redaction rules for this source's events, after the agent-wide ones. */
    redact: redactRulesSchema,
  })
  .strict();

export type HttpIngestConfig = z.output<typeof httpIngestConfigSchema>;
