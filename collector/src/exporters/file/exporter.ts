/**
 * `file`: JSON lines, exactly once across crashes, with rotation.
 *
 * After each batch it fsyncs the file, then stores the cursor
 * `{offset, file_bytes, file_started_ms}` in the spool. On start, bytes past
 * `file_bytes` were written but never recorded as delivered, so they are cut
 * and written again: no line is lost and none appears twice.
 *
 * Rotation (by size after a batch, or by age of the file's first line) is
 * crash-safe the same way: the cursor first records `rotating_to` (the new
 * name), then the file is renamed (atomic within the directory) and the
 * directory fsynced, then a fresh file is opened and the cursor records
 * `file_bytes: 0`. A start that finds `rotating_to` finishes the rotation.
 * Rotated files are then gzipped (temp → fsync → rename, then the original is
 * removed) and the oldest beyond `keep_files` deleted, off the delivery path.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { SealtrailError } from '@sealtrail/errors';
import { rateLimited } from '@sealtrail/telemetry';
import { backoffDelay, sleep } from '../common/backoff.js';
import { type Batch, Batcher } from '../common/batcher.js';
import { cursorName } from '../common/delivery.js';
import { type BoundExporterMetrics, exporterMetrics } from '../common/metrics.js';
import { compileFilter } from '../common/record.js';
import type { Exporter, ExporterFactory, ExporterSettings } from '../exporter.js';
import type { FileExporterConfig } from './config.js';
import { fileEncoder } from './encode.js';

interface Cursor {
  offset: string;
  file_bytes: number;
  /** When the current file got its first line (ms); absent while it is empty. */
  file_started_ms?: number;
  /** A rotation in progress: the rotated file's name in the same directory. */
  rotating_to?: string;
}

async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** `20261123T183000.123Z`: sorts as it happened. */
function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '');
}

class FileExporter implements Exporter {
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  private fh: FileHandle | null = null;
  private offset = -1n;
  /** File size the cursor records. */
  private fileBytes = 0;
  /** File size written and fsynced: ahead of `fileBytes` by the batch whose cursor is being synced. */
  private writtenBytes = 0;
  private fileStartedMs: number | undefined;
  private housekeeping: Promise<void> = Promise.resolve();
  private readonly metrics: BoundExporterMetrics;
  private readonly batcher: Batcher<Buffer>;
  private readonly dir: string;
  private readonly stem: string;
  private readonly ext: string;
  private readonly rotatedName: RegExp;
  private readonly logError;

  constructor(
    private readonly s: ExporterSettings,
    private readonly c: FileExporterConfig,
  ) {
    this.batcher = new Batcher(s.spool, c, compileFilter(c.filter), fileEncoder(c));
    this.metrics = exporterMetrics(s.registry, c.name, c.type, {
      lagRecords: () => Number(this.lag()),
      lagSeconds: () => this.lagSeconds(),
    });
    this.dir = dirname(c.path);
    this.ext = extname(c.path);
    this.stem = basename(c.path, this.ext);
    const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.rotatedName = new RegExp(
      `^${esc(this.stem)}-\\d{8}T\\d{6}\\.\\d{3}Z(-\\d+)?${esc(this.ext)}(\\.gz)?$`,
    );
    this.logError = rateLimited(s.log);
  }

  get name(): string {
    return this.c.name;
  }

  private get cursorKey(): string {
    return cursorName('file', this.c.name);
  }

  lag(): bigint {
    const l = this.s.spool.headOffset - this.offset;
    return l > 0n ? l : 0n;
  }

  private async lagSeconds(): Promise<number> {
    if (!this.s.spool.isOpen || this.lag() === 0n) return 0;
    try {
      const [next] = await this.s.spool.readOffsets([this.offset + 1n]);
      return next ? Math.max(0, (Date.now() - next.receivedMs) / 1000) : 0;
    } catch {
      return 0;
    }
  }

  private cursor(extra: Partial<Cursor> = {}): Cursor {
    return {
      offset: this.offset.toString(),
      file_bytes: this.fileBytes,
      ...(this.fileStartedMs !== undefined ? { file_started_ms: this.fileStartedMs } : {}),
      ...extra,
    };
  }

