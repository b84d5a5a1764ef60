import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SealtrailError } from '@sealtrail/errors';
import type { AuditEvent } from '@sealtrail/event';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Journal } from '../../journal/journal.js';
import type { RedactRule } from '../common/redact.js';
import { type Kit, makeKit, waitUntil } from '../common/testkit.js';
import { logTailConfigSchema } from '../log_tail/config.js';
import type { SourceSettings } from '../source.js';
import { ThreadedSource } from './threaded.js';

// The worker runs the compiled source (dist/): `npm test` builds first.

let kit: Kit;
let logs: Record<string, unknown>[];

beforeEach(async () => {
  kit = await makeKit();
  logs = [];
});
afterEach(async () => {
  await kit.close();
});

function settings(over: Partial<SourceSettings> = {}): SourceSettings {
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(JSON.parse(s)) });
  return { ...kit.settings, log, ...over };
}

function tail(s: SourceSettings, file: string, extra: Record<string, unknown> = {}) {
  const config = logTailConfigSchema.parse({
    type: 'log_tail',
    name: 'app',
    include: [file],
    start_at: 'beginning',
    parser: 'none',
    poll_interval: '10ms',
    ...extra,
  });
  return new ThreadedSource(s, 'log_tail', config, { restartMinMs: 50, restartMaxMs: 200 });
}

const lines = (from: number, to: number) => {
  let out = '';
  for (let i = from; i < to; i++) out += `line ${i} ${'x'.repeat(i % 50)}\n`;
  return out;
};

async function sealed(): Promise<AuditEvent[]> {
  return (await kit.rawEvents()).filter((e) => e.type === 'log.line');
}

/** Every line `line 0` … `line n-1` exactly once, in order. */
async function expectExactly(n: number): Promise<void> {
  const got = (await sealed()).map((e) => Number(e.message!.split(' ')[1]));
  expect(got.length).toBe(n);
  expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
}

async function metric(name: string): Promise<number> {
  const m = kit.settings.registry.getSingleMetric(name);
  if (!m) return 0;
  return (await m.get()).values.reduce((a, v) => a + v.value, 0);
}

describe('a source on a worker thread', () => {
  it('seals every line once, in order, and resumes from its durable position', async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, lines(0, 20_000));
    const s = settings();
    const a = tail(s, file);
    await a.start();
    expect(a.threadId).not.toBeNull();
    await waitUntil('20,000 lines', async () => (await sealed()).length === 20_000);
    await a.stop();
    expect(a.running).toBe(false);
    const first = (await sealed())[0]!;
    expect(first).toMatchObject({
      source: { kind: 'log_tail', name: 'app' },
      host: kit.settings.host,
      attributes: { file, offset: 0 },
    });

    appendFileSync(file, lines(20_000, 25_000));
    const b = tail(s, file);
    await b.start();
    await waitUntil('25,000 lines', async () => (await sealed()).length >= 25_000);
    await b.stop();
    await expectExactly(25_000);
  });

  it("reports the worker's counters on the main thread", async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, lines(0, 3_000));
    const s = tail(settings(), file);
    await s.start();
    await waitUntil('3,000 lines', async () => (await sealed()).length === 3_000);
    await s.stop();
    // Reported with each batch and once more as the worker stops.
    expect(await metric('sealtrail_log_tail_lines_total')).toBe(3_000);
    expect(await metric('sealtrail_source_events_total')).toBe(3_000);
  });

  it('passes a journal error back with its code, logs it on the main logger, and loses nothing', async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, lines(0, 5_000));
    let failures = 2;
    const journal = {
      position: (name: string) => kit.journal.position(name),
      append: (req: Parameters<Journal['append']>[0]) => {
        if (req.events.length > 0 && failures > 0) {
          failures--;
          return Promise.reject(
            new SealtrailError('ST_JOURNAL_WRITE', 'journal write failed (ENOSPC): no space left', {
              retryable: true,
            }),
          );
        }
        return kit.journal.append(req);
      },
    } as unknown as Journal;
    const s = tail(settings({ journal }), file);
    await s.start();
    await waitUntil('5,000 lines', async () => (await sealed()).length >= 5_000);
    await s.stop();
    await expectExactly(5_000);
    expect(failures).toBe(0);
    const warned = logs.filter((l) => l.msg === 'log_tail poll failed');
    expect(warned.length).toBe(2);
    expect(warned[0]!.err).toMatchObject({
      code: 'ST_JOURNAL_WRITE',
      message: expect.stringContaining('ENOSPC'),
    });
    // Written by the main thread's logger (its own fields), at the worker's level.
    expect(warned[0]).toMatchObject({ level: 40, pid: process.pid });
  });

  it('starts a worker that died again, from the last durable position: nothing lost or sealed twice', async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, '');
    const s = tail(settings(), file);
    await s.start();
    let written = 0;
    const writer = setInterval(() => {
      appendFileSync(file, lines(written, written + 500));
      written += 500;
    }, 5);
    try {
      for (let kill = 0; kill < 3; kill++) {
        await waitUntil('some lines', async () => (await sealed()).length > kill * 3_000 + 1_000);
        const id = s.threadId;
        // As if the thread crashed: no stop, no flush.
        await (s as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
        await waitUntil('a new worker', () => s.threadId !== null && s.threadId !== id);
      }
    } finally {
      clearInterval(writer);
    }
    await waitUntil('every line', async () => (await sealed()).length >= written, 30_000);
    await s.stop();
    await expectExactly(written);
    expect(await metric('sealtrail_source_thread_restarts_total')).toBe(3);
    expect(logs.filter((l) => String(l.msg).startsWith('source worker thread died'))).toHaveLength(3);
  });

  it('reads nothing while the journal is over its high-water mark, then catches up', async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, lines(0, 2_000));
    let high = true;
    const s = tail(settings({ overHighWater: () => high }), file);
    await s.start();
    await new Promise((r) => setTimeout(r, 400));
    expect(await sealed()).toHaveLength(0);
    high = false;
    await waitUntil('2,000 lines', async () => (await sealed()).length === 2_000);
    await s.stop();
    await expectExactly(2_000);
  });

  it('applies agent-wide redaction rules changed while it runs', async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, 'secret=hunter2 before\n');
    let rules: readonly RedactRule[] = [];
    const s = tail(settings({ redactRules: () => rules }), file);
    await s.start();
    await waitUntil('the first line', async () => (await sealed()).length === 1);
    rules = [{ field: 'message', action: 'mask', pattern: 'hunter2', with: '***' }];
    // The new rules reach the worker within a settings tick (250 ms).
    await new Promise((r) => setTimeout(r, 400));
    appendFileSync(file, 'secret=hunter2 after\n');
    await waitUntil('the second line', async () => (await sealed()).length === 2);
    await s.stop();
    expect((await sealed()).map((e) => e.message)).toEqual(['secret=hunter2 before', 'secret=*** after']);
  });

  it('rejects start with the reason the source could not start', async () => {
    const journal = {
      position: () => Promise.reject(new SealtrailError('ST_JOURNAL_CLOSED', 'journal is closed')),
      append: () => Promise.reject(new Error('unused')),
    } as unknown as Journal;
    const s = tail(settings({ journal }), join(kit.dir, 'x.log'));
    await expect(s.start()).rejects.toThrow('journal is closed');
    expect(s.running).toBe(false);
    await s.stop();

    const other = new ThreadedSource(settings(), 'inventory', { name: 'inv' });
    await expect(other.start()).rejects.toThrow('a inventory source cannot run on a worker thread');
  });
});
