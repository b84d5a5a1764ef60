/**
 * `elasticsearch` (and OpenSearch): `_bulk` with `create` and `_id` = event id.
 *
 * A 200 with `errors: true` is walked item by item: 201/200 delivered, 409
 * (the `_id` exists: a re-send of something already indexed) delivered, 429
 * and 5xx sent again (only those items, after a backoff), any other status
 * (a mapping error, say) dead-lettered with Elasticsearch's `type: reason`.
 * The whole request: 429/5xx retried honouring `Retry-After`, 413 split in
 * halves, any other 4xx permanent.
 */
import { SealtrailError } from '@sealtrail/errors';
import type { Encoded } from '../common/batcher.js';
import {
  deliveryExporter,
  type Rejection,
  type Sender,
  type SendOutcome,
  sendSplittingOn413,
} from '../common/delivery.js';
import {
  closeTarget,
  gzip,
  httpRequest,
  httpTarget,
  isRetryableStatus,
  statusError,
} from '../common/http.js';
import type { ExporterFactory, ExporterSettings } from '../exporter.js';
import type { ElasticsearchExporterConfig } from './config.js';
import { bulkEncoder } from './encode.js';

interface BulkItem {
  status?: number;
  error?: { type?: string; reason?: string; caused_by?: { type?: string; reason?: string } };
}

interface BulkReply {
  errors?: boolean;
  items?: Record<string, BulkItem>[];
}

export function elasticsearchSender(s: ExporterSettings, c: ElasticsearchExporterConfig): Sender<string> {
  const target = httpTarget(
    c.endpoint,
    { connections: c.max_connections, tls: c.tls, timeoutMs: c.request_timeout },
    s.dispatcher,
  );
  const headers: Record<string, string> = {
    'content-type': 'application/x-ndjson',
    accept: 'application/json',
  };
  if (c.auth?.type === 'basic') {
    headers.authorization = `Basic ${Buffer.from(`${c.auth.username}:${c.auth.password}`).toString('base64')}`;
  } else if (c.auth?.type === 'api_key') headers.authorization = `ApiKey ${c.auth.api_key}`;
  const path = `${target.basePath}/_bulk${c.pipeline ? `?pipeline=${encodeURIComponent(c.pipeline)}` : ''}`;

  async function sendOnce(items: Encoded<string>[], signal: AbortSignal): Promise<SendOutcome | undefined> {
    const raw = items.map((i) => i.payload).join('');
    const h = { ...headers };
    let body: Buffer | string = raw;
    if (c.compression === 'gzip') {
      body = await gzip(raw, c.compression_level);
      h['content-encoding'] = 'gzip';
    }
    const res = await httpRequest(target, {
      method: 'POST',
      path,
      headers: h,
      body,
      timeoutMs: c.request_timeout,
      signal,
    });
    if (res.status === 413) throw new SealtrailError('ST_EXPORT_TOO_LARGE', `Elasticsearch _bulk: HTTP 413`);
    if (res.status < 200 || res.status >= 300) throw statusError(res, 'Elasticsearch _bulk');
    let reply: BulkReply;
    try {
      reply = JSON.parse(res.text) as BulkReply;
    } catch (cause) {
      throw new SealtrailError(
        'ST_ELASTIC_REPLY',
        'Elasticsearch _bulk answered with something other than JSON',
        {
          cause,
          retryable: true,
        },
      );
    }
    if (!reply.errors) return undefined;
    const results = reply.items ?? [];
    if (results.length !== items.length) {
      throw new SealtrailError(
        'ST_ELASTIC_REPLY',
        `Elasticsearch _bulk answered ${results.length} items for ${items.length} sent`,
        { retryable: true },
      );
    }
    const retry: number[] = [];
    const dead: Rejection[] = [];
    results.forEach((wrapped, i) => {
      const item = Object.values(wrapped)[0] ?? {};
      const status = item.status ?? 0;
      if ((status >= 200 && status < 300) || status === 409) return;
      if (isRetryableStatus(status)) retry.push(i);
      else {
        const e = item.error;
        const cause = e?.caused_by ? ` (caused by ${e.caused_by.type}: ${e.caused_by.reason})` : '';
        dead.push({
          index: i,
          reason: `Elasticsearch refused the document: HTTP ${status} ${e?.type ?? ''}: ${e?.reason ?? ''}${cause}`,
          code: `ST_ELASTIC_${status}`,
        });
      }
    });
    return { retry, dead };
  }

  const tooLarge = (err: unknown) => err instanceof SealtrailError && err.code === 'ST_EXPORT_TOO_LARGE';
  return {
    send: (items, signal) => sendSplittingOn413(items, (part) => sendOnce(part, signal), tooLarge),
    close: () => closeTarget(target),
  };
}

export const elasticsearchExporter: ExporterFactory<ElasticsearchExporterConfig> = {
  type: 'elasticsearch',
  create: (settings, config) =>
    deliveryExporter({
      settings,
      config,
      encode: bulkEncoder(config),
      sender: elasticsearchSender(settings, config),
    }),
};