  async start(): Promise<void> {
    const { spool, log } = this.s;
    let cursor = await spool.getCursor<Cursor>(this.cursorKey);
    await mkdir(this.dir, { recursive: true });
    if (cursor) this.offset = BigInt(cursor.offset);
    if (cursor?.rotating_to) {
      await this.finishRotation(cursor);
      cursor = await spool.getCursor<Cursor>(this.cursorKey);
    }
    this.fh = await open(this.c.path, 'a+', 0o640);
    const size = (await this.fh.stat()).size;
    if (cursor) {
      if (size > cursor.file_bytes) {
        log.warn(
          { bytes: size - cursor.file_bytes },
          'cutting lines written but not recorded before a crash; they are written again',
        );
        await this.fh.truncate(cursor.file_bytes);
        await this.fh.datasync();
      } else if (size < cursor.file_bytes) {
        log.warn(
          { path: this.c.path },
          'export file is shorter than recorded (rotated or removed outside Sealtrail); continuing after the cursor',
        );
      }
    }
    this.fileBytes = Math.min(size, cursor?.file_bytes ?? size);
    this.writtenBytes = this.fileBytes;
    this.fileStartedMs = cursor?.file_started_ms ?? (this.fileBytes > 0 ? Date.now() : undefined);
    this.queueHousekeeping();
    this.running = this.loop();
  }

  /** Completes a rotation a crash interrupted (see the module comment). */
  private async finishRotation(cursor: Cursor): Promise<void> {
    const target = join(this.dir, cursor.rotating_to!);
    if (!(await exists(target))) {
      if (await exists(this.c.path)) {
        const fh = await open(this.c.path, 'r+');
        await fh.truncate(cursor.file_bytes);
        await fh.sync();
        await fh.close();
        await rename(this.c.path, target);
      }
    } else if (await exists(this.c.path)) {
      // Renamed, and the fresh file may exist; nothing was written to it before the cursor said so.
      const fh = await open(this.c.path, 'r+');
      await fh.truncate(0);
      await fh.close();
    }
    await fsyncDir(this.dir);
    this.fileBytes = 0;
    this.writtenBytes = 0;
    this.fileStartedMs = undefined;
    await this.s.spool.commitExport({
      exporter: this.name,
      cursorKey: this.cursorKey,
      cursor: this.cursor(),
    });
    this.s.log.info({ rotated_to: target }, 'finished a rotation interrupted by a crash');
  }

  private dueForRotation(): boolean {
    if (this.writtenBytes === 0) return false;
    if (this.c.rotate_max_bytes !== undefined && this.writtenBytes >= this.c.rotate_max_bytes) return true;
    return (
      this.c.rotate_interval !== undefined &&
      this.fileStartedMs !== undefined &&
      Date.now() - this.fileStartedMs >= this.c.rotate_interval
    );
  }

  private async rotate(): Promise<void> {
    let name = `${this.stem}-${stamp(Date.now())}${this.ext}`;
    for (
      let n = 1;
      (await exists(join(this.dir, name))) || (await exists(join(this.dir, `${name}.gz`)));
      n++
    ) {
      name = `${this.stem}-${stamp(Date.now())}-${n}${this.ext}`;
    }
    await this.s.spool.commitExport({
      exporter: this.name,
      cursorKey: this.cursorKey,
      cursor: this.cursor({ rotating_to: name }),
    });
    await this.fh!.close();
    this.fh = null;
    await rename(this.c.path, join(this.dir, name));
    await fsyncDir(this.dir);
    this.fh = await open(this.c.path, 'a+', 0o640);
    this.fileBytes = 0;
    this.writtenBytes = 0;
    this.fileStartedMs = undefined;
    await this.s.spool.commitExport({
      exporter: this.name,
      cursorKey: this.cursorKey,
      cursor: this.cursor(),
    });
    this.s.log.info({ rotated_to: name }, 'rotated the export file');
    this.queueHousekeeping();
  }

  /** gzip rotated files and apply `keep_files`, one run at a time, off the delivery path. */
  private queueHousekeeping(): void {
    this.housekeeping = this.housekeeping
      .then(() => this.housekeep())
      .catch((err) => this.logError('housekeeping', { err }, 'compressing or pruning rotated files failed'));
  }

