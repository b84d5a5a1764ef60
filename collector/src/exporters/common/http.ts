/**
 * HTTP plumbing shared by the HTTP exporters: an undici `Pool` per destination
 * (keep-alive), or a `Dispatcher` the caller injects (tests pass a `MockAgent`);
 * one request helper with a whole-request deadline; status → error class.
 */
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { SealtrailError } from '@sealtrail/errors';
import { type Dispatcher, Pool } from 'undici';
import { parseRetryAfter } from './backoff.js';
import type { TlsConfig } from './config.js';

const gzipAsync = promisify(gzipCb);

/**
 * gzip off the event loop (libuv's thread pool). Level 1 by default, as
 * Elastic's Beats do: a few percent larger than level 6 for a quarter of the CPU.
 */
export function gzip(body: Buffer | string, level = 1): Promise<Buffer> {
  return gzipAsync(body, { level });
}

export function tlsOptions(tls: TlsConfig | undefined) {
  if (!tls) return undefined;
  return {
    ca: tls.ca_file ? readFileSync(tls.ca_file) : undefined,
    cert: tls.cert_file ? readFileSync(tls.cert_file) : undefined,
    key: tls.key_file ? readFileSync(tls.key_file) : undefined,
    servername: tls.server_name,
    rejectUnauthorized: tls.verify,
  };
}

export interface HttpTarget {
  dispatcher: Dispatcher;
  origin: string;
  /** Path prefix of the configured URL, without a trailing slash. */
  basePath: string;
  /** True when this module made the dispatcher (so closes it). */
  owned: boolean;
}

/** A keep-alive pool to `url`'s origin, or the injected dispatcher. */
export function httpTarget(
  url: string,
  opts: { connections: number; tls?: TlsConfig; timeoutMs: number },
  injected?: Dispatcher,
): HttpTarget {
  const u = new URL(url);
  const basePath = u.pathname.replace(/\/+$/, '');
  if (injected) return { dispatcher: injected, origin: u.origin, basePath, owned: false };
  const pool = new Pool(u.origin, {
    connections: opts.connections,
    keepAliveTimeout: 30_000,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    connect: tlsOptions(opts.tls),
  });
  return { dispatcher: pool, origin: u.origin, basePath, owned: true };
}

export async function closeTarget(t: HttpTarget): Promise<void> {
  if (t.owned) await t.dispatcher.close();
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One request with a whole-request deadline; network errors and timeouts are retryable. */
export async function httpRequest(
  t: HttpTarget,
  req: {
    method: 'GET' | 'POST' | 'PUT';
    path: string;
    headers: Record<string, string>;
    body?: Buffer | string;
    timeoutMs: number;
    signal: AbortSignal;
  },
): Promise<HttpResponse> {
  const signal = AbortSignal.any([req.signal, AbortSignal.timeout(req.timeoutMs)]);
  try {
    const res = await t.dispatcher.request({
      origin: t.origin,
      path: req.path,
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal,
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  } catch (cause) {
    if (req.signal.aborted) throw cause;
    const code = (cause as { code?: string }).code;
    throw new SealtrailError(
      'ST_EXPORT_NETWORK',
      `${req.method} ${t.origin}${req.path}: ${(cause as Error).message}${code ? ` (${code})` : ''}`,
      { cause, retryable: true },
    );
  }
}

/** 408, 429 and 5xx are worth retrying (honouring `Retry-After`); any other 4xx is permanent. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** An error for a non-2xx answer, with the body's first 500 characters as the reason. */
export function statusError(res: HttpResponse, what: string): SealtrailError {
  const retryable = isRetryableStatus(res.status);
  const detail = res.text.length > 500 ? `${res.text.slice(0, 500)}…` : res.text;
  return new SealtrailError(
    'ST_EXPORT_HTTP_STATUS',
    `${what}: HTTP ${res.status}${detail ? `: ${detail}` : ''}`,
    {
      retryable,
      retryAfterMs: retryable ? parseRetryAfter(res.headers['retry-after']) : undefined,
    },
  );
}
