/**
 * `file`: JSON lines, exactly once across crashes. After each batch it fsyncs
 * the file, then stores the cursor {offset, file_bytes} in the spool. On start,
 * bytes past `file_bytes` were written but never recorded as delivered, so they
 * are cut and written again: no line is lost and none appears twice.
 */
import { once } from 'node:events';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Counter, Gauge } from '@sealtrail/telemetry';
import { isExportable } from '../../spool/spool.js';
import type { Exporter, ExporterFactory, ExporterSettings } from '../exporter.js';
import type { FileExporterConfig } from './config.js';
import { encodeNativeLine } from './encode.js';

interface Cursor {
  offset: string;
  file_bytes: number;
}

class FileExporter implements Exporter {
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private fh: FileHandle | null = null;
  private offset = -1n;
  private fileBytes = 0;
  private readonly sent;

  constructor(
    private readonly s: ExporterSettings,
    private readonly c: FileExporterConfig,
  ) {
    this.sent = new Counter({
      name: 'sealtrail_exporter_file_events_sent_total',
      help: 'Events written by file exporters',
      labelNames: ['exporter'],
      registers: [s.registry],
    });
    const self = this;
    new Gauge({
      name: 'sealtrail_exporter_file_lag_records',
      help: 'Spool records a file exporter has not written yet',
      labelNames: ['exporter'],
      registers: [s.registry],
      collect() {
        this.set({ exporter: c.name }, Number(self.lag()));
      },
    });
  }

  get name(): string {
    return this.c.name;
  }

  lag(): bigint {
    return this.s.spool.headOffset - this.offset;
  }

  async start(): Promise<void> {
    const cursor = await this.s.spool.getCursor<Cursor>(this.cursorName);
    await mkdir(dirname(this.c.path), { recursive: true });
    this.fh = await open(this.c.path, 'a+', 0o640);
    const size = (await this.fh.stat()).size;
    if (cursor) {
      this.offset = BigInt(cursor.offset);
      if (size > cursor.file_bytes) {
        this.s.log.warn(
          { exporter: this.name, bytes: size - cursor.file_bytes },
          'cutting lines written but not recorded before a crash; they are written again',
        );
        await this.fh.truncate(cursor.file_bytes);
        await this.fh.datasync();
      } else if (size < cursor.file_bytes) {
        this.s.log.warn(
          { exporter: this.name, path: this.c.path },
          'export file is shorter than recorded (rotated or removed outside Sealtrail); continuing after the cursor',
        );
      }
    }
    this.fileBytes = Math.min(size, cursor?.file_bytes ?? size);
    this.running = this.loop();
  }

  private get cursorName(): string {
    return `file:${this.c.name}`;
  }

  private async loop(): Promise<void> {
    const { spool, log } = this.s;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        const records = await spool.read(this.offset, this.c.batch_max_records);
        if (records.length === 0) {
          await once(spool, 'committed', { signal }).catch(() => undefined);
          continue;
        }
        const lines = records.filter(isExportable).map(encodeNativeLine);
        const data = Buffer.concat(lines);
        if (data.length > 0) {
          await this.fh!.write(data, 0, data.length, null);
          await this.fh!.datasync();
        }
        const last = records[records.length - 1]!.offset;
        await spool.putCursor(this.cursorName, {
          offset: last.toString(),
          file_bytes: this.fileBytes + data.length,
        });
        this.fileBytes += data.length;
        this.offset = last;
        this.sent.inc({ exporter: this.name }, lines.length);
      } catch (err) {
        if (signal.aborted) break;
        log.error({ err, exporter: this.name }, 'file export failed; retrying in 1 s');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    await this.fh?.close();
    this.fh = null;
  }
}

export const fileExporter: ExporterFactory<FileExporterConfig> = {
  type: 'file',
  create: (settings, config) => new FileExporter(settings, config),
};
