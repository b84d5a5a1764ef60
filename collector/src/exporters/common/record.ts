/** A spool record on its way out: the stored record and its event, parsed once. */
import type { AuditEvent } from '@sealtrail/event';
import { SEVERITIES } from '@sealtrail/event';
import type { StoredRecord } from '../../spool/spool.js';
import type { FilterConfig } from './config.js';

export interface ExportRecord {
  record: StoredRecord;
  /** The event as stored. It was validated when it entered the collector, so it is not validated again. */
  event: AuditEvent;
}

export function toExportRecord(record: StoredRecord): ExportRecord {
  return { record, event: JSON.parse(record.eventBytes.toString('utf8')) as AuditEvent };
}

export const SEVERITY_RANK: Record<string, number> = Object.fromEntries(SEVERITIES.map((s, i) => [s, i]));

/** A predicate for one exporter's `filter`. */
export function compileFilter(f: FilterConfig): (e: AuditEvent) => boolean {
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
  return (e) =>
    (SEVERITY_RANK[e.severity] ?? 0) >= min &&
    (categories === undefined || categories.has(e.category)) &&
    (allTypes || exact.has(e.type) || prefixes.some((p) => e.type.startsWith(p)));
}
