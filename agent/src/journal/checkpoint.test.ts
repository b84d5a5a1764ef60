import { rmSync } from 'node:fs';
import { createLogger } from '@sealtrail/telemetry';
import { afterEach, describe, expect, it } from 'vitest';
import { Checkpointer, readAnchor } from './checkpoint.js';
import { fixture } from './testkit/fixture.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('Checkpointer under a burst of appends', () => {
  it('signs at least every_events records apart, never one per append, and anchors the newest', async () => {
    const f = fixture();
    dirs.push(f.dataDir);
    const journal = f.make();
    await journal.open();
    const cp = new Checkpointer({
      journal,
      identity: f.identity,
      host: f.host,
      anchorFile: f.paths.anchor,
      everyEvents: 100,
      everyMs: 1e9,
      idleMs: 1e9,
      log: createLogger('test', 'silent'),
    });
    cp.start();
    // 200 appends of 25 events, many in flight at once: 5,000 events, 8 appends per 200 records.
    const appends = [];
    for (let i = 0; i < 200; i++) {
      appends.push(journal.append({ events: Array.from({ length: 25 }, () => f.event()) }));
      if (i % 10 === 9) await Promise.all(appends.splice(0));
    }
    await Promise.all(appends);
    await cp.stop();

    const signed: { seq: bigint; hash: string; at: bigint }[] = [];
    for await (const r of journal.records()) {
      const e = JSON.parse(r.eventBytes!.toString());
      if (e.type === 'agent.checkpoint')
        signed.push({ seq: BigInt(e.attributes.seq), hash: e.attributes.record_hash, at: r.seq });
    }
    // every_events checkpoints, then the one at shutdown.
    expect(signed.length).toBeGreaterThan(5);
    expect(signed.length).toBeLessThanOrEqual(5_000 / 100 + 1);
    for (let i = 1; i < signed.length - 1; i++)
      expect(signed[i]!.seq - signed[i - 1]!.seq).toBeGreaterThanOrEqual(100n);
    // The anchor names the last checkpoint record itself, once stop() returned.
    const last = signed.at(-1)!;
    const anchor = readAnchor(f.paths.anchor)!;
    expect(anchor).toMatchObject({ seq: String(last.at) });
    expect(anchor.hash).toBe((await journal.recordHashAt(0, last.at))!.toString('hex'));
    await journal.close();
  });
});
