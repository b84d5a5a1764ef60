import type { Logger, Registry } from '@sealtrail/telemetry';
import type { Dispatcher } from 'undici';
import type { Spool } from '../spool/spool.js';

/** What the collector hands every exporter it creates. */
export interface ExporterSettings {
  spool: Spool;
  log: Logger;
  registry: Registry;
  /** HTTP exporters send through this instead of their own keep-alive pool (tests inject a `MockAgent`). */
  dispatcher?: Dispatcher;
}

export interface Exporter {
  readonly name: string;
  /** Quick: the delivery loop runs in the background under the exporter's AbortController. */
  start(): Promise<void>;
  /** Idempotent: finishes the batch in hand, records the cursor, then stops. */
  stop(): Promise<void>;
  /** Spool records not yet delivered. */
  lag(): bigint;
}

export interface ExporterFactory<C> {
  readonly type: string;
  create(settings: ExporterSettings, config: C): Exporter;
}
