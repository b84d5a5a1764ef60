/**
 * The delivery loop syncs a batch's cursor while the next batch is in flight:
 * the cursor must still move in order, and never past a batch the destination
 * has not accepted; a failure re-sends from the last synced cursor.
 */
import { SealtrailError } from '@sealtrail/errors';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { settingsFor, TestSpool, waitUntil } from '../testdata/kit.js';
import type { Encoded } from './batcher.js';
import { filterSchema } from './config.js';
import { cursorName, deliveryExporter, type Sender } from './delivery.js';
import { nativeJson } from './schemas.js';

const config = {
  type: 'test',
  name: 'pipe',
  filter: filterSchema.parse({}),
  schema: 'native' as const,
  batch_max_records: 10,
  batch_max_bytes: 1 << 20,
  batch_timeout: 0,
  retry_initial_backoff: 1,
  retry_max_backoff: 5,
};
const KEY = cursorName('test', 'pipe');
const encode = (x: Parameters<typeof nativeJson>[0]): Encoded<string> => {
  const payload = nativeJson(x);
  return { x, payload, bytes: payload.length };
};

describe('delivery loop pipelining', () => {
  let ts: TestSpool;
  beforeEach(async () => {
    ts = await new TestSpool().open();
  });
  afterEach(async () => {
    await ts.close();
  });

  it('syncs batch n while batch n+1 is in flight, and not past it', async () => {
    await ts.addMany(30);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const sent: number[] = [];
    const sender: Sender<string> = {
      async send(items) {
        sent.push(items.length);
        if (sent.length === 2) await gate;
      },
    };
    const exporter = deliveryExporter({ settings: settingsFor(ts.spool), config, encode, sender });
    await exporter.start();
    await waitUntil('first cursor', async () => (await ts.cursor(KEY)) === '9');
    // batch 2 is held by the destination: its cursor waits
    await new Promise((r) => setTimeout(r, 50));
    expect(await ts.cursor(KEY)).toBe('9');
    expect(exporter.lag()).toBe(20n);
    release();
    await waitUntil('all delivered', () => exporter.lag() === 0n);
    await exporter.stop();
    expect(await ts.cursor(KEY)).toBe('29');
    expect(sent).toEqual([10, 10, 10]);
  });

  it('loses nothing when a send fails while the previous cursor is being synced', async () => {
    const events = await ts.addMany(40);
    const seen: string[] = [];
    let calls = 0;
    const sender: Sender<string> = {
      async send(items) {
        calls++;
        if (calls === 3) throw new SealtrailError('ST_TEST', 'busy', { retryable: true });
        for (const i of items) seen.push(i.x.event.id);
      },
    };
    const exporter = deliveryExporter({ settings: settingsFor(ts.spool), config, encode, sender });
    await exporter.start();
    await waitUntil('all delivered', () => exporter.lag() === 0n, 15_000);
    await exporter.stop();
    expect(await ts.cursor(KEY)).toBe('39');
    // at least once, in spool order per attempt, every event
    expect(new Set(seen)).toEqual(new Set(events.map((e) => e.id)));
    expect(seen.length).toBe(40);
  });
});
