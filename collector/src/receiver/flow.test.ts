import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createClient, Ingest } from '@sealtrail/proto';
import { createLogger, Registry } from '@sealtrail/telemetry';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../spool/spool.js';
import { InHandBudget } from './budget.js';
import { Receiver } from './receiver.js';
import { Conn, FakeAgent } from './testkit/agent.js';
import { DEFAULT_WINDOW_BYTES } from './window.js';

let dir: string | undefined;
let spool: Spool | undefined;
let receiver: Receiver | undefined;
const cleanup: (() => void)[] = [];

async function start(opts: { windowBytes?: number; inHandBytes?: number } = {}) {
  dir = mkdtempSync(join(tmpdir(), 'sealtrail-flow-'));
  spool = new Spool(join(dir, 'spool'));
  await spool.open();
  const registry = new Registry();
  receiver = new Receiver({
    listen: '127.0.0.1:0',
    tls: null,
    tokenSecret: () => null,
    spool,
    log: createLogger('test', 'silent'),
    registry,
    maxMessageBytes: 16 * 1024 * 1024,
    ...opts,
  });
  await receiver.start();
  return { spool, receiver, registry };
}

afterEach(async () => {
  for (const f of cleanup.splice(0)) f();
  await receiver?.stop();
  await spool?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  receiver = spool = dir = undefined;
});

/** What the server tells a plain HTTP/2 client it may send: per stream (SETTINGS) and per connection. */
async function advertisedWindows(address: string) {
  const session = http2.connect(`http://${address}`);
  cleanup.push(() => session.destroy());
  await new Promise((resolve) => session.once('remoteSettings', resolve));
  // The connection window arrives as a WINDOW_UPDATE right after the settings.
  for (let i = 0; i < 100 && session.state.remoteWindowSize! <= 65_535; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return { stream: session.remoteSettings.initialWindowSize, connection: session.state.remoteWindowSize };
}

describe('receiver flow control', () => {
  it('advertises a receive window of a whole batch per stream and per connection, not HTTP/2’s 64 KiB', async () => {
    const { receiver } = await start();
    expect(DEFAULT_WINDOW_BYTES).toBe(1024 * 1024);
    expect(await advertisedWindows(receiver.boundAddress)).toEqual({
      stream: DEFAULT_WINDOW_BYTES,
      connection: DEFAULT_WINDOW_BYTES,
    });
  });

  it('takes the window it is given', async () => {
    const { receiver } = await start({ windowBytes: 256 * 1024 });
    expect(await advertisedWindows(receiver.boundAddress)).toEqual({
      stream: 256 * 1024,
      connection: 256 * 1024,
    });
  });

  it('with a budget smaller than one batch, many agents streaming at once still get everything stored and acked', async () => {
    const { spool, receiver, registry } = await start({ inHandBytes: 1 });
    const client = createClient(Ingest, receiver.boundAddress, grpc.credentials.createInsecure());
    cleanup.push(() => client.close());
    const agents = Array.from({ length: 8 }, () => new FakeAgent());
    const conns = agents.map(() => new Conn(client));
    cleanup.push(() => {
      for (const c of conns) if (!c.ended) c.cancel();
    });
    await Promise.all(agents.map((a, i) => conns[i]!.handshake(a)));
    // Each sends five batches without waiting for an ack: every stream is over budget at once.
    for (const [i, a] of agents.entries()) {
      const c = conns[i]!;
      c.batch(a.chainId, a.grow(19));
      for (let b = 0; b < 4; b++) c.batch(a.chainId, a.grow(20));
    }
    for (const c of conns) {
      const acks: bigint[] = [];
      while (acks.at(-1) !== 99n) acks.push((await c.expect('ack')).throughSeq);
      expect(acks).toEqual([19n, 39n, 59n, 79n, 99n]);
    }
    const stored = await spool.read(-1n, 10_000);
    expect(stored).toHaveLength(8 * 100);
    for (const a of agents) {
      expect(stored.filter((r) => r.agentId === a.agentId).map((r) => r.seq)).toEqual(
        a.records.map((r) => r.seq),
      );
    }
    const gauge = await registry.getSingleMetric('sealtrail_receiver_in_hand_bytes')!.get();
    expect(gauge.values[0]!.value).toBe(0);
  });

  it('a stream refused with batches in hand gives their bytes back', async () => {
    const { receiver, registry } = await start();
    const client = createClient(Ingest, receiver.boundAddress, grpc.credentials.createInsecure());
    cleanup.push(() => client.close());
    const inHand = async () =>
      (await registry.getSingleMetric('sealtrail_receiver_in_hand_bytes')!.get()).values[0]!.value;
    const agent = new FakeAgent();
    // Batches before authentication: the first is refused before any commit is set up.
    const c = new Conn(client);
    c.hello(agent);
    await c.expect('challenge');
    c.batch(agent.chainId, agent.grow(50));
    c.batch(agent.chainId, agent.grow(50));
    expect((await c.expect('refusal')).code).toBe('not_authenticated');
    await c.status;
    for (let i = 0; i < 100 && (await inHand()) !== 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await inHand()).toBe(0);
  });
});

describe('InHandBudget', () => {
  it('is over at its limit, and resumes waiting streams in order while there is room', () => {
    const b = new InHandBudget(100);
    const resumed: string[] = [];
    b.take(60);
    expect(b.over).toBe(false);
    b.whenRoom(() => resumed.push('now'));
    expect(resumed).toEqual(['now']);
    b.take(60);
    expect(b.over).toBe(true);
    const x = () => resumed.push('x');
    b.whenRoom(() => resumed.push('a'));
    b.whenRoom(x);
    b.whenRoom(() => resumed.push('c'));
    b.forget(x);
    b.give(10); // 110: still over
    expect(resumed).toEqual(['now']);
    b.give(60); // 50
    expect(resumed).toEqual(['now', 'a', 'c']);
    expect(b.bytes).toBe(50);
  });
});
