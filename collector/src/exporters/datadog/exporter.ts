/**
 * `datadog`: logs intake v2 (`POST /api/v2/logs`, `DD-API-KEY`), a JSON array
 * per request within Datadog's limits (1000 logs, 5 MB uncompressed, 1 MB per
 * log), which the batcher and encoder enforce before sending. 202 is
 * accepted; 408, 429 and 5xx are retried (honouring `Retry-After`); 413
 * splits the batch; any other 4xx (400, 401, 403) is permanent.
 */
import { SealtrailError } from '@sealtrail/errors';
import type { Encoded } from '../common/batcher.js';
import { deliveryExporter, type Sender, sendSplittingOn413 } from '../common/delivery.js';
import { closeTarget, gzip, httpRequest, httpTarget, statusError } from '../common/http.js';
import type { ExporterFactory, ExporterSettings } from '../exporter.js';
import type { DatadogExporterConfig } from './config.js';
import { datadogEncoder } from './encode.js';

export function datadogSender(s: ExporterSettings, c: DatadogExporterConfig): Sender<string> {
  const endpoint = c.endpoint ?? `https://http-intake.logs.${c.site}`;
  const target = httpTarget(
    endpoint,
    { connections: c.max_connections, tls: c.tls, timeoutMs: c.request_timeout },
    s.dispatcher,
  );
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'dd-api-key': c.api_key,
    accept: 'application/json',
  };

  async function sendOnce(items: Encoded<string>[], signal: AbortSignal): Promise<undefined> {
    const raw = `[${items.map((i) => i.payload).join(',')}]`;
    const h = { ...headers };
    let body: Buffer | string = raw;
    if (c.compression === 'gzip') {
      body = await gzip(raw, c.compression_level);
      h['content-encoding'] = 'gzip';
    }
    const res = await httpRequest(target, {
      method: 'POST',
      path: `${target.basePath}/api/v2/logs`,
      headers: h,
      body,
      timeoutMs: c.request_timeout,
      signal,
    });
    if (res.status >= 200 && res.status < 300) return undefined;
    if (res.status === 413) {
      throw new SealtrailError(
        'ST_EXPORT_TOO_LARGE',
        `Datadog: HTTP 413 payload too large: ${res.text.slice(0, 200)}`,
      );
    }
    throw statusError(res, 'Datadog logs intake');
  }

  const tooLarge = (err: unknown) => err instanceof SealtrailError && err.code === 'ST_EXPORT_TOO_LARGE';
  return {
    send: (items, signal) => sendSplittingOn413(items, (part) => sendOnce(part, signal), tooLarge),
    close: () => closeTarget(target),
  };
}

export const datadogExporter: ExporterFactory<DatadogExporterConfig> = {
  type: 'datadog',
  create: (settings, config) =>
    deliveryExporter({
      settings,
      config,
      encode: datadogEncoder(config),
      sender: datadogSender(settings, config),
    }),
};
