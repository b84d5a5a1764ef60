/**
 * A local HTTP receiver for bench/exporters.mjs, run as its own process so its
 * CPU is measured apart from the exporter's (and a real receiver would not share
 * its event loop). Prints its address on stdout; stops on SIGTERM.
 */
import { listen } from '@sealtrail/telemetry';
import { Hono } from 'hono';

const app = new Hono();
app.post('*', async (c) => {
  await c.req.arrayBuffer();
  const p = c.req.path;
  if (p.endsWith('/services/collector/event')) return c.json({ text: 'Success', code: 0 });
  if (p.endsWith('/_bulk')) return c.json({ took: 1, errors: false, items: [] });
  if (p.endsWith('/api/v2/logs')) return c.json({}, 202);
  return c.body(null, 204);
});
const server = await listen(app, '127.0.0.1:0');
process.stdout.write(`${server.address}\n`);
process.once('SIGTERM', async () => {
  await server.close();
  process.exit(0);
});
