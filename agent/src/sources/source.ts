import type { AuditEvent } from '@sealtrail/event';
import type { Logger, Registry } from '@sealtrail/telemetry';
import type { Hono } from 'hono';
import type { z } from 'zod';
import type { Journal } from '../journal/journal.js';

/** What the agent hands every source it creates. */
export interface SourceSettings {
  journal: Journal;
  host: AuditEvent['host'];
  log: Logger;
  registry: Registry;
  maxEventBytes: number;
  /** True while the journal holds more unshipped records than its high-water mark. */
  overHighWater(): boolean;
  /** The agent-wide redaction rules (top-level `redact:`), applied before a source's own. */
  redact(event: AuditEvent): AuditEvent;
}

export interface Source {
  readonly name: string;
  /** Quick: background work runs under the source's own AbortController. Rejects when the source cannot run at all. */
  start(): Promise<void>;
  /** Idempotent: stops taking input, waits for what it accepted to be durable. */
  stop(): Promise<void>;
  /** Routes to mount on the agent's HTTP listener, if the source takes HTTP input. */
  readonly routes?: Hono;
}

export interface SourceFactory<C> {
  readonly type: string;
  readonly configSchema: z.ZodType;
  create(settings: SourceSettings, config: C): Source;
}
