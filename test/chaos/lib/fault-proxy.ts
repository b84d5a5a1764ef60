/**
 * A TCP fault proxy for loopback tests: every connection it accepts is relayed to
 * one target, and on the way the proxy
 *   - cuts the connection (RST or FIN, both sides) after a random number of bytes
 *     in one direction, mid-chunk, so a message (a batch, an ack) arrives torn;
 *   - delays chunks by a random few milliseconds, keeping their order;
 *   - stalls a direction for a while (bytes are held, then released in order);
 *   - black-holes a connection: nothing more passes either way and nothing is
 *     closed, until the peer gives up on it (keepalive) and closes its end.
 * Faults are drawn from a seeded generator (the seed is printed on failure by the
 * test) and bounded: each kind stops after its maximum, and `calm()` stops all, so
 * a test always reaches a quiet end.
 */
import { createServer, type Server, Socket } from 'node:net';

export interface FaultPlan {
  /** Chance that a new connection is cut at some point. */
  cutProbability: number;
  /** Bytes agent → collector (batches) after which it is cut: uniform in [min, max]. */
  cutAfterBytesUp: [number, number];
  /** Bytes collector → agent (challenges, acks) after which it is cut, when a cut hits that direction. */
  cutAfterBytesDown: [number, number];
  /** Of the cuts, the share that hits the collector → agent direction rather than agent → collector. */
  cutDownstreamShare: number;
  maxCuts: number;
  /** Per-chunk delay, uniform in [min, max] ms. */
  delayMs: [number, number];
  /** Chance, per chunk, of stalling that direction first. */
  stallProbability: number;
  stallMs: [number, number];
  maxStalls: number;
  /** Chance, per new connection, that it is black-holed after a while (see cutAfterBytes). */
  blackholeProbability: number;
  maxBlackholes: number;
}

export interface FaultStats {
  connections: number;
  cuts: number;
  /** Cuts that fell inside a chunk (part of it delivered, the rest dropped). */
  tornChunks: number;
  stalls: number;
  blackholes: number;
  delayedChunks: number;
  bytesUp: number;
  bytesDown: number;
}

/** mulberry32: small, seeded, good enough to pick faults reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Bytes a direction may hold before the proxy stops reading its source. */
const HIGH_WATER = 1024 * 1024;

type Direction = 'up' | 'down';

export class FaultProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private calmed = false;
  readonly stats: FaultStats = {
    connections: 0,
    cuts: 0,
    tornChunks: 0,
    stalls: 0,
    blackholes: 0,
    delayedChunks: 0,
    bytesUp: 0,
    bytesDown: 0,
  };
  port = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly plan: FaultPlan,
    private readonly random: () => number,
  ) {
    this.server = createServer((client) => this.relay(client));
  }

  private between([min, max]: [number, number]): number {
    return min + this.random() * (max - min);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.address() as { port: number }).port;
        resolve(this.port);
      });
    });
  }

  /** No new faults from now on; connections already stalled or black-holed stay so until closed. */
  calm(): void {
    this.calmed = true;
  }

  /** Closes the listener and every relayed connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private relay(client: Socket): void {
    const p = this.plan;
    const s = this.stats;
    s.connections++;
    const upstream = new Socket();
    this.sockets.add(client);
    this.sockets.add(upstream);
    let closed = false;
    let blackholed = false;

    // Per connection: at most one cut or one black hole, at a byte count in one direction.
    let cutAt: { dir: Direction; bytes: number; blackhole: boolean } | null = null;
    if (!this.calmed) {
      const r = this.random();
      const dir: Direction = this.random() < p.cutDownstreamShare ? 'down' : 'up';
      const bytes = Math.floor(this.between(dir === 'up' ? p.cutAfterBytesUp : p.cutAfterBytesDown));
      if (r < p.blackholeProbability && s.blackholes < p.maxBlackholes)
        cutAt = { dir, bytes, blackhole: true };
      else if (r < p.blackholeProbability + p.cutProbability && s.cuts < p.maxCuts)
        cutAt = { dir, bytes, blackhole: false };
    }

    const destroyBoth = (reset: boolean) => {
      if (closed) return;
      closed = true;
      for (const sock of [client, upstream]) {
        if (reset && !sock.destroyed && sock.readyState === 'open') sock.resetAndDestroy();
        else sock.destroy();
        this.sockets.delete(sock);
      }
    };

    const pipe = (from: Socket, to: Socket, dir: Direction) => {
      const queue: (Buffer | null)[] = [];
      let queued = 0;
      let moved = 0;
      let busy = false;
      const drainQueue = async () => {
        if (busy) return;
        busy = true;
        try {
          while (queue.length > 0 && !closed) {
            if (blackholed) return;
            const chunk = queue[0]!;
            if (chunk === null) {
              queue.shift();
              to.end();
              continue;
            }
            if (!this.calmed) {
              if (this.random() < p.stallProbability && s.stalls < p.maxStalls) {
                s.stalls++;
                await sleep(this.between(p.stallMs));
              }
              const d = this.between(p.delayMs);
              if (d >= 1) {
                s.delayedChunks++;
                await sleep(d);
              }
            }
            if (closed || blackholed) return;
            queue.shift();
            queued -= chunk.length;
            if (queued < HIGH_WATER && from.isPaused()) from.resume();
            let out = chunk;
            let fault: 'cut' | 'blackhole' | null = null;
            if (cutAt && cutAt.dir === dir && moved + chunk.length > cutAt.bytes) {
              out = chunk.subarray(0, Math.max(0, cutAt.bytes - moved));
              fault = cutAt.blackhole ? 'blackhole' : 'cut';
              if (out.length > 0) s.tornChunks++;
            }
            moved += out.length;
            if (dir === 'up') s.bytesUp += out.length;
            else s.bytesDown += out.length;
            if (out.length > 0) to.write(out);
            if (fault === 'cut') {
              s.cuts++;
              // Let the torn piece reach the peer, then drop the connection (half RST, half FIN).
              const reset = this.random() < 0.5;
              setTimeout(() => destroyBoth(reset), 1);
              return;
            }
            if (fault === 'blackhole') {
              s.blackholes++;
              blackholed = true;
              return;
            }
          }
        } finally {
          busy = false;
        }
      };
      from.on('data', (chunk: Buffer) => {
        if (closed) return;
        if (blackholed) return; // swallowed
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= HIGH_WATER) from.pause();
        void drainQueue();
      });
      from.on('end', () => {
        if (blackholed) {
          // The peer gave up on the black-holed connection: close the other side too.
          destroyBoth(false);
          return;
        }
        queue.push(null);
        void drainQueue();
      });
    };

    for (const sock of [client, upstream]) {
      sock.on('error', () => destroyBoth(false));
      sock.on('close', (hadError) => {
        // An abrupt close, or any close of a black-holed connection, takes the other side down now;
        // after an orderly one the other side is ended once its queued bytes are out, or soon anyway.
        if (hadError || blackholed) destroyBoth(false);
        else setTimeout(() => destroyBoth(false), 5_000).unref();
      });
    }
    pipe(client, upstream, 'up');
    pipe(upstream, client, 'down');
    upstream.connect(this.target.port, this.target.host);
  }
}
