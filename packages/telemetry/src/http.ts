import { type ServerType, serve } from '@hono/node-server';
import { splitHostPort } from '@sealtrail/config';
import { Hono } from 'hono';
import type { Registry } from 'prom-client';

export interface ReadinessCheck {
  name: string;
  /** Resolves to null when fine, or a reason when not. */
  check(): Promise<string | null> | string | null;
}

/** `/healthz` (alive), `/readyz` (each check, 503 naming the failed ones), `/metrics` (Prometheus text). */
export function healthRoutes(registry: Registry, checks: () => ReadinessCheck[]): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const results: Record<string, string> = {};
    let ready = true;
    for (const chk of checks()) {
      let reason: string | null;
      try {
        reason = await chk.check();
      } catch (err) {
        reason = (err as Error).message;
      }
      results[chk.name] = reason ?? 'ok';
      if (reason) ready = false;
    }
    return c.json({ status: ready ? 'ready' : 'not_ready', checks: results }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    c.header('Content-Type', registry.contentType);
    return c.body(await registry.metrics());
  });
  return app;
}

export interface HttpServer {
  readonly address: string;
  close(): Promise<void>;
}

/** Serves a Hono app on `host:port`; resolves once listening (rejects on EADDRINUSE and the like). */
export function listen(app: Hono, listenAddress: string): Promise<HttpServer> {
  const { host, port } = splitHostPort(listenAddress);
  return new Promise((resolve, reject) => {
    let server: ServerType;
    const onError = (err: Error) => reject(err);
    server = serve({ fetch: app.fetch, hostname: host, port }, (info) => {
      server.off('error', onError);
      resolve({
        address: `${host}:${info.port}`,
        close: () =>
          new Promise<void>((res) => {
            if ('closeAllConnections' in server) server.closeAllConnections();
            server.close(() => res());
          }),
      });
    });
    server.once('error', onError);
  });
}
