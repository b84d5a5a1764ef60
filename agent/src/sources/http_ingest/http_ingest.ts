/**
 * `http_ingest`: local applications POST events to /v1/events — one JSON object,
 * a JSON array, or NDJSON (`application/x-ndjson`). Every item is validated on
 * its own; valid items are sealed even when others in the request are refused,
 * and the reply lists, per item, the id accepted or the reason refused. The
 * reply is sent only after the accepted items are durable in the journal.
 *
 * With `auth_token` every request must carry `Authorization: Bearer <token>`.
 * With `unix_socket` the routes are served on that socket (mode `unix_socket_mode`)
 * instead of the agent's TCP listener.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { SealtrailError } from '@sealtrail/errors';
import {
  type AuditEvent,
  canonicalBytes,
  completeIngestEvent,
  ingestEventFast,
  validateEvent,
  validateIngestEvent,
} from '@sealtrail/event';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { counter } from '../common/metrics.js';
import { compileRedaction } from '../common/redact.js';
import type { Source, SourceFactory, SourceSettings } from '../source.js';
import { type HttpIngestConfig, httpIngestConfigSchema } from './config.js';

export type ItemResult =
  | { index: number; status: 'accepted'; id: string }
  | { index: number; status: 'rejected'; code: 'malformed' | 'invalid' | 'too_large'; error: string };

/** Splits a request body into items; a malformed NDJSON line is one bad item, not a bad request. */
export function splitBody(
  text: string,
  contentType: string,
): { items: unknown[]; malformed: Map<number, string> } | string {
  const malformed = new Map<number, string>();
  if (/ndjson|jsonl|json-seq/i.test(contentType)) {
    const items: unknown[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        items.push(JSON.parse(line));
      } catch (err) {
        malformed.set(items.length, `not JSON: ${(err as Error).message}`);
        items.push(undefined);
      }
    }
    return { items, malformed };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return `request body is not JSON: ${(err as Error).message}`;
  }
  if (Array.isArray(parsed)) return { items: parsed, malformed };
  if (parsed && typeof parsed === 'object') return { items: [parsed], malformed };
  return 'request body must be a JSON object, an array of objects, or NDJSON';
}

const YIELD_EVERY = 200;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

class HttpIngest implements Source {
  /** Mounted on the agent's listener; absent when the source serves its own Unix socket. */
  readonly routes?: Hono;
  private readonly app: Hono;
  private stopped = false;
  private inflight = new Set<Promise<unknown>>();
  private socketServer: Server | null = null;
  private readonly redact: (e: AuditEvent) => AuditEvent;

