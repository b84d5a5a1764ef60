/**
 * SHA-256 of file content in worker threads, under a byte-rate budget, so neither a
 * large file nor a 100,000-file scan blocks the agent's event loop.
 *
 * A worker opens with O_NONBLOCK (a FIFO swapped in for a file cannot hang it) and,
 * unless links are followed, O_NOFOLLOW; it hashes only regular files, reading 1 MiB
 * at a time, and gives up past `maxBytes`.
 *
 * Files up to SMALL_FILE_BYTES skip the workers (`hashSmallFile`): the read and the digest run
 * on the libuv thread pool, still off the event loop.
 *
 * Workers start when there is something to hash and stop after `idleMs` without work: a worker
 * isolate holds ~18 MB resident, and a steady agent (or a restart that finds nothing changed)
 * hashes nothing for hours.
 */
import { constants, type FileHandle, open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

export type HashResult =
  | { ok: true; sha256: string; bytes: number }
  | { ok: false; reason: 'too_large' | 'not_a_file' | 'error'; detail?: string };

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
const C = fs.constants;
parentPort.on('message', ({ id, path, maxBytes, follow }) => {
  let fd = -1;
  try {
    fd = fs.openSync(path, C.O_RDONLY | C.O_NONBLOCK | (follow ? 0 : C.O_NOFOLLOW));
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return parentPort.postMessage({ id, ok: false, reason: 'not_a_file' });
    if (st.size > maxBytes) return parentPort.postMessage({ id, ok: false, reason: 'too_large' });
    const h = createHash('sha256');
    let total = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      total += n;
      if (total > maxBytes) return parentPort.postMessage({ id, ok: false, reason: 'too_large' });
      h.update(buf.subarray(0, n));
    }
    parentPort.postMessage({ id, ok: true, sha256: h.digest('hex'), bytes: total });
  } catch (e) {
    parentPort.postMessage({ id, ok: false, reason: 'error', detail: e.code || e.message });
  } finally {
    if (fd >= 0) try { fs.closeSync(fd); } catch {}
  }
});
`;

/**
 * Files up to this size are hashed without a worker: read on the libuv thread pool and digested
 * with WebCrypto, which also runs there. A tree of small files (/etc) then never starts one.
 */
export const SMALL_FILE_BYTES = 64 * 1024;

const failed = (e: unknown): HashResult => ({
  ok: false,
  reason: 'error',
  detail: (e as NodeJS.ErrnoException).code ?? (e as Error).message,
});

/**
 * SHA-256 of a regular file of at most SMALL_FILE_BYTES, opened the way a worker opens it;
 * null when it is (or grew) larger, for the pool to hash.
 */
export async function hashSmallFile(path: string, opts: HashPoolOptions): Promise<HashResult | null> {
  let fh: FileHandle;
  try {
    fh = await open(
      path,
      constants.O_RDONLY | constants.O_NONBLOCK | (opts.follow ? 0 : constants.O_NOFOLLOW),
    );
  } catch (e) {
    return failed(e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, reason: 'not_a_file' };
    if (st.size > SMALL_FILE_BYTES) return null;
    // One byte of room past the size it had: filling it means the file grew.
    const buf = Buffer.allocUnsafe(st.size + 1);
    let total = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, total, buf.length - total, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total === buf.length) return null;
    }
    if (total > opts.maxBytes) return { ok: false, reason: 'too_large' };
    const digest = await crypto.subtle.digest('SHA-256', buf.subarray(0, total));
    return { ok: true, sha256: Buffer.from(digest).toString('hex'), bytes: total };
  } catch (e) {
    return failed(e);
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Serialized token bucket: callers may go into debt for one large file, then everyone waits it off. */
export class ByteRateLimiter {
  private tokens: number;
  private last = performance.now();
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly bytesPerSec: number) {
    this.tokens = bytesPerSec;
  }

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSec <= 0) return Promise.resolve();
    const p = this.chain.then(async () => {
      const now = performance.now();
      this.tokens = Math.min(this.bytesPerSec, this.tokens + ((now - this.last) / 1000) * this.bytesPerSec);
      this.last = now;
      this.tokens -= bytes;
      if (this.tokens < 0 && !signal?.aborted) {
        const waitMs = (-this.tokens / this.bytesPerSec) * 1000;
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, waitMs);
          function done() {
            clearTimeout(t);
            signal?.removeEventListener('abort', done);
            resolve();
          }
          signal?.addEventListener('abort', done, { once: true });
        });
      }
    });
    this.chain = p.catch(() => {});
    return p;
  }
}

interface Job {
  id: number;
  path: string;
  resolve: (r: HashResult) => void;
}

export interface HashPoolOptions {
  maxBytes: number;
  follow: boolean;
  /** Workers with nothing to do for this long are stopped (started again on the next file). */
  idleMs?: number;
}

export class HashPool {
  private workers: { worker: Worker; job: Job | null }[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly size: number,
    private readonly opts: HashPoolOptions,
  ) {}

  /** Worker threads running now. */
  get threads(): number {
    return this.workers.length;
  }

  private spawn(): void {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    const slot: { worker: Worker; job: Job | null } = { worker, job: null };
    worker.on('message', (r: HashResult & { id: number }) => {
      const job = slot.job;
      slot.job = null;
      if (job && job.id === r.id) {
        const { id: _id, ...result } = r;
        job.resolve(result as HashResult);
      }
      this.dispatch();
    });
    worker.on('error', (err) => {
      const job = slot.job;
      slot.job = null;
      job?.resolve({ ok: false, reason: 'error', detail: err.message });
      const i = this.workers.indexOf(slot);
      if (i >= 0) this.workers.splice(i, 1);
      this.dispatch();
    });
    this.workers.push(slot);
  }

  hash(path: string): Promise<HashResult> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'error', detail: 'hasher closed' });
    return new Promise((resolve) => {
      this.queue.push({ id: this.nextId++, path, resolve });
      this.dispatch();
    });
  }

  private dispatch(): void {
    if (this.closed) return;
    if (this.queue.length > 0) {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      while (this.workers.length < Math.min(this.size, this.queue.length + this.busy())) this.spawn();
    }
    for (const slot of this.workers) {
      if (slot.job || this.queue.length === 0) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.postMessage({
        id: job.id,
        path: job.path,
        maxBytes: this.opts.maxBytes,
        follow: this.opts.follow,
      });
    }
    if (this.queue.length === 0 && this.busy() === 0 && this.workers.length > 0 && !this.idleTimer) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        if (this.busy() > 0 || this.queue.length > 0) return;
        for (const s of this.workers.splice(0)) void s.worker.terminate();
      }, this.opts.idleMs ?? 30_000);
      this.idleTimer.unref();
    }
  }

  private busy(): number {
    let n = 0;
    for (const s of this.workers) if (s.job) n++;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    for (const j of this.queue.splice(0)) j.resolve({ ok: false, reason: 'error', detail: 'hasher closed' });
    await Promise.all(
      this.workers.map(async (s) => {
        s.job?.resolve({ ok: false, reason: 'error', detail: 'hasher closed' });
        await s.worker.terminate();
      }),
    );
  }
}
