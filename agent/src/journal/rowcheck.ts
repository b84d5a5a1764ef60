/**
 * Journal verification's fast row check on a worker thread: `verifyTail` hands a worker
 * the newer part of a long tail, which it checks while the main thread checks the older
 * part, so reading (classic-level makes a Buffer of every key and value) and hashing are
 * spread over two cores.
 *
 * The worker never names a fault. It reports how far the rows were plainly the next good
 * records of one chain (the test of TailVerifier's fast path), and the main thread's
 * TailVerifier goes on from the last of them and decides whatever comes next, so faults
 * and their details stay the reference's. Keys are read, not inferred: a record's hash
 * binds the seq it was sealed at, not the key it is stored under, so a renamed key would
 * go unseen by a check of the values alone.
 *
 * Self-contained on purpose (node built-ins and classic-level only): the worker loads this
 * file itself, compiled from dist or, under the tests, as TypeScript through Node's type
 * stripping, where relative imports of other sources would not resolve.
 */
import { hash } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ClassicLevel } from 'classic-level';

const TWO_32 = 2 ** 32;
const KIND_ERASED = 2;
const VALUE_HEADER = 33;
const RECORD_KEY_BYTES = 13;
const HEAD_MARK_BYTES = 14;
const HASH_BYTES = 32;
const CHUNK = 2000;
const JOB = 'sealtrail.journal.rowcheck';

export interface RowCheckStart {
  /** The key of the record the rows chain from: 'r' u32(chain) u64(seq). */
  key: Uint8Array;
  /** Its record hash, latin1. */
  hash: string;
  /** recordHashPrefix of its chain (packages/chain). */
  prefix: Uint8Array;
}

/** The last record that checked good (the start when none did), and how many did. */
export interface RowCheckResult {
  count: number;
  hi: number;
  lo: number;
  hash: string;
}

/** Follows one chain from a start record while the rows are plainly its next records. */
export class RowChecker {
  readonly chain: number;
  count = 0;
  /** The seq of the last good record, as two u32 halves. */
  hi: number;
  lo: number;
  /** The last good record's hash, latin1. */
  last: string;
  private readonly scratch: Buffer;
  private readonly at: number;

  constructor(start: RowCheckStart) {
    const key = Buffer.from(start.key.buffer, start.key.byteOffset, start.key.byteLength);
    this.chain = key.readUInt32BE(1);
    this.hi = key.readUInt32BE(5);
    this.lo = key.readUInt32BE(9);
    this.last = start.hash;
    this.at = start.prefix.length;
    // The preimage, laid out once: prefix || u64be(seq) || previous hash || event hash.
    this.scratch = Buffer.alloc(this.at + 8 + 2 * HASH_BYTES);
    this.scratch.set(start.prefix);
  }

  get result(): RowCheckResult {
    return { count: this.count, hi: this.hi, lo: this.lo, hash: this.last };
  }

  /** How many leading rows were good records or head marks (rows.length when all were). */
  check(rows: readonly (readonly [Buffer, Buffer])[]): number {
    for (let i = 0; i < rows.length; i++) {
      const [key, value] = rows[i]!;
      if (key.length === HEAD_MARK_BYTES) continue;
      if (!this.next(key, value)) return i;
    }
    return rows.length;
  }

  private next(key: Buffer, value: Buffer): boolean {
    let hi = this.hi;
    let lo = this.lo + 1;
    if (lo === TWO_32) {
      lo = 0;
      hi++;
    }
    if (
      key.length !== RECORD_KEY_BYTES ||
      key.readUInt32BE(1) !== this.chain ||
      key.readUInt32BE(5) !== hi ||
      key.readUInt32BE(9) !== lo
    )
      return false;
    let ev: string;
    if (value[0] === KIND_ERASED) {
      if (value.length !== VALUE_HEADER + HASH_BYTES) return false;
      ev = value.toString('latin1', VALUE_HEADER);
    } else {
      if (value.length < VALUE_HEADER) return false;
      ev = hash('sha256', value.subarray(VALUE_HEADER), 'binary');
    }
    const b = this.scratch;
    const o = this.at;
    for (let i = 5; i < RECORD_KEY_BYTES; i++) b[o + i - 5] = key[i]!;
    b.write(this.last, o + 8, 'latin1');
    b.write(ev, o + 8 + HASH_BYTES, 'latin1');
    const h = hash('sha256', b, 'binary'); // 'binary' is latin1
    if (value.toString('latin1', 1, VALUE_HEADER) !== h) return false;
    this.hi = hi;
    this.lo = lo;
    this.last = h;
    this.count++;
    return true;
  }
}

interface Job {
  location: string;
  start: RowCheckStart;
  /** The end of the range (exclusive); the rows begin just after the start record. */
  lt: Uint8Array;
  /** Set to 1 by the main thread to stop the worker early. */
  stop: Int32Array;
}

type Message = { progress: number } | { done: RowCheckResult };

export interface RowCheckRun {
  /** The worker's result once it exited; null when it failed (nothing of its work is then used). */
  result: Promise<RowCheckResult | null>;
  /** Records checked good so far. */
  progress(): number;
  /** Asks the worker to stop after its current chunk. */
  stop(): void;
}

/**
 * Checks the rows after `start` up to `lt` on a worker thread sharing the open LevelDB at
 * `location` (opened with `multithreading: true`).
 */
export function checkRowsInWorker(location: string, start: RowCheckStart, lt: Uint8Array): RowCheckRun {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  let progress = 0;
  let done: RowCheckResult | null = null;
  let worker: Worker;
  try {
    worker = new Worker(new URL(import.meta.url), {
      workerData: { [JOB]: { location, start, lt, stop } satisfies Job },
    });
  } catch {
    // No worker (e.g. out of threads): the main thread checks these rows itself.
    return { result: Promise.resolve(null), progress: () => 0, stop: () => undefined };
  }
  worker.on('message', (m: Message) => {
    if ('progress' in m) progress = m.progress;
    else done = m.done;
  });
  const result = new Promise<RowCheckResult | null>((resolve) => {
    let failed = false;
    worker.on('error', () => {
      failed = true;
    });
    worker.on('exit', () => resolve(failed ? null : done));
  });
  return {
    result,
    progress: () => progress,
    stop: () => {
      Atomics.store(stop, 0, 1);
    },
  };
}

async function work(job: Job): Promise<void> {
  const db = new ClassicLevel<Buffer, Buffer>(job.location, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
  });
  await db.open({ multithreading: true });
  const checker = new RowChecker(job.start);
  try {
    const it = db.iterator({
      gt: Buffer.from(job.start.key),
      lt: Buffer.from(job.lt),
      highWaterMarkBytes: 4 * 1024 * 1024,
    });
    let pending = it.nextv(CHUNK);
    try {
      for (;;) {
        const rows = await pending;
        if (rows.length === 0) break;
        // The next chunk is read (on LevelDB's thread) while this one is hashed.
        pending = it.nextv(CHUNK);
        if (checker.check(rows) < rows.length || Atomics.load(job.stop, 0) === 1) break;
        parentPort!.postMessage({ progress: checker.count } satisfies Message);
      }
    } finally {
      await pending.catch(() => undefined);
      await it.close();
    }
  } finally {
    await db.close();
  }
  parentPort!.postMessage({ done: checker.result } satisfies Message);
}

if (!isMainThread && workerData?.[JOB]) {
  // A failure surfaces as the worker's 'error' event; the main thread then checks these rows itself.
  void work(workerData[JOB] as Job);
}
