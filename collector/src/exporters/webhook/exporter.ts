/**
 * `webhook`: a generic JSON POST (or PUT) of each batch, signed with
 * HMAC-SHA256 when a `secret` is set. 2xx is accepted; 408, 429 and 5xx are
 * retried (honouring `Retry-After`); 413 splits the batch; any other 4xx is
 * permanent.
 */
import { SealtrailError } from '@sealtrail/errors';
import type { Encoded } from '../common/batcher.js';
import { deliveryExporter, type Sender, sendSplittingOn413 } from '../common/delivery.js';
import { closeTarget, gzip, httpRequest, httpTarget, statusError } from '../common/http.js';
import type { ExporterFactory, ExporterSettings } from '../exporter.js';
import type { WebhookExporterConfig } from './config.js';
import { sign, webhookBody, webhookEncoder } from './encode.js';

export function webhookSender(s: ExporterSettings, c: WebhookExporterConfig): Sender<string> {
  const target = httpTarget(
    c.url,
    { connections: c.max_connections, tls: c.tls, timeoutMs: c.request_timeout },
    s.dispatcher,
  );
  const u = new URL(c.url);
  const path = `${u.pathname}${u.search}`;
  const headers: Record<string, string> = { ...c.headers, 'content-type': 'application/json' };

  async function sendOnce(items: Encoded<string>[], signal: AbortSignal): Promise<undefined> {
    const h: Record<string, string> = { ...headers };
    let body: Buffer | string = webhookBody(items);
    if (c.compression === 'gzip') {
      body = await gzip(body, c.compression_level);
      h['content-encoding'] = 'gzip';
    }
    if (c.secret) {
      const ts = Math.floor(Date.now() / 1000).toString();
      h[c.timestamp_header] = ts;
      h[c.signature_header] = sign(c.secret, ts, body);
    }
    const res = await httpRequest(target, {
      method: c.method,
      path,
      headers: h,
      body,
      timeoutMs: c.request_timeout,
      signal,
    });
    if (res.status >= 200 && res.status < 300) return undefined;
    if (res.status === 413) throw new SealtrailError('ST_EXPORT_TOO_LARGE', 'webhook: HTTP 413');
    throw statusError(res, `webhook ${c.method} ${u.origin}${u.pathname}`);
  }

  const tooLarge = (err: unknown) => err instanceof SealtrailError && err.code === 'ST_EXPORT_TOO_LARGE';
  return {
    send: (items, signal) => sendSplittingOn413(items, (part) => sendOnce(part, signal), tooLarge),
    close: () => closeTarget(target),
  };
}

export const webhookExporter: ExporterFactory<WebhookExporterConfig> = {
  type: 'webhook',
  create: (settings, config) =>
    deliveryExporter({
      settings,
      config,
      encode: webhookEncoder(config),
      sender: webhookSender(settings, config),
    }),
};
