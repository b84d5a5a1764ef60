import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Journal, Position } from './journal.js';
import { headMarkKey, isHeadMark, payloadSize, recordKey } from './layout.js';
import { ShippedLedger } from './shipped.js';
import { mulberry32 } from './testkit/chains.js';
import { fixture, tempDataDir } from './testkit/fixture.js';

let dataDir: string;
let fx: ReturnType<typeof fixture>;
const opened: Journal[] = [];

function openJournal(maxBytes?: number): Journal {
  const j = fx.make(maxBytes ? { limits: { maxBytes, onFull: 'drop_oldest' } } : {});
  opened.push(j);
  return j;
}

/** An event of about 250 + `pad` canonical bytes. */
const eventBytes = (pad: number) => fx.event({ message: 'x'.repeat(pad) });

beforeEach(() => {
  dataDir = tempDataDir();
  fx = fixture(dataDir);
});

afterEach(async () => {
  for (const j of opened.splice(0)) await j.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const after = (a: Position, b: Position) => a.chain > b.chain || (a.chain === b.chain && a.seq > b.seq);

/** What an ack must leave, whichever way it deleted: no row at or below the acked record, and counts that match the rows. */
async function checkRows(j: Journal, where: string): Promise<void> {
  const acked = j.acked;
  let records = 0;
  let bytes = 0;
  for await (const [key, value] of j.db.iterator({ gte: Buffer.from('r'), lt: Buffer.from('s') })) {
    if (acked) expect(Buffer.compare(key, recordKey(acked.chain, acked.seq)), where).toBeGreaterThan(0);
    if (isHeadMark(key)) continue;
    records++;
    bytes += payloadSize(value);
  }
  expect(j.backlogRecords, where).toBe(records);
  expect(j.backlogBytes, where).toBe(bytes);
}

describe('acks of what read handed out', () => {
  for (const seed of [3, 11, 77, 512, 4096]) {
    it(`delete exactly what a scan would, with the same counts (seed ${seed})`, async () => {
      const rand = mulberry32(seed);
      const int = (n: number) => Math.floor(rand() * n);
      // A small bound with drop_oldest on some seeds: payloads shrink under the reader's feet.
      const bound = seed % 2 === 1 ? 400_000 : undefined;
      let j = openJournal(bound);
      await j.open();
      let n = 0;
      let acks = 0;
      let short = 0;
      let dropped = 0;
      const watch = (jj: Journal) => jj.on('dropped', (k) => (dropped += k));
      watch(j);
      // The shipper's view: what it sent and not yet saw acked.
      let sent: Position | null = null;
      let inflight: Position[] = [];
      const reconnect = () => {
        const a = j.acked;
        sent = a ? { chain: a.chain, seq: a.seq } : null;
        inflight = [];
      };
      for (let step = 0; step < 300; step++) {
        const where = `seed ${seed} step ${step}`;
        const op = rand();
        if (op < 0.3) {
          const events = Array.from({ length: 1 + int(40) }, () => eventBytes(int(300)));
          n += events.length;
          await j.append(rand() < 0.3 ? { events, positions: { src: { offset: n } } } : { events });
        } else if (op < 0.38) {
          // Position only: rewrites the head's own mark, perhaps after a read returned the head.
          await j.append({ events: [], positions: { src: { offset: n++ } } });
        } else if (op < 0.6) {
          const batch = await j.read(sent, 1 + int(30), 1 + int(8000));
          if (batch.length > 0) {
            const last = batch[batch.length - 1]!;
            sent = { chain: last.chain, seq: last.seq };
            inflight.push(sent);
          }
        } else if (op < 0.85) {
          // The collector acks a batch end, or a record inside one (a group commit that split it).
          const through = inflight.length > 0 && rand() < 0.95 ? inflight[int(inflight.length)]! : null;
          const cut =
            through && rand() < 0.3 && through.seq > 0n
              ? { chain: through.chain, seq: through.seq - BigInt(int(Number(through.seq) + 1)) }
              : through;
          if (cut && (!j.acked || after(cut, j.acked)) && (await j.recordHashAt(cut.chain, cut.seq))) {
            const before = j.acksWithoutScan;
            await j.ack(cut);
            acks++;
            short += j.acksWithoutScan - before;
            inflight = inflight.filter((p) => after(p, cut));
          }
        } else if (op < 0.9) {
          reconnect();
        } else if (op < 0.94) {
          await j.startChain({ reason: 'model' });
        } else {
          await j.close();
          j = openJournal(bound);
          watch(j);
          await j.open();
          reconnect();
        }
        await checkRows(j, where);
      }
      // Most acks took the short way; the first after a resume or a rewrite, and those across chains, scanned.
      expect(short).toBeGreaterThan(acks / 3);
      if (bound) expect(dropped).toBeGreaterThan(0);
    });
  }

  it('takes the short way in a steady stream, and deletes a head mark rewritten after it was read', async () => {
    const j = openJournal();
    await j.open();
    let sent: Position | null = null;
    for (let round = 0; round < 20; round++) {
      await j.append({ events: Array.from({ length: 50 }, (_, i) => eventBytes(i)) });
      const batch = await j.read(sent, 50, 1 << 20);
      const last = batch[batch.length - 1]!;
      sent = { chain: last.chain, seq: last.seq };
      // The head was just read; a position-only append now rewrites its mark.
      await j.append({ events: [], positions: { src: { offset: round } } });
      await j.ack(sent);
      await checkRows(j, `round ${round}`);
    }
    expect(j.acksWithoutScan).toBe(20);
    // Of the marks, only the head's is left.
    const marks: Buffer[] = [];
    for await (const key of j.db.keys({ gte: Buffer.from('r'), lt: Buffer.from('s') }))
      if (isHeadMark(key)) marks.push(key);
    expect(marks).toEqual([headMarkKey(0, j.head!.seq)]);
  });
});

describe('ShippedLedger', () => {
  const mark = (seq: bigint, chain = 0) => headMarkKey(chain, seq);

  it('covers from just after the acked record, and nothing that starts elsewhere', () => {
    const l = new ShippedLedger();
    l.extend(0, 5n, 7n, [10, 20, 30], [mark(5n)]);
    expect(l.cover({ chain: 0, seq: 3n }, { chain: 0, seq: 7n })).toBeNull();
    expect(l.cover({ chain: 0, seq: 4n }, { chain: 0, seq: 8n })).toBeNull();
    expect(l.cover({ chain: 1, seq: 4n }, { chain: 1, seq: 6n })).toBeNull();
    expect(l.cover(null, { chain: 0, seq: 6n })).toBeNull();
    expect(l.cover({ chain: 0, seq: 4n }, { chain: 0, seq: 6n })).toEqual({
      records: 2,
      bytes: 30,
      marks: [mark(5n)],
    });
    // The last record's mark is listed whether or not the read saw it.
    expect(l.cover({ chain: 0, seq: 4n }, { chain: 0, seq: 7n })?.marks).toEqual([mark(5n)]);
    l.extend(0, 8n, 9n, [1, 2], []);
    expect(l.cover({ chain: 0, seq: 4n }, { chain: 0, seq: 9n })).toEqual({
      records: 5,
      bytes: 63,
      marks: [mark(5n), mark(7n)],
    });
  });

  it('a read that does not continue replaces what is held; trim keeps what is after the ack', () => {
    const l = new ShippedLedger();
    l.extend(0, 5n, 7n, [10, 20, 30], []);
    l.extend(0, 9n, 9n, [5], []);
    expect(l.cover({ chain: 0, seq: 4n }, { chain: 0, seq: 5n })).toBeNull();
    expect(l.cover({ chain: 0, seq: 8n }, { chain: 0, seq: 9n })).toEqual({
      records: 1,
      bytes: 5,
      marks: [],
    });
    l.trim({ chain: 0, seq: 3n }); // an ack before what is held: it may still connect
    expect(l.records).toBe(1);
    l.extend(0, 10n, 12n, [1, 2, 3], [mark(10n), mark(12n)]);
    l.trim({ chain: 0, seq: 10n });
    expect(l.cover({ chain: 0, seq: 10n }, { chain: 0, seq: 12n })).toEqual({
      records: 2,
      bytes: 5,
      marks: [mark(10n)],
    });
    l.trim({ chain: 1, seq: 0n });
    expect(l.records).toBe(0);
  });

  it('a read from the first row covers from there, with the marks before its first record', () => {
    const l = new ShippedLedger();
    l.extend(2, 0n, 1n, [7, 8], [mark(9n, 1), mark(0n, 2), mark(5n, 3)], true);
    expect(l.cover(null, { chain: 2, seq: 1n })).toEqual({
      records: 2,
      bytes: 15,
      marks: [mark(9n, 1), mark(0n, 2)],
    });
  });
});
