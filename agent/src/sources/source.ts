import type { AuditEvent } from '@sealtrail/event';
import type { Logger, Registry } from '@sealtrail/telemetry';
import type { Hono } from 'hono';
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
}

export interface Source {
  readonly name: string;
  /** Quick: background work runs under the source's own AbortController. */
  start(): Promise<void>;
  /** Idempotent: stops taking input, waits for what it accepted to be durable. */
  stop(): Promise<void>;
  /** Routes to mount on the agent's HTTP listener, if the source takes HTTP input. */
  readonly routes?: Hono;
}

export interface SourceFactory<C> {
  readonly type: string;
  create(settings: SourceSettings, config: C): Source;
}