  private async housekeep(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => this.rotatedName.test(n)).sort();
    if (this.c.compress) {
      for (const n of await readdir(this.dir)) {
        if (n.endsWith('.gz.tmp') && this.rotatedName.test(n.slice(0, -4)))
          await rm(join(this.dir, n), { force: true });
      }
      for (const n of names) {
        if (n.endsWith('.gz') || this.abort.signal.aborted) continue;
        const src = join(this.dir, n);
        const gz = `${src}.gz`;
        if (!(await exists(gz))) {
          const tmp = `${gz}.tmp`;
          await pipeline(createReadStream(src), createGzip(), createWriteStream(tmp, { mode: 0o640 }));
          const fh = await open(tmp, 'r');
          await fh.sync();
          await fh.close();
          await rename(tmp, gz);
          await fsyncDir(this.dir);
        }
        await unlink(src);
      }
    }
    if (this.c.keep_files > 0) {
      const rotated = [...new Set((await readdir(this.dir)).filter((n) => this.rotatedName.test(n)))].sort();
      const excess = rotated.length - this.c.keep_files;
      for (const n of rotated.slice(0, Math.max(0, excess))) await rm(join(this.dir, n), { force: true });
    }
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    const backoff = { initialMs: this.c.retry_initial_backoff, maxMs: this.c.retry_max_backoff };
    let attempt = 0;
    // Three stages overlap: the next batch is read and encoded, this one is
    // written and fsynced, and the previous one's cursor is synced to the spool
    // (the two fsyncs run side by side). The file may then hold one batch past
    // the cursor, which a restart cuts as it cuts any unrecorded bytes.
    let prefetch: Promise<Batch<Buffer> | null> | null = null;
    let committing: Promise<void> | null = null;
    const settle = async () => {
      const c = committing;
      committing = null;
      await c;
    };
    while (!signal.aborted) {
      try {
        // rotating, or reading from the cursor: it must be current
        if (this.dueForRotation()) {
          await settle();
          await this.rotate();
        } else if (!prefetch) await settle();
        const batch = await (prefetch ?? this.batcher.next(this.offset, signal));
        prefetch = null;
        if (!batch || signal.aborted) continue;
        prefetch = this.batcher.next(batch.lastOffset, signal);
        prefetch.catch(() => undefined);
        const data =
          batch.items.length === 1
            ? batch.items[0]!.payload
            : Buffer.concat(batch.items.map((i) => i.payload));
        if (data.length > 0) {
          const t0 = performance.now();
          // After a failed attempt the file may hold part of this batch: cut it first.
          if (attempt > 0) await this.fh!.truncate(this.fileBytes);
          await this.fh!.write(data, 0, data.length, null);
          await this.fh!.datasync();
          this.metrics.observe((performance.now() - t0) / 1000);
          if (this.fileStartedMs === undefined) this.fileStartedMs = Date.now();
        }
        this.writtenBytes += data.length;
        await settle();
        committing = this.commit(batch, this.writtenBytes);
        committing.catch(() => undefined);
        attempt = 0;
      } catch (err) {
        // write again from the last cursor synced, once no commit is in flight
        prefetch = null;
        await settle().catch(() => undefined);
        this.writtenBytes = this.fileBytes;
        if (signal.aborted) break;
        this.metrics.failed(1);
        const wait = backoffDelay(backoff, attempt++, (err as SealtrailError).retryAfterMs);
        this.logError('write', { err, retry_in_ms: wait }, 'file export failed; retrying');
        await sleep(wait, signal).catch(() => undefined);
      }
    }
    await settle().catch(() => undefined);
  }

  /** Records a written and fsynced batch: cursor `{offset, file_bytes}` and its dead letters, one synced write. */
  private async commit(batch: Batch<Buffer>, fileBytes: number): Promise<void> {
    await this.s.spool.commitExport({
      exporter: this.name,
      cursorKey: this.cursorKey,
      cursor: { ...this.cursor(), offset: batch.lastOffset.toString(), file_bytes: fileBytes },
      deadLetters: batch.rejected,
    });
    this.fileBytes = fileBytes;
    this.offset = batch.lastOffset;
    this.metrics.sent(batch.items.length);
    this.metrics.filtered(batch.skipped);
    this.metrics.deadLettered(batch.rejected.length);
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.abort.abort(new SealtrailError('ST_EXPORT_STOPPED', 'exporter stopped'));
      await this.running;
      await this.housekeeping;
      await this.fh?.close();
      this.fh = null;
      this.metrics.release();
    })();
    return this.stopped;
  }
}

export const fileExporter: ExporterFactory<FileExporterConfig> = {
  type: 'file',
  create: (settings, config) => new FileExporter(settings, config),
};
