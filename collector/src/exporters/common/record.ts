/** A spool record on its way out: the stored record and its event, parsed once, and only when needed. */
import type { AuditEvent } from '@sealtrail/event';
import { SEVERITIES } from '@sealtrail/event';
import type { StoredRecord } from '../../spool/spool.js';
import type { FilterConfig } from './config.js';

export interface ExportRecord {
  readonly record: StoredRecord;
  /**
   * The event as stored, parsed (JSON.parse, not zod) on first use: a native
   * line spliced from the stored bytes behind a pass-all filter never needs it.
   * It was validated when it entered the collector, so it is not validated again.
   * Throws when the stored bytes are not JSON.
   */
  readonly event: AuditEvent;
  /** The stored bytes as text, decoded once for the parse and the native splice. */
  readonly text: string;
}

class LazyExportRecord implements ExportRecord {
  private parsed: AuditEvent | undefined;
  private decoded: string | undefined;
  constructor(readonly record: StoredRecord) {}
  get text(): string {
    this.decoded ??= this.record.eventBytes.toString('utf8');
    return this.decoded;
  }
  get event(): AuditEvent {
    this.parsed ??= JSON.parse(this.text) as AuditEvent;
    return this.parsed;
  }
}

export function toExportRecord(record: StoredRecord): ExportRecord {
  return new LazyExportRecord(record);
}

/** The event id for a dead letter; undefined when the stored bytes do not parse. */
export function eventIdOf(x: ExportRecord): string | undefined {
  try {
    return x.event.id;
  } catch {
    return undefined;
  }
}

export const SEVERITY_RANK: Record<string, number> = Object.fromEntries(SEVERITIES.map((s, i) => [s, i]));

/** A predicate for one exporter's `filter`; undefined when it lets everything through (no parse needed). */
export function compileFilter(f: FilterConfig): ((e: AuditEvent) => boolean) | undefined {
  const categories = f.categories ? new Set<string>(f.categories) : undefined;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  let allTypes = f.types === undefined;
  for (const t of f.types ?? []) {
    if (t === '*') allTypes = true;
    else if (t.endsWith('.*')) prefixes.push(t.slice(0, -1));
    else exact.add(t);
  }
  const min = SEVERITY_RANK[f.min_severity] ?? 0;
  if (min === 0 && categories === undefined && allTypes) return undefined;
  return (e) =>
    (SEVERITY_RANK[e.severity] ?? 0) >= min &&
    (categories === undefined || categories.has(e.category)) &&
    (allTypes || exact.has(e.type) || prefixes.some((p) => e.type.startsWith(p)));
}
