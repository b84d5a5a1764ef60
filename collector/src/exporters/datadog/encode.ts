/**
 * One Datadog log per record: the reserved attributes (`ddsource`, `ddtags`,
 * `hostname`, `service`, `status`, `timestamp`) and the record in the
 * exporter's schema as attributes. A log over Datadog's 1 MB per-log limit
 * is refused here, before sending (Datadog would truncate it).
 */
import { SealtrailError } from '@sealtrail/errors';
import type { Encoded } from '../common/batcher.js';
import type { ExportRecord } from '../common/record.js';
import { shaper } from '../common/schemas.js';
import { DATADOG_MAX_LOG_BYTES, type DatadogExporterConfig } from './config.js';

const STATUS: Record<string, string> = {
  info: 'info',
  low: 'notice',
  medium: 'warning',
  high: 'error',
  critical: 'critical',
};

export function datadogEncoder(c: DatadogExporterConfig): (x: ExportRecord) => Encoded<string> {
  const shape = shaper(c.schema);
  return (x) => {
    const e = x.event;
    const tags = [`category:${e.category}`, `type:${e.type}`, `severity:${e.severity}`, ...c.tags].join(',');
    const payload = JSON.stringify({
      ddsource: c.ddsource,
      ddtags: tags,
      hostname: e.host.name,
      service: c.service,
      status: STATUS[e.severity] ?? 'info',
      timestamp: Date.parse(e.time),
      message: e.message ?? `${e.type} ${e.action} ${e.outcome}`,
      ...shape(x),
    });
    const bytes = Buffer.byteLength(payload);
    if (bytes > DATADOG_MAX_LOG_BYTES) {
      throw new SealtrailError(
        'ST_DATADOG_LOG_TOO_LARGE',
        `log is ${bytes} bytes, over Datadog's per-log limit of ${DATADOG_MAX_LOG_BYTES}`,
      );
    }
    return { x, payload, bytes: bytes + 1 };
  };
}
