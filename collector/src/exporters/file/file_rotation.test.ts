import { appendFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { Exporter } from '../exporter.js';
import { conformance, metric, settingsFor, TestSpool, waitUntil } from '../testdata/kit.js';
import { fileExporterConfigSchema } from './config.js';
import { fileExporter } from './exporter.js';

const KEY = 'file:archive';

describe('file exporter: filters, schemas, rotation, crash recovery', () => {
  let ts: TestSpool;
  let exporter: Exporter | undefined;
  let path: string;
  afterEach(async () => {
    await exporter?.stop();
    exporter = undefined;
    await ts?.close();
  });

  function config(extra: Record<string, unknown> = {}) {
    return fileExporterConfigSchema.parse({ type: 'file', name: 'archive', path, ...extra });
  }

  async function setup() {
    ts = await new TestSpool().open();
    path = join(ts.dir, 'export', 'events.jsonl');
  }

  function lines(file = path): { id: string; sealtrail?: { seq: string } }[] {
    if (!existsSync(file)) return [];
    const raw = file.endsWith('.gz') ? gunzipSync(readFileSync(file)).toString() : readFileSync(file, 'utf8');
    return raw
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
  }

  function rotated(): string[] {
    return readdirSync(join(ts.dir, 'export'))
      .filter((n) => n !== 'events.jsonl')
      .sort();
  }

  it('passes the conformance checks', async () => {
    await setup();
    await conformance((s) => fileExporter.create(s, config()));
  });

  it('writes native lines exactly once across a crash that left unrecorded bytes', async () => {
    await setup();
    const events = await ts.addMany(10);
    const s = settingsFor(ts.spool);
    exporter = fileExporter.create(s, config());
    await exporter.start();
    await waitUntil('cursor at 9', async () => (await ts.cursor(KEY)) === '9');
    await exporter.stop();
    appendFileSync(path, '{"id":"written but never recorded"}\n{"half a li');
    const more = await ts.addMany(5);
    exporter = fileExporter.create(settingsFor(ts.spool), config());
    await exporter.start();
    await waitUntil('cursor at 14', async () => (await ts.cursor(KEY)) === '14');
    expect(lines().map((l) => l.id)).toEqual([...events, ...more].map((e) => e.id));
    expect(lines()[0]!.sealtrail).toMatchObject({ seq: '0' });
    expect(await metric(s.registry, 'sealtrail_exporter_events_sent_total', { exporter: 'archive' })).toBe(
      10,
    );
  });

  it('rotates by size, gzips rotated files and keeps only keep_files of them', async () => {
    await setup();
    const events = await ts.addMany(60);
    exporter = fileExporter.create(
      settingsFor(ts.spool),
      config({ batch_max_records: 5, rotate_max_bytes: 4000, keep_files: 3 }),
    );
    await exporter.start();
    await waitUntil('cursor at 59', async () => (await ts.cursor(KEY)) === '59');
    // Compression runs beside delivery; a stop would leave the newest for the next start.
    await waitUntil('rotated files compressed and pruned', () => {
      const r = rotated();
      const pending = !existsSync(path) || statSync(path).size >= 4000;
      return !pending && r.length === 3 && r.every((f) => f.endsWith('.gz'));
    });
    await exporter.stop();
    exporter = undefined;
    const files = rotated();
    expect(files.length).toBe(3);
    for (const f of files) expect(f).toMatch(/^events-\d{8}T\d{6}\.\d{3}Z(-\d+)?\.jsonl\.gz$/);
    // What is left is a contiguous, duplicate-free tail of the stream, each file cut at a batch boundary.
    const kept = [...files.flatMap((f) => lines(join(ts.dir, 'export', f))), ...lines()].map((l) => l.id);
    const ids = events.map((e) => e.id);
    expect(kept).toEqual(ids.slice(ids.length - kept.length));
    for (const f of files) expect(lines(join(ts.dir, 'export', f)).length % 5).toBe(0);
    expect(statSync(path).size).toBeLessThan(4000);
  });

  it('rotates by time even when no new events come', async () => {
    await setup();
    await ts.addMany(3);
    exporter = fileExporter.create(settingsFor(ts.spool), config({ rotate_interval: 300, compress: false }));
    await exporter.start();
    await waitUntil('rotated and reopened', () => rotated().length === 1 && existsSync(path), 5000);
    expect(lines(join(ts.dir, 'export', rotated()[0]!))).toHaveLength(3);
    expect(statSync(path).size).toBe(0);
    await new Promise((r) => setTimeout(r, 700));
    expect(rotated()).toHaveLength(1); // an empty file is not rotated
  });

  it('finishes a rotation a crash interrupted, cutting unrecorded bytes first', async () => {
    await setup();
    const events = await ts.addMany(3);
    exporter = fileExporter.create(settingsFor(ts.spool), config({ compress: false }));
    await exporter.start();
    await waitUntil('cursor at 2', async () => (await ts.cursor(KEY)) === '2');
    await exporter.stop();
    const size = statSync(path).size;
    // The crash: the cursor said "rotating", the rename never happened, and a later write left bytes.
    await ts.spool.commitExport({
      exporter: 'archive',
      cursorKey: KEY,
      cursor: { offset: '2', file_bytes: size, rotating_to: 'events-20260101T000000.000Z.jsonl' },
    });
    appendFileSync(path, '{"id":"partial"}\n');
    const more = await ts.addMany(2);
    exporter = fileExporter.create(settingsFor(ts.spool), config({ compress: false }));
    await exporter.start();
    await waitUntil('cursor at 4', async () => (await ts.cursor(KEY)) === '4');
    expect(lines(join(ts.dir, 'export', 'events-20260101T000000.000Z.jsonl')).map((l) => l.id)).toEqual(
      events.map((e) => e.id),
    );
    expect(lines().map((l) => l.id)).toEqual(more.map((e) => e.id));
  });

  it('writes ECS lines for the categories it is asked for', async () => {
    await setup();
    const events = await ts.addMany(4, (i) => ({ category: i % 2 === 0 ? 'authentication' : 'application' }));
    exporter = fileExporter.create(
      settingsFor(ts.spool),
      config({ schema: 'ecs', filter: { categories: ['authentication'] } }),
    );
    await exporter.start();
    await waitUntil('cursor at 3', async () => (await ts.cursor(KEY)) === '3');
    const out = lines() as unknown as { event: { id: string }; '@timestamp': string }[];
    expect(out.map((l) => l.event.id)).toEqual([events[0]!.id, events[2]!.id]);
    expect(out[0]!['@timestamp']).toBe(events[0]!.time);
  });
});
