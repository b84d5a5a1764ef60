/**
 * One set of exporter metrics per registry, labelled by exporter name and type:
 *   sealtrail_exporter_events_sent_total            accepted by the destination
 *   sealtrail_exporter_events_failed_total          in an attempt that failed (each attempt counts)
 *   sealtrail_exporter_events_retried_total         sent again after a retryable failure
 *   sealtrail_exporter_events_dead_lettered_total   refused for good, kept in the dead-letter store
 *   sealtrail_exporter_events_filtered_total        skipped by the exporter's filter (or duplicate ids)
 *   sealtrail_exporter_lag_records                  spool records not yet delivered
 *   sealtrail_exporter_lag_seconds                  age of the oldest record not yet delivered
 *   sealtrail_exporter_request_duration_seconds     one request (or write) to the destination
 */
import { Counter, Gauge, Histogram, type Registry } from '@sealtrail/telemetry';

export interface LagSource {
  lagRecords(): number;
  lagSeconds(): Promise<number>;
}

export interface ExporterMetrics {
  sent: Counter<'exporter' | 'type'>;
  failed: Counter<'exporter' | 'type'>;
  retried: Counter<'exporter' | 'type'>;
  deadLettered: Counter<'exporter' | 'type'>;
  filtered: Counter<'exporter' | 'type'>;
  latency: Histogram<'exporter' | 'type'>;
  lag: Map<string, { type: string; source: LagSource }>;
}

const byRegistry = new WeakMap<Registry, ExporterMetrics>();

function metricsFor(registry: Registry): ExporterMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const labelNames = ['exporter', 'type'] as const;
  const registers = [registry];
  const lag = new Map<string, { type: string; source: LagSource }>();
  m = {
    sent: new Counter({
      name: 'sealtrail_exporter_events_sent_total',
      help: 'Events the destination accepted',
      labelNames,
      registers,
    }),
    failed: new Counter({
      name: 'sealtrail_exporter_events_failed_total',
      help: 'Events in a delivery attempt that failed (each attempt counts)',
      labelNames,
      registers,
    }),
    retried: new Counter({
      name: 'sealtrail_exporter_events_retried_total',
      help: 'Events sent again after a retryable failure',
      labelNames,
      registers,
    }),
    deadLettered: new Counter({
      name: 'sealtrail_exporter_events_dead_lettered_total',
      help: 'Events the destination refused for good, kept in the dead-letter store',
      labelNames,
      registers,
    }),
    filtered: new Counter({
      name: 'sealtrail_exporter_events_filtered_total',
      help: "Spool records skipped by the exporter's filter or as duplicate event ids",
      labelNames,
      registers,
    }),
    latency: new Histogram({
      name: 'sealtrail_exporter_request_duration_seconds',
      help: 'Duration of one request (or write) to the destination',
      labelNames,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    lag,
  };
  new Gauge({
    name: 'sealtrail_exporter_lag_records',
    help: 'Spool records the exporter has not delivered yet',
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const [exporter, l] of lag) this.set({ exporter, type: l.type }, l.source.lagRecords());
    },
  });
  new Gauge({
    name: 'sealtrail_exporter_lag_seconds',
    help: 'How long the oldest record the exporter has not delivered has been in the spool',
    labelNames,
    registers,
    async collect() {
      this.reset();
      for (const [exporter, l] of lag) this.set({ exporter, type: l.type }, await l.source.lagSeconds());
    },
  });
  byRegistry.set(registry, m);
  return m;
}

/** The metrics of one exporter, labels bound. */
export function exporterMetrics(registry: Registry, exporter: string, type: string, lag: LagSource) {
  const m = metricsFor(registry);
  m.lag.set(exporter, { type, source: lag });
  const labels = { exporter, type };
  return {
    sent: (n: number) => n > 0 && m.sent.inc(labels, n),
    failed: (n: number) => n > 0 && m.failed.inc(labels, n),
    retried: (n: number) => n > 0 && m.retried.inc(labels, n),
    deadLettered: (n: number) => n > 0 && m.deadLettered.inc(labels, n),
    filtered: (n: number) => n > 0 && m.filtered.inc(labels, n),
    observe: (seconds: number) => m.latency.observe(labels, seconds),
    /** Stops reporting lag for this exporter (it was stopped). */
    release: () => {
      if (m.lag.get(exporter)?.source === lag) m.lag.delete(exporter);
    },
  };
}

export type BoundExporterMetrics = ReturnType<typeof exporterMetrics>;