  constructor(
    private readonly settings: SourceSettings,
    private readonly config: HttpIngestConfig,
  ) {
    const items = counter(settings.registry, {
      name: 'sealtrail_http_ingest_items_total',
      help: 'Items received over HTTP, by outcome',
      labelNames: ['source', 'outcome'],
    });
    const own = compileRedaction(config.redact);
    this.redact = (e) => own(settings.redact(e));
    this.app = new Hono();
    if (config.auth_token !== undefined) {
      const want = digest(config.auth_token);
      this.app.use('/v1/*', async (c, next) => {
        const m = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '');
        // Compare digests in constant time: the token's length and prefix are not observable.
        if (!m || !timingSafeEqual(digest(m[1]!.trim()), want)) {
          items.inc({ source: config.name, outcome: 'unauthorized' });
          // Read (a bounded) body first: answering before it is consumed resets the connection
          // under the client, which then sees EPIPE instead of the 401.
          const length = Number(c.req.header('content-length') ?? 0);
          if (length > 0 && length <= config.max_body_bytes) await c.req.arrayBuffer().catch(() => {});
          return c.json({ error: 'missing or wrong bearer token' }, 401, {
            'WWW-Authenticate': 'Bearer realm="sealtrail"',
          });
        }
        await next();
      });
    }
    if (config.unix_socket === undefined) this.routes = this.app;
    this.app.post(
      '/v1/events',
      bodyLimit({
        maxSize: config.max_body_bytes,
        onError: (c) => c.json({ error: `request body over ${config.max_body_bytes} bytes` }, 413),
      }),
      async (c) => {
        if (this.stopped) return c.json({ error: 'agent is shutting down' }, 503, { 'Retry-After': '5' });
        if (settings.overHighWater()) {
          return c.json({ error: 'journal is over its high-water mark; retry later' }, 429, {
            'Retry-After': '1',
          });
        }
        const split = splitBody(await c.req.text(), c.req.header('content-type') ?? '');
        if (typeof split === 'string') return c.json({ error: split }, 400);
        if (split.items.length > config.max_events_per_request) {
          return c.json(
            {
              error: `${split.items.length} events in one request, over the limit of ${config.max_events_per_request}`,
            },
            413,
          );
        }
        const work = this.ingest(split.items, split.malformed);
        this.inflight.add(work);
        let results: ItemResult[];
        try {
          results = await work;
        } catch (err) {
          settings.log.error({ err }, 'journal append failed');
          return c.json({ error: `events not stored: ${(err as Error).message}` }, 503, {
            'Retry-After': '5',
          });
        } finally {
          this.inflight.delete(work);
        }
        const accepted = results.filter((r) => r.status === 'accepted').length;
        const rejected = results.length - accepted;
        items.inc({ source: config.name, outcome: 'accepted' }, accepted);
        if (rejected) items.inc({ source: config.name, outcome: 'rejected' }, rejected);
        let status: 202 | 207 | 400 | 413 = 202;
        if (rejected > 0 && accepted > 0) status = 207;
        else if (rejected > 0) {
          status = results.every((r) => r.status === 'rejected' && r.code === 'too_large') ? 413 : 400;
        }
        return c.json({ accepted, rejected, results }, status);
      },
    );
  }

  get name(): string {
    return this.config.name;
  }

  private async ingest(items: unknown[], malformed: Map<number, string>): Promise<ItemResult[]> {
    const { host, maxEventBytes } = this.settings;
    const source = { kind: 'http_ingest' as const, name: this.config.name };
    const results: ItemResult[] = [];
    const bytes: Buffer[] = [];
    const now = new Date();
    const observed = now.toISOString();
    for (const [index, item] of items.entries()) {
      // Let the shipper and other requests run between slices of a large request.
      if (index > 0 && index % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
      const bad = malformed.get(index);
      if (bad) {
        results.push({ index, status: 'rejected', code: 'malformed', error: bad });
        continue;
      }
      // zod for whatever the hand-written check is not sure of: it words every refusal.
      let value = ingestEventFast(item);
      if (!value) {
        const v = validateIngestEvent(item);
        if (!v.ok) {
          results.push({ index, status: 'rejected', code: 'invalid', error: v.errors.join('; ') });
          continue;
        }
        value = v.value;
      }
      const complete = completeIngestEvent(value, { host, source, now, observed });
      const event = this.redact(complete);
      // Redaction (a copy, only when there are rules) can break the shape, e.g. masking all of `actor`.
      if (event !== complete) {
        const r = validateEvent(event);
        if (!r.ok) {
          const error = `invalid after redaction: ${r.errors.join('; ')}`;
          results.push({ index, status: 'rejected', code: 'invalid', error });
          continue;
        }
      }
      let b: Buffer;
      try {
        b = canonicalBytes(event);
      } catch (err) {
        // A lone surrogate in a string: valid JSON text, but no canonical form.
        results.push({ index, status: 'rejected', code: 'invalid', error: (err as Error).message });
        continue;
      }
      if (b.length > maxEventBytes) {
        const error = `event is ${b.length} canonical bytes, over the limit of ${maxEventBytes}`;
        results.push({ index, status: 'rejected', code: 'too_large', error });
        continue;
      }
      bytes.push(b);
      results.push({ index, status: 'accepted', id: event.id });
    }
    if (bytes.length > 0) await this.settings.journal.append({ events: bytes });
    return results;
  }

  async start(): Promise<void> {
    const path = this.config.unix_socket;
    if (path === undefined) return;
    try {
      // A socket left by a previous run (kill -9) would make listen fail with EADDRINUSE.
      if (lstatSync(path, { throwIfNoEntry: false })?.isSocket()) unlinkSync(path);
    } catch {}
    const server = createServer(getRequestListener(this.app.fetch));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (cause) =>
        reject(
          new SealtrailError('ST_HTTP_INGEST_SOCKET', `cannot listen on ${path}: ${cause.message}`, {
            cause,
          }),
        ),
      );
      server.listen(path, () => resolve());
    });
    chmodSync(path, Number.parseInt(this.config.unix_socket_mode, 8));
    this.socketServer = server;
    this.settings.log.info({ unix_socket: path }, 'http_ingest listening on a Unix socket');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.inflight]);
    const server = this.socketServer;
    this.socketServer = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }
}

export const httpIngestSource: SourceFactory<HttpIngestConfig> = {
  type: 'http_ingest',
  configSchema: httpIngestConfigSchema,
  create: (settings, config) => new HttpIngest(settings, config),
};
