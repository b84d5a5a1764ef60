/**
 * `syslog`: RFC 5424 over TCP (RFC 6587 octet counting) or TLS (RFC 5425).
 *
 * A batch counts as delivered once the socket took all its bytes. TCP says
 * nothing about what the receiver read, so the sender keeps what it wrote in
 * the last `resend_window` (at most `resend_window_max_records` frames); when
 * the connection breaks, the next batch first re-sends that window on a new
 * connection. Receivers may then see a few messages twice (at least once);
 * the `id` in the structured data tells them apart.
 */
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { splitHostPort } from '@sealtrail/config';
import { SealtrailError } from '@sealtrail/errors';
import type { Encoded } from '../common/batcher.js';
import { deliveryExporter, type Sender } from '../common/delivery.js';
import { tlsOptions } from '../common/http.js';
import type { ExporterFactory, ExporterSettings } from '../exporter.js';
import type { SyslogExporterConfig } from './config.js';
import { syslogEncoder } from './encode.js';

interface Written {
  frame: Buffer;
  at: number;
}

export function syslogSender(
  s: ExporterSettings,
  c: SyslogExporterConfig,
): Sender<Buffer> & {
  /** Frames re-sent after broken connections (for tests and metrics). */
  readonly resent: number;
} {
  const { host, port } = splitHostPort(c.address);
  let socket: Socket | null = null;
  let brokenAt: number | null = null;
  let window: Written[] = [];
  let resent = 0;

  function open(signal: AbortSignal): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const tls = c.transport === 'tls' ? tlsOptions(c.tls ?? { verify: true }) : undefined;
      const sock =
        c.transport === 'tls'
          ? tlsConnect({
              host,
              port,
              ...tls,
              servername: tls?.servername ?? (isIP(host) ? undefined : host),
            })
          : netConnect({ host, port });
      const ready = c.transport === 'tls' ? 'secureConnect' : 'connect';
      const timer = setTimeout(
        () => fail(new Error(`connect timed out after ${c.connect_timeout} ms`)),
        c.connect_timeout,
      );
      const onAbort = () => fail(signal.reason as Error);
      const fail = (err: Error) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        sock.destroy();
        reject(
          new SealtrailError('ST_SYSLOG_CONNECT', `syslog ${c.transport}://${c.address}: ${err.message}`, {
            cause: err,
            retryable: true,
          }),
        );
      };
      signal.addEventListener('abort', onAbort, { once: true });
      sock.once('error', fail);
      sock.once(ready, () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        sock.off('error', fail);
        sock.setNoDelay(true);
        sock.setKeepAlive(true, 30_000);
        // A receiver does not talk back; anything it sends is ignored.
        sock.on('data', () => undefined);
        sock.on('error', (err) => {
          s.log.warn({ err: err.message }, 'syslog connection failed');
        });
        sock.once('close', () => {
          if (socket === sock) {
            socket = null;
            brokenAt = Date.now();
          }
        });
        resolve(sock);
      });
    });
  }

  function write(sock: Socket, data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      sock.write(data, (err) => {
        if (err) {
          reject(
            new SealtrailError('ST_SYSLOG_WRITE', `syslog ${c.address}: ${err.message}`, {
              cause: err,
              retryable: true,
            }),
          );
        } else resolve();
      });
    });
  }

  function remember(frames: Buffer[]): void {
    if (c.resend_window <= 0 || c.resend_window_max_records === 0) return;
    const now = Date.now();
    for (const frame of frames) window.push({ frame, at: now });
    const cutoff = now - c.resend_window;
    let drop = 0;
    while (
      drop < window.length &&
      (window[drop]!.at < cutoff || window.length - drop > c.resend_window_max_records)
    )
      drop++;
    if (drop > 0) window = window.slice(drop);
  }

  return {
    get resent() {
      return resent;
    },
    async send(items: Encoded<Buffer>[], signal: AbortSignal) {
      if (!socket || socket.destroyed) {
        const sock = await open(signal);
        socket = sock;
        if (brokenAt !== null) {
          const since = brokenAt - c.resend_window;
          const again = window.filter((w) => w.at >= since).map((w) => w.frame);
          window = [];
          brokenAt = null;
          if (again.length > 0) {
            s.log.warn(
              { frames: again.length },
              'syslog connection was broken; re-sending the resend window',
            );
            await write(sock, Buffer.concat(again));
            resent += again.length;
            remember(again);
          }
        }
      }
      const frames = items.map((i) => i.payload);
      await write(socket, Buffer.concat(frames));
      remember(frames);
      return undefined;
    },
    async close() {
      const sock = socket;
      socket = null;
      if (!sock || sock.destroyed) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          sock.destroy();
          resolve();
        }, 2000);
        sock.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        sock.end();
      });
    },
  };
}

export const syslogExporter: ExporterFactory<SyslogExporterConfig> = {
  type: 'syslog',
  create: (settings, config) =>
    deliveryExporter({
      settings,
      config,
      encode: syslogEncoder(config),
      sender: syslogSender(settings, config),
    }),
};
