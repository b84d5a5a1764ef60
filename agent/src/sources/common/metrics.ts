/** Metrics shared by sources: one registration per registry, whatever the number of instances (hot reload re-creates sources). */
import { Counter, Gauge, type Registry } from '@sealtrail/telemetry';

type CounterConfig = { name: string; help: string; labelNames: string[] };

export function counter(registry: Registry, cfg: CounterConfig): Counter<string> {
  const existing = registry.getSingleMetric(cfg.name);
  if (existing) return existing as Counter<string>;
  return new Counter({ ...cfg, registers: [registry] });
}

export function gauge(registry: Registry, cfg: CounterConfig): Gauge<string> {
  const existing = registry.getSingleMetric(cfg.name);
  if (existing) return existing as Gauge<string>;
  return new Gauge({ ...cfg, registers: [registry] });
}

/** `sealtrail_source_events_total{source}`: events a source handed to the journal. */
export function sourceEvents(registry: Registry): Counter<string> {
  return counter(registry, {
    name: 'sealtrail_source_events_total',
    help: 'Events sealed into the journal, by source',
    labelNames: ['source', 'kind'],
  });
}

/** `sealtrail_source_errors_total{source,stage}`: problems a source met and went on from. */
export function sourceErrors(registry: Registry): Counter<string> {
  return counter(registry, {
    name: 'sealtrail_source_errors_total',
    help: 'Errors a source met and continued after, by stage',
    labelNames: ['source', 'kind', 'stage'],
  });
}
