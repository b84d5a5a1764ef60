import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Kit, makeKit, waitUntil } from '../common/testkit.js';
import { logTailConfigSchema } from '../log_tail/config.js';
import { AdaptiveLogTail } from './adaptive.js';

// The worker runs the compiled source (dist/): `npm test` builds first.

let kit: Kit;
beforeEach(async () => {
  kit = await makeKit();
});
afterEach(async () => {
  await kit.close();
});

const lines = (from: number, to: number) => {
  let out = '';
  for (let i = from; i < to; i++) out += `line ${i}\n`;
  return out;
};

async function sealedLines(): Promise<number[]> {
  return (await kit.rawEvents())
    .filter((e) => e.type === 'log.line')
    .map((e) => Number(e.message!.split(' ')[1]));
}

async function moves(to: string): Promise<number> {
  const m = kit.settings.registry.getSingleMetric('sealtrail_log_tail_thread_moves_total');
  return m ? ((await m.get()).values.find((v) => v.labels.to === to)?.value ?? 0) : 0;
}

function source(file: string) {
  const config = logTailConfigSchema.parse({
    type: 'log_tail',
    name: 'app',
    include: [file],
    start_at: 'beginning',
    poll_interval: '10ms',
    read_chunk_bytes: '16KiB',
  });
  return new AdaptiveLogTail(kit.settings, config, {
    backlogMs: 100,
    quietMs: 300,
    busyLinesPerSec: 1000,
    checkMs: 20,
  });
}

describe('worker_thread: auto', () => {
  it('moves to a worker thread for a backlog and back once caught up, sealing each line once', async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, lines(0, 200_000));
    const s = source(file);
    await s.start();
    expect(s.mode).toBe('main');
    await waitUntil('the move to a worker', () => s.mode === 'worker');
    await waitUntil('the backlog', async () => (await sealedLines()).length === 200_000, 30_000);
    await waitUntil('the move back', () => s.mode === 'main');
    // A trickle stays on the main thread.
    for (let i = 0; i < 10; i++) {
      appendFileSync(file, lines(200_000 + i * 10, 200_000 + (i + 1) * 10));
      await new Promise((r) => setTimeout(r, 30));
    }
    await waitUntil('the trickle', async () => (await sealedLines()).length === 200_100);
    expect(s.mode).toBe('main');
    await s.stop();
    expect(await sealedLines()).toEqual(Array.from({ length: 200_100 }, (_, i) => i));
    expect(await moves('worker')).toBe(1);
    expect(await moves('main')).toBe(1);
  });

  it('stops cleanly in the middle of a move, with what it read durable', async () => {
    const file = join(kit.dir, 'app.log');
    writeFileSync(file, lines(0, 100_000));
    const s = source(file);
    await s.start();
    await waitUntil(
      'a backlog',
      () => s.mode === 'worker' || (s as unknown as { moving: unknown }).moving !== null,
    );
    await s.stop();
    const got = await sealedLines();
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));

    // Started again, it reads the rest, nothing twice.
    const t = source(file);
    await t.start();
    await waitUntil('the rest', async () => (await sealedLines()).length === 100_000, 30_000);
    await t.stop();
    expect(await sealedLines()).toEqual(Array.from({ length: 100_000 }, (_, i) => i));
  });
});
