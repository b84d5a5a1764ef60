/**
 * Test kit for exporters: a real spool in a temp dir filled with events, the
 * settings an exporter gets, a mock HTTP destination on undici's MockAgent,
 * metric reads, and a conformance suite every exporter runs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type AuditEvent, canonicalBytes, newEventId } from '@sealtrail/event';
import { createLogger, createRegistry, type Registry } from '@sealtrail/telemetry';
import { MockAgent } from 'undici';
import { type AgentState, type IncomingRecord, newAgentState, Spool } from '../../spool/spool.js';
import type { Exporter, ExporterSettings } from '../exporter.js';

export const AGENT_ID = '0190a0b0-0000-7000-8000-000000000001';
export const CHAIN_ID = '0190a0b0-0000-7000-8000-0000000000c1';

export function makeEvent(over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: newEventId(),
    time: '2026-11-23T10:00:00.123Z',
    observed_time: '2026-11-23T10:00:00.456Z',
    category: 'authentication',
    type: 'auth.login.failure',
    severity: 'medium',
    outcome: 'failure',
    action: 'login',
    actor: { user: 'alice', ip: '198.51.100.7' },
    host: { id: AGENT_ID, name: 'web-1', os: 'linux' },
    source: { kind: 'http_ingest', name: 'apps' },
    message: 'bad password',
    ...over,
  };
}

export class TestSpool {
  readonly dir = mkdtempSync(join(tmpdir(), 'sealtrail-exp-'));
  spool = new Spool(join(this.dir, 'spool'));
  private seq = 0n;
  private agent: AgentState = {
    ...newAgentState(AGENT_ID, '', 'web-1', new Date().toISOString()),
    chain_id: CHAIN_ID,
  };

  async open(): Promise<this> {
    await this.spool.open();
    return this;
  }

  /** Stores events as one agent's consecutive records; returns them. */
  async add(events: AuditEvent[]): Promise<AuditEvent[]> {
    const records: IncomingRecord[] = events.map((e) => ({
      chainId: CHAIN_ID,
      seq: this.seq++,
      recordHash: randomBytes(32),
      eventBytes: canonicalBytes(e),
      eventId: e.id,
    }));
    await this.spool.commit(this.agent, records);
    return events;
  }

  async addMany(n: number, over: (i: number) => Partial<AuditEvent> = () => ({})): Promise<AuditEvent[]> {
    return this.add(Array.from({ length: n }, (_, i) => makeEvent({ message: `event ${i}`, ...over(i) })));
  }

  async reopen(): Promise<void> {
    await this.spool.close();
    this.spool = new Spool(join(this.dir, 'spool'));
    await this.spool.open();
  }

  async cursor(key: string): Promise<string | undefined> {
    return (await this.spool.getCursor<{ offset: string }>(key))?.offset;
  }

  async deadLetters(exporter?: string) {
    const out = [];
    for await (const d of this.spool.deadLetters(exporter)) out.push(d);
    return out;
  }

  async close(): Promise<void> {
    await this.spool.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const silentLog = createLogger('test', process.env.SEALTRAIL_TEST_LOG ?? 'silent');

export function settingsFor(
  spool: Spool,
  extra: Partial<ExporterSettings> = {},
): ExporterSettings & { registry: Registry } {
  return { spool, log: silentLog, registry: createRegistry('collector'), ...extra };
}

export async function metric(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return Number.NaN;
  const data = await m.get();
  let sum = 0;
  for (const v of data.values) {
    if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) {
      if (
        'metricName' in v &&
        v.metricName &&
        !String(v.metricName).endsWith('_count') &&
        name.endsWith('_seconds')
      )
        continue;
      sum += v.value;
    }
  }
  return sum;
}

export async function waitUntil(
  what: string,
  pred: () => boolean | Promise<boolean>,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface SeenRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** The body as sent, gunzipped when it was gzip-encoded. */
  body: string;
  gzipped: boolean;
}

export interface MockReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A destination on `origin` answered by `handler`, with every request it saw. */
export function mockHttp(
  origin: string,
  handler: (req: SeenRequest, n: number) => MockReply | Promise<MockReply>,
) {
  const agent = new MockAgent({ connections: 1 });
  agent.disableNetConnect();
  const seen: SeenRequest[] = [];
  agent
    .get(origin)
    .intercept({ path: () => true, method: () => true })
    .reply(async (opts) => {
      const headers: Record<string, string> = {};
      const h = opts.headers;
      if (h instanceof Headers)
        h.forEach((v, k) => {
          headers[k.toLowerCase()] = v;
        });
      else if (Array.isArray(h))
        for (let i = 0; i < h.length; i += 2) headers[String(h[i]).toLowerCase()] = String(h[i + 1]);
      else for (const [k, v] of Object.entries(h ?? {})) headers[k.toLowerCase()] = String(v);
      const raw = opts.body == null ? Buffer.alloc(0) : Buffer.from(opts.body as string | Uint8Array);
      const gzipped = headers['content-encoding'] === 'gzip';
      const req: SeenRequest = {
        method: opts.method,
        path: opts.path,
        headers,
        body: (gzipped ? gunzipSync(raw) : raw).toString('utf8'),
        gzipped,
      };
      seen.push(req);
      const r = await handler(req, seen.length - 1);
      return {
        statusCode: r.status,
        data: typeof r.body === 'string' ? r.body : JSON.stringify(r.body ?? {}),
        responseOptions: { headers: { 'content-type': 'application/json', ...(r.headers ?? {}) } },
      };
    })
    .persist();
  return { agent, seen };
}

/**
 * The shared conformance checks (OpenTelemetry's generated component tests):
 * create → stop without start; start → stop, twice; a second stop is harmless.
 */
export async function conformance(make: (s: ExporterSettings) => Exporter): Promise<void> {
  const ts = await new TestSpool().open();
  try {
    const a = make(settingsFor(ts.spool));
    await a.stop();
    await a.stop();
    for (let i = 0; i < 2; i++) {
      const b = make(settingsFor(ts.spool));
      await b.start();
      await b.stop();
      await b.stop();
    }
  } finally {
    await ts.close();
  }
}
