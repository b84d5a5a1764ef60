/**
 * `splunk_hec`: Splunk HTTP Event Collector, `/services/collector/event`.
 *
 * Answers (Splunk's documented HEC status codes): 200 with `code: 0` is
 * accepted; `code` 8 (internal error) and 9 (server busy), HTTP 429, 503 and
 * other 5xx are retried honouring `Retry-After`; a 400 naming
 * `invalid-event-number: n` means events before n were indexed, event n was
 * refused (dead-lettered with Splunk's text) and events after it were not
 * looked at (sent again at once); any other 4xx (bad token, unknown index, …)
 * is permanent. With `ack.enabled`, requests carry a channel GUID and the
 * batch counts as delivered only once `/services/collector/ack` says it was
 * indexed; an ack that does not come within `ack.timeout` re-sends the batch.
 */
import { randomUUID } from 'node:crypto';
import { SealtrailError } from '@sealtrail/errors';
import { sleep } from '../common/backoff.js';
import type { Encoded } from '../common/batcher.js';
import { deliveryExporter, type Sender, type SendOutcome, sendSplittingOn413 } from '../common/delivery.js';
import {
  closeTarget,
  gzip,
  httpRequest,
  httpTarget,
  isRetryableStatus,
  statusError,
} from '../common/http.js';
import type { ExporterFactory, ExporterSettings } from '../exporter.js';
import type { SplunkHecExporterConfig } from './config.js';
import { hecEncoder } from './encode.js';

/** HEC `code`s worth retrying whatever the HTTP status: 8 internal error, 9 server busy, 18-20 unhealthy. */
const RETRYABLE_HEC_CODES = new Set([8, 9, 18, 19, 20]);

interface HecReply {
  text?: string;
  code?: number;
  'invalid-event-number'?: number;
  ackId?: number;
}

function parseReply(text: string): HecReply {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' ? (v as HecReply) : {};
  } catch {
    return {};
  }
}

export function splunkSender(s: ExporterSettings, c: SplunkHecExporterConfig): Sender<string> {
  const target = httpTarget(
    c.endpoint,
    { connections: c.max_connections, tls: c.tls, timeoutMs: c.request_timeout },
    s.dispatcher,
  );
  const channel = c.ack.channel ?? randomUUID();
  const baseHeaders: Record<string, string> = {
    authorization: `Splunk ${c.token}`,
    'content-type': 'application/json',
  };
  if (c.ack.enabled) baseHeaders['x-splunk-request-channel'] = channel;

  const tooLarge = (err: unknown) => err instanceof SealtrailError && err.code === 'ST_EXPORT_TOO_LARGE';

  async function waitForAck(ackId: number, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + c.ack.timeout;
    for (;;) {
      await sleep(c.ack.poll_interval, signal);
      const res = await httpRequest(target, {
        method: 'POST',
        path: `${target.basePath}/services/collector/ack?channel=${channel}`,
        headers: { ...baseHeaders },
        body: JSON.stringify({ acks: [ackId] }),
        timeoutMs: c.request_timeout,
        signal,
      });
      if (res.status !== 200) throw statusError(res, 'Splunk HEC ack');
      const acks = (parseReply(res.text) as { acks?: Record<string, boolean> }).acks ?? {};
      if (acks[String(ackId)] === true) return;
      if (Date.now() >= deadline) {
        throw new SealtrailError(
          'ST_SPLUNK_ACK_TIMEOUT',
          `Splunk did not acknowledge ackId ${ackId} within ${c.ack.timeout} ms; sending the batch again`,
          { retryable: true },
        );
      }
    }
  }

  async function sendOnce(items: Encoded<string>[], signal: AbortSignal): Promise<SendOutcome | undefined> {
    const raw = items.map((i) => i.payload).join('\n');
    const headers = { ...baseHeaders };
    let body: Buffer | string = raw;
    if (c.compression === 'gzip') {
      body = await gzip(raw, c.compression_level);
      headers['content-encoding'] = 'gzip';
    }
    const res = await httpRequest(target, {
      method: 'POST',
      path: `${target.basePath}/services/collector/event`,
      headers,
      body,
      timeoutMs: c.request_timeout,
      signal,
    });
    const reply = parseReply(res.text);
    const code = reply.code;
    if (res.status === 200 && (code === undefined || code === 0)) {
      if (c.ack.enabled) {
        if (typeof reply.ackId !== 'number') {
          throw new SealtrailError(
            'ST_SPLUNK_NO_ACK',
            'Splunk accepted the batch without an ackId: indexer acknowledgement is off for this token; set ack.enabled: false',
          );
        }
        await waitForAck(reply.ackId, signal);
      }
      return undefined;
    }
    const n = reply['invalid-event-number'];
    if (res.status === 400 && typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < items.length) {
      const retry: number[] = [];
      for (let i = n + 1; i < items.length; i++) retry.push(i);
      return {
        dead: [
          {
            index: n,
            reason: `Splunk HEC refused the event: ${reply.text ?? 'invalid event'} (code ${code})`,
            code: `ST_SPLUNK_CODE_${code}`,
          },
        ],
        retry,
        retryNow: true,
      };
    }
    if (res.status === 413) {
      throw new SealtrailError('ST_EXPORT_TOO_LARGE', `Splunk HEC: HTTP 413: ${res.text.slice(0, 200)}`);
    }
    const err = statusError(res, `Splunk HEC${code !== undefined ? ` code ${code}` : ''}`);
    if (!isRetryableStatus(res.status) && code !== undefined && RETRYABLE_HEC_CODES.has(code)) {
      throw new SealtrailError(err.code, err.message, { retryable: true });
    }
    throw err;
  }

  return {
    send: (items, signal) => sendSplittingOn413(items, (part) => sendOnce(part, signal), tooLarge),
    close: () => closeTarget(target),
  };
}

export const splunkHecExporter: ExporterFactory<SplunkHecExporterConfig> = {
  type: 'splunk_hec',
  create: (settings, config) =>
    deliveryExporter({
      settings,
      config,
      encode: hecEncoder(config),
      sender: splunkSender(settings, config),
    }),
};
