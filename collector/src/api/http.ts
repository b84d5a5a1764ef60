/** The collector's HTTP surface: health, readiness, metrics, and read-only views of agents. */
import { healthRoutes, type Registry } from '@sealtrail/telemetry';
import { Hono } from 'hono';
import type { Receiver } from '../receiver/receiver.js';
import type { Spool } from '../spool/spool.js';

export function collectorApp(deps: { registry: Registry; spool: Spool; receiver: Receiver }): Hono {
  const { spool, receiver } = deps;
  const app = new Hono();
  app.route(
    '/',
    healthRoutes(deps.registry, () => [
      { name: 'spool', check: () => (spool.isOpen ? null : 'spool is not open') },
      { name: 'grpc_listener', check: () => (receiver.isListening ? null : 'gRPC listener is not up') },
    ]),
  );
  return app;
}
