// Follows the collector's file export: counts bench events as lines arrive (cheap, while timing),
// then checks the finished file line by line (after timing).
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { BENCH_TYPE, benchSeq } from './workload.mjs';

const MARKER = Buffer.from(`"type":"${BENCH_TYPE}"`);
const NL = 0x0a;

function countMarker(buf, end, marker) {
  let n = 0;
  let i = buf.indexOf(marker, 0);
  while (i !== -1 && i < end) {
    n++;
    i = buf.indexOf(marker, i + marker.length);
  }
  return n;
}

/** Incremental reader of a JSON-lines file that may not exist yet; `benchLines` counts lines with `marker`. */
export class ExportFollower {
  constructor(path, marker = MARKER) {
    this.path = path;
    this.marker = Buffer.from(marker);
    this.fh = null;
    this.pos = 0;
    this.carry = Buffer.alloc(0);
    this.lines = 0;
    this.benchLines = 0;
    this.bytes = 0;
  }

  /** Reads what was appended since the last call; returns true when something new arrived. */
  async poll() {
    if (!this.fh) {
      try {
        this.fh = await open(this.path, 'r');
      } catch {
        return false;
      }
    }
    const { size } = await this.fh.stat();
    if (size <= this.pos) return false;
    const chunk = Buffer.allocUnsafe(size - this.pos);
    const { bytesRead } = await this.fh.read(chunk, 0, chunk.length, this.pos);
    this.pos += bytesRead;
    this.bytes = this.pos;
    const fresh = chunk.subarray(0, bytesRead);
    const data = this.carry.length ? Buffer.concat([this.carry, fresh]) : fresh;
    const lastNl = data.lastIndexOf(NL);
    if (lastNl === -1) {
      this.carry = Buffer.from(data);
      return true;
    }
    let n = 0;
    for (let i = data.indexOf(NL); i !== -1 && i <= lastNl; i = data.indexOf(NL, i + 1)) n++;
    this.lines += n;
    this.benchLines += countMarker(data, lastNl, this.marker);
    this.carry = Buffer.from(data.subarray(lastNl + 1));
    return true;
  }

  async close() {
    await this.fh?.close();
    this.fh = null;
  }
}

/**
 * Polls until `target` bench lines are in the file; returns performance.now() at that moment. Throws when nothing new arrives for `stallMs`,
 * when `deadlineMs` passes, or when `check()` (process liveness) throws.
 */
export async function waitForLines(follower, target, { intervalMs = 50, stallMs, deadlineMs, check }) {
  const started = Date.now();
  let lastProgress = Date.now();
  for (;;) {
    if (await follower.poll()) lastProgress = Date.now();
    const now = Date.now();
    if (follower.benchLines >= target) return performance.now();
    check?.();
    if (now - lastProgress > stallMs) {
      throw new Error(
        `export stalled: ${follower.benchLines}/${target} bench events after no growth for ${stallMs / 1000} s`,
      );
    }
    if (now - started > deadlineMs) {
      throw new Error(`export incomplete after ${deadlineMs / 1000} s: ${follower.benchLines}/${target}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Reads the whole export file: record 0 must be agent.chain.start; every bench seq in [0, n)
 * exactly once. Returns counts and the mean canonical event size (the line minus the spliced
 * `sealtrail` object).
 */
export async function verifyExport(path, n) {
  const seen = new Uint8Array(n);
  const r = {
    lines: 0,
    bench_lines: 0,
    other_lines: 0,
    other_types: {},
    first_type: null,
    unique: 0,
    dup: 0,
    lost: 0,
    foreign: 0,
    bad_lines: 0,
    seq_in_order: true,
    mean_canonical_bytes: 0,
    mean_line_bytes: 0,
    file_bytes: (await stat(path)).size,
  };
  let canonical = 0;
  let prevSeq = -1n;
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) {
    if (line === '') continue;
    r.lines++;
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      r.bad_lines++;
      continue;
    }
    if (r.lines === 1) r.first_type = ev.type;
    const seq = BigInt(ev.sealtrail?.seq ?? -1);
    if (seq <= prevSeq) r.seq_in_order = false;
    prevSeq = seq;
    if (ev.type !== BENCH_TYPE) {
      r.other_lines++;
      r.other_types[ev.type] = (r.other_types[ev.type] ?? 0) + 1;
      continue;
    }
    r.bench_lines++;
    const cut = line.lastIndexOf(',"sealtrail":');
    canonical += cut + 1;
    const i = benchSeq(ev);
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      r.foreign++;
      continue;
    }
    if (seen[i]) r.dup++;
    else {
      seen[i] = 1;
      r.unique++;
    }
  }
  r.lost = n - r.unique;
  r.mean_canonical_bytes = r.bench_lines ? Math.round((canonical / r.bench_lines) * 10) / 10 : 0;
  r.mean_line_bytes = r.lines ? Math.round((r.file_bytes / r.lines) * 10) / 10 : 0;
  return r;
}
