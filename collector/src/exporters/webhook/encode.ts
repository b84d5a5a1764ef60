/**
 * The webhook body is a JSON array of events in the exporter's schema, and its
 * signature is `sha256=` + hex HMAC-SHA256(secret, `<timestamp>.<body>`), the
 * timestamp (Unix seconds) sent beside it so a receiver can refuse replays.
 * The body signed is the body as sent on the wire.
 */
import { createHmac } from 'node:crypto';
import type { Encoded } from '../common/batcher.js';
import type { ExportRecord } from '../common/record.js';
import { jsonFor } from '../common/schemas.js';
import type { WebhookExporterConfig } from './config.js';

export function webhookEncoder(c: WebhookExporterConfig): (x: ExportRecord) => Encoded<string> {
  const json = jsonFor(c.schema);
  return (x) => {
    const payload = json(x);
    return { x, payload, bytes: Buffer.byteLength(payload) + 1 };
  };
}

export function webhookBody(items: Encoded<string>[]): string {
  return `[${items.map((i) => i.payload).join(',')}]`;
}

export function sign(secret: string, timestamp: string, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}
