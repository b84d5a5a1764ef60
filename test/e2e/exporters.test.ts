/**
 * Issue 6's end-to-end promise: a real agent and collector, three exporters at
 * once (file, elasticsearch, splunk_hec), Splunk answering "server busy" for a
 * while. The other two keep flowing, Splunk catches up, nothing is lost; one
 * event Elasticsearch refuses for good becomes a dead letter, which
 * `deadletter list` shows and `deadletter replay` delivers at the next start.
 */
import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { newEventId } from '@sealtrail/event';
import { afterAll, describe, expect, it } from 'vitest';
import {
  agentProc,
  allocatePorts,
  COLLECTOR_BIN,
  collectorProc,
  freePort,
  readLines,
  runCli,
  tempDir,
  waitFor,
  writeConfigs,
} from './harness.js';

const TOTAL = 3000;
const PER_REQUEST = 200;

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  return (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
}

describe('agent → collector → file + elasticsearch + splunk_hec, Splunk down for a while', () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the healthy exporters flowing, catches the failing one up, loses nothing', {
    timeout: 240_000,
  }, async () => {
    let splunkDown = true;
    let refusePoison = true;
    const splunkIds: string[] = [];
    const elasticIds: string[] = [];
    let splunkRefusals = 0;
    const server = createServer(async (req, res) => {
      const text = await body(req);
      res.setHeader('content-type', 'application/json');
      if (req.url === '/services/collector/event') {
        if (req.headers.authorization !== 'Splunk e2e-token') {
          res.writeHead(401).end(JSON.stringify({ text: 'Token is required', code: 2 }));
          return;
        }
        if (splunkDown) {
          splunkRefusals++;
          res.writeHead(503, { 'retry-after': '1' }).end(JSON.stringify({ text: 'Server is busy', code: 9 }));
          return;
        }
        for (const line of text.split('\n').filter((l) => l !== '')) {
          splunkIds.push((JSON.parse(line) as { event: { id: string } }).event.id);
        }
        res.writeHead(200).end(JSON.stringify({ text: 'Success', code: 0 }));
        return;
      }
      if (req.url === '/_bulk') {
        const lines = text.split('\n').filter((l) => l !== '');
        const items = [];
        for (let i = 0; i < lines.length; i += 2) {
          const id = (JSON.parse(lines[i]!) as { create: { _id: string } }).create._id;
          const doc = JSON.parse(lines[i + 1]!) as { message?: string };
          if (refusePoison && doc.message === 'poison') {
            items.push({
              create: { _id: id, status: 400, error: { type: 'mapper_parsing_exception', reason: 'poison' } },
            });
          } else {
            elasticIds.push(id);
            items.push({ create: { _id: id, status: 201 } });
          }
        }
        res
          .writeHead(200)
          .end(JSON.stringify({ took: 1, errors: items.some((i) => i.create.status >= 300), items }));
        return;
      }
      res.writeHead(404).end('{}');
    });
    const httpPort = await freePort();
    await new Promise<void>((r) => server.listen(httpPort, '127.0.0.1', r));

    try {
      const ports = await allocatePorts();
      const cfg = writeConfigs(dir, ports, '', {
        collectorExporters: `  - type: elasticsearch
    name: search
    endpoint: http://127.0.0.1:${httpPort}
    filter:
      categories: [authentication]
    batch_timeout: 100ms
    retry_initial_backoff: 50ms
    retry_max_backoff: 1s
  - type: splunk_hec
    name: splunk
    endpoint: http://127.0.0.1:${httpPort}
    token: \${E2E_SPLUNK_TOKEN}
    filter:
      types: ['auth.*']
      min_severity: high
    batch_timeout: 100ms
    retry_initial_backoff: 50ms
    retry_max_backoff: 1s
`,
      });
      process.env.E2E_SPLUNK_TOKEN = 'e2e-token';
      const collector = collectorProc(cfg.collector, ports);
      const agent = agentProc(cfg.agent, ports);
      await collector.start();
      await agent.start();

      const posted: string[] = [];
      let poisonId = '';
      for (let r = 0; r < TOTAL / PER_REQUEST; r++) {
        const batch = [];
        for (let i = 0; i < PER_REQUEST; i++) {
          const id = newEventId();
          const n = r * PER_REQUEST + i;
          if (n === 1234) poisonId = id;
          posted.push(id);
          batch.push({
            id,
            category: 'authentication',
            type: 'auth.login.failure',
            action: 'login',
            severity: 'high',
            actor: { user: `user${n % 13}`, ip: '203.0.113.9' },
            message: n === 1234 ? 'poison' : `event ${n}\nsecond line ü`,
          });
        }
        for (;;) {
          const res = await fetch(`http://127.0.0.1:${ports.agentHttp}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(batch),
          });
          if (res.status === 202) break;
          await new Promise((res2) => setTimeout(res2, 100));
        }
      }

      const fileIds = () => readLines(cfg.exportPath).filter((l) => l.type === 'auth.login.failure');
      await waitFor('file export complete', () => fileIds().length >= TOTAL, 120_000);
      await waitFor('elasticsearch complete', () => elasticIds.length >= TOTAL - 1, 60_000);
      // Splunk is still refusing: it has nothing, and the collector reports its lag.
      expect(splunkIds).toHaveLength(0);
      expect(splunkRefusals).toBeGreaterThan(0);
      const metrics = await (await fetch(`http://127.0.0.1:${ports.collectorHttp}/metrics`)).text();
      const lag = /sealtrail_exporter_lag_records\{[^}]*exporter="splunk"[^}]*\} (\d+)/.exec(metrics);
      expect(Number(lag?.[1])).toBeGreaterThanOrEqual(TOTAL);
      expect(metrics).toMatch(/sealtrail_exporter_events_failed_total\{[^}]*exporter="splunk"[^}]*\} [1-9]/);

      splunkDown = false;
      await waitFor('splunk caught up', () => new Set(splunkIds).size >= TOTAL, 60_000);

      expect(await agent.stop()).toBe(0);
      expect(await collector.stop()).toBe(0);

      const fileList = fileIds().map((l) => l.id as string);
      expect(fileList).toHaveLength(TOTAL);
      expect(new Set(fileList)).toEqual(new Set(posted));
      expect(new Set(splunkIds)).toEqual(new Set(posted));
      expect(splunkIds).toHaveLength(TOTAL);
      expect(new Set(elasticIds)).toEqual(new Set(posted.filter((id) => id !== poisonId)));

      // The refused event is a dead letter with Elasticsearch's reason.
      const list = await runCli(COLLECTOR_BIN, [
        'deadletter',
        'list',
        '--data-dir',
        `${dir}/collector`,
        '--json',
      ]);
      expect(list.code).toBe(0);
      const letters = list.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { exporter: string; event_id: string; reason: string });
      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatchObject({ exporter: 'search', event_id: poisonId });
      expect(letters[0]!.reason).toContain('mapper_parsing_exception');

      const replay = await runCli(COLLECTOR_BIN, [
        'deadletter',
        'replay',
        '--config',
        cfg.collector,
        '--exporter',
        'search',
      ]);
      expect(replay.stdout).toContain('1 dead letter of search queued');
      expect(replay.code).toBe(0);
      refusePoison = false;
      await collector.start();
      await waitFor('replayed into elasticsearch', () => elasticIds.includes(poisonId), 30_000);
      expect(await collector.stop()).toBe(0);
      const after = await runCli(COLLECTOR_BIN, [
        'deadletter',
        'list',
        '--data-dir',
        `${dir}/collector`,
        '--json',
      ]);
      expect(after.stdout.trim()).toBe('');
      expect(elasticIds.filter((id) => id === poisonId)).toHaveLength(1);
    } finally {
      server.close();
    }
  });
});
