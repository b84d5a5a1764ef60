import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  mkdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from '@sealtrail/event';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Kit, makeKit, waitUntil } from '../common/testkit.js';
import { fileIntegrityConfigSchema } from './config.js';
import { FileIntegrity } from './file_integrity.js';
import { ByteRateLimiter, HashPool, hashSmallFile, SMALL_FILE_BYTES } from './hasher.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const isRoot = process.getuid?.() === 0;

describe('file_integrity', () => {
  let kit: Kit;
  let tree: string;
  let fim: FileIntegrity | null = null;

  beforeEach(async () => {
    kit = await makeKit();
    tree = join(kit.dir, 'tree');
    mkdirSync(join(tree, 'sub/deep'), { recursive: true });
    writeFileSync(join(tree, 'a.conf'), 'alpha\n');
    writeFileSync(join(tree, 'sub/b.conf'), 'beta\n');
    writeFileSync(join(tree, 'sub/deep/c.conf'), 'gamma\n');
    writeFileSync(join(tree, 'skip.swp'), 'editor swap\n');
    mkdirSync(join(tree, 'cache'));
    writeFileSync(join(tree, 'cache/x'), 'ignored dir\n');
  });

  afterEach(async () => {
    await fim?.stop();
    fim = null;
    await kit.close();
  });

  const config = (extra: Record<string, unknown> = {}) =>
    fileIntegrityConfigSchema.parse({
      type: 'file_integrity',
      name: 'etc',
      paths: [tree],
      ignore: ['*.swp', `${tree}/cache/**`, `${tree}/cache`],
      ...extra,
    });

  async function run(extra?: Record<string, unknown>): Promise<FileIntegrity> {
    fim = new FileIntegrity(kit.settings, config(extra));
    await fim.start();
    await fim.ready;
    return fim;
  }

  const ofType = async (type: string) => (await kit.events()).filter((e) => e.type === type);
  const fileEvents = async () => (await kit.events()).filter((e) => e.category === 'file');

  it('builds a baseline silently on the first run, honouring ignores', async () => {
    const f = await run();
    expect(f.baselineSize).toBe(3);
    const events = await kit.events();
    expect(events.map((e) => e.type)).toEqual(['fim.baseline.created']);
    expect(events[0]!.attributes).toMatchObject({ files: 3 });
    const entry = await kit.journal.getState<{ h: string }>('fim/etc', join(tree, 'a.conf'));
    expect(entry?.h).toBe(sha('alpha\n'));
  });

  it('reports create, modify, chmod, chown, delete and rename with before/after', async () => {
    const f = await run();
    const a = join(tree, 'a.conf');
    writeFileSync(join(tree, 'sub/new.conf'), 'fresh\n');
    await waitUntil('created', async () => (await ofType('file.created')).length === 1);
    appendFileSync(a, 'more\n');
    await waitUntil('modified', async () => (await ofType('file.modified')).length === 1);
    const mod = (await ofType('file.modified'))[0]!;
    expect(mod.resource).toMatchObject({ kind: 'file', name: a });
    expect(mod.attributes).toMatchObject({
      before: { sha256: sha('alpha\n'), size: 6 },
      after: { sha256: sha('alpha\nmore\n'), size: 11 },
      detected: 'watch',
    });

    chmodSync(a, 0o600);
    await waitUntil('chmod', async () => (await ofType('file.permissions_changed')).length === 1);
    const chmod = (await ofType('file.permissions_changed'))[0]!;
    expect(chmod.attributes).toMatchObject({ after: { mode: '0600' }, changed: ['mode'] });
    // chmod alone is not a content change
    expect(await ofType('file.modified')).toHaveLength(1);

    if (isRoot) {
      chownSync(a, 1, 1);
      await waitUntil('chown', async () => (await ofType('file.owner_changed')).length === 1);
      const chown = (await ofType('file.owner_changed'))[0]!;
      expect(chown.attributes).toMatchObject({ before: { uid: 0 }, after: { uid: 1, gid: 1 } });
    }

    rmSync(join(tree, 'sub/deep/c.conf'));
    await waitUntil('deleted', async () => (await ofType('file.deleted')).length === 1);
    expect((await ofType('file.deleted'))[0]!.attributes).toMatchObject({
      before: { sha256: sha('gamma\n') },
    });

    renameSync(join(tree, 'sub/b.conf'), join(tree, 'sub/b2.conf'));
    await waitUntil('rename', async () => (await ofType('file.deleted')).length === 2);
    await waitUntil('rename target', async () => (await ofType('file.created')).length === 2);
    const created = (await ofType('file.created')).map((e) => e.resource?.name);
    expect(created).toContain(join(tree, 'sub/b2.conf'));

    // ignored paths never produce events
    writeFileSync(join(tree, 'other.swp'), 'x');
    writeFileSync(join(tree, 'cache/y'), 'x');
    await new Promise((r) => setTimeout(r, 300));
    await f.idle();
    const names = (await fileEvents()).map((e) => e.resource?.name ?? '');
    expect(names.some((n) => n.endsWith('.swp') || n.includes('/cache/'))).toBe(false);
    expect(f.baselineSize).toBe(3); // a, new, b2
  });

  it('reports changes made while stopped, and does not re-alert after a restart', async () => {
    const f = await run();
    await f.stop();
    fim = null;
    await kit.reopen();

    writeFileSync(join(tree, 'a.conf'), 'tampered\n');
    chmodSync(join(tree, 'sub/b.conf'), 0o666);
    rmSync(join(tree, 'sub/deep/c.conf'));
    writeFileSync(join(tree, 'dropped.sh'), '#!/bin/sh\n');

    await run();
    await fim!.idle();
    const byType = (await fileEvents()).map((e) => [e.type, e.resource?.name, e.attributes?.detected]);
    expect(byType).toEqual(
      expect.arrayContaining([
        ['file.modified', join(tree, 'a.conf'), 'scan'],
        ['file.permissions_changed', join(tree, 'sub/b.conf'), 'scan'],
        ['file.deleted', join(tree, 'sub/deep/c.conf'), 'scan'],
        ['file.created', join(tree, 'dropped.sh'), 'scan'],
      ]),
    );
    expect(byType).toHaveLength(4);

    // A restart with nothing changed seals nothing new.
    await fim!.stop();
    fim = null;
    await kit.reopen();
    const before = (await kit.events()).length;
    await run();
    await fim!.idle();
    expect((await kit.events()).length).toBe(before);
  });

  it('merges the start-up walk with the stored baseline: deletions among names that sort around directories, several roots', async () => {
    // Names around the `dir/` boundary: `b.conf` < `b/…` < `b0`, and non-ASCII past U+FFFF.
    const other = join(kit.dir, 'other');
    mkdirSync(join(tree, 'b'), { recursive: true });
    mkdirSync(other);
    for (const n of ['b.conf', 'b/x', 'b0', 'é', '😀', '\ue000']) writeFileSync(join(tree, n), n);
    writeFileSync(join(other, 'o'), 'o');
    const f = await run({ paths: [other, tree, join(tree, 'sub')] });
    expect(f.baselineSize).toBe(10);
    await f.stop();
    fim = null;
    await kit.reopen();
    for (const n of ['b.conf', 'b/x', '😀', 'sub/deep/c.conf']) rmSync(join(tree, n));
    rmSync(join(other, 'o'));
    const g = await run({ paths: [other, tree, join(tree, 'sub')] });
    await g.idle();
    const deleted = (await ofType('file.deleted')).map((e) => e.resource?.name).sort();
    expect(deleted).toEqual(
      [join(other, 'o'), ...['b.conf', 'b/x', '😀', 'sub/deep/c.conf'].map((n) => join(tree, n))].sort(),
    );
    expect(await ofType('file.created')).toHaveLength(0);
    expect(g.baselineSize).toBe(5);

    // A path removed from the config: its entries go without events.
    await g.stop();
    fim = null;
    const h = await run({ paths: [other] });
    await h.idle();
    expect(h.baselineSize).toBe(0);
    expect(await ofType('file.deleted')).toHaveLength(5);
    expect(await kit.journal.getState('fim/etc', join(tree, 'a.conf'))).toBeUndefined();
  });

  it('reports every file of a removed directory tree', async () => {
    const f = await run();
    rmSync(join(tree, 'sub'), { recursive: true });
    await waitUntil('deleted', async () => (await ofType('file.deleted')).length === 2);
    await f.idle();
    expect((await ofType('file.deleted')).map((e) => e.resource?.name).sort()).toEqual(
      [join(tree, 'sub/b.conf'), join(tree, 'sub/deep/c.conf')].sort(),
    );
    expect(f.baselineSize).toBe(1);
  });

  // Native watches report files through their directory's raw events only; polling watches each file.
  for (const poll of [false, true]) {
    it(`reports files in a directory made while watching, and a file given as a path (poll: ${poll})`, async () => {
      const single = join(kit.dir, 'single.conf');
      writeFileSync(single, 'one\n');
      fim = new FileIntegrity(
        kit.settings,
        config({ paths: [tree, single], poll, ...(poll ? { poll_interval: 50 } : {}) }),
      );
      await fim.start();
      await fim.ready;
      mkdirSync(join(tree, 'sub/made'));
      writeFileSync(join(tree, 'sub/made/n.conf'), 'new\n');
      await waitUntil('created', async () => (await ofType('file.created')).length === 1);
      appendFileSync(join(tree, 'sub/made/n.conf'), 'more\n');
      appendFileSync(single, 'two\n');
      await waitUntil('modified', async () => (await ofType('file.modified')).length === 2);
      // A chmod or chown alone: native watches name the file; chokidar's poller compares size,
      // mtime and inode only, so in polling mode the source's own attribute sweep finds it.
      chmodSync(join(tree, 'sub/made/n.conf'), 0o600);
      await waitUntil('chmod', async () => (await ofType('file.permissions_changed')).length === 1);
      expect((await ofType('file.permissions_changed'))[0]!.attributes).toMatchObject({
        after: { mode: '0600' },
        changed: ['mode'],
      });
      if (isRoot) {
        chownSync(single, 4321, 4321);
        await waitUntil('chown', async () => (await ofType('file.owner_changed')).length === 1);
        expect((await ofType('file.owner_changed'))[0]!.attributes).toMatchObject({
          after: { uid: 4321, gid: 4321 },
          changed: ['uid', 'gid'],
        });
      }
      expect(await ofType('file.modified')).toHaveLength(2); // neither was taken for a write
      rmSync(join(tree, 'sub/made/n.conf'));
      rmSync(single);
      await waitUntil('deleted', async () => (await ofType('file.deleted')).length === 2);
      expect((await ofType('file.modified')).map((e) => e.resource?.name).sort()).toEqual(
        [join(tree, 'sub/made/n.conf'), single].sort(),
      );
      await fim.idle();
      expect(fim.baselineSize).toBe(3);
    });
  }
  it('does not descend when recursive is false', async () => {
    const f = await run({ recursive: false });
    expect(f.baselineSize).toBe(1); // a.conf only
  });

  it('records files over max_file_bytes without hashing them', async () => {
    writeFileSync(join(tree, 'big.bin'), Buffer.alloc(4096, 1));
    await run({ max_file_bytes: 1024 });
    const e = await kit.journal.getState<{ h: string | null; x?: string }>('fim/etc', join(tree, 'big.bin'));
    expect(e).toMatchObject({ h: null, x: 'too_large' });
  });

  it('applies redaction to its events', async () => {
    await kit.close();
    kit = await makeKit({ redact: [{ field: 'resource.name', action: 'mask', with: '[path]' }] });
    tree = join(kit.dir, 'tree');
    mkdirSync(tree, { recursive: true });
    await run();
    writeFileSync(join(tree, 'n'), 'x');
    await waitUntil('created', async () => (await ofType('file.created')).length === 1);
    expect((await ofType('file.created'))[0]!.resource?.name).toBe('[path]');
  });
});

describe('hashing', () => {
  it('hashes in worker threads and skips what is not a regular file', async () => {
    const kit = await makeKit();
    const p = join(kit.dir, 'f');
    writeFileSync(p, 'content');
    const pool = new HashPool(2, { maxBytes: 1 << 20, follow: false });
    expect(await pool.hash(p)).toEqual({ ok: true, sha256: sha('content'), bytes: 7 });
    expect(await pool.hash(kit.dir)).toMatchObject({ ok: false, reason: 'not_a_file' });
    expect(await pool.hash(join(kit.dir, 'missing'))).toMatchObject({
      ok: false,
      reason: 'error',
      detail: 'ENOENT',
    });
    await pool.close();
    await kit.close();
  });

  it('hashes small files on the thread pool, opened as a worker opens them', async () => {
    const kit = await makeKit();
    const p = join(kit.dir, 'f');
    writeFileSync(p, 'content');
    symlinkSync(p, join(kit.dir, 'link'));
    const opts = { maxBytes: 1 << 20, follow: false };
    expect(await hashSmallFile(p, opts)).toEqual({ ok: true, sha256: sha('content'), bytes: 7 });
    expect(await hashSmallFile(kit.dir, opts)).toMatchObject({ ok: false, reason: 'not_a_file' });
    expect(await hashSmallFile(join(kit.dir, 'link'), opts)).toMatchObject({ ok: false, detail: 'ELOOP' });
    expect(await hashSmallFile(join(kit.dir, 'link'), { ...opts, follow: true })).toMatchObject({ ok: true });
    writeFileSync(p, Buffer.alloc(SMALL_FILE_BYTES + 1));
    expect(await hashSmallFile(p, opts)).toBeNull(); // the pool's
    await kit.close();
  });

  it('starts workers when there is a file to hash and stops them when idle', async () => {
    const kit = await makeKit();
    const p = join(kit.dir, 'f');
    writeFileSync(p, 'content');
    const pool = new HashPool(2, { maxBytes: 1 << 20, follow: false, idleMs: 50 });
    expect(pool.threads).toBe(0);
    expect(await pool.hash(p)).toMatchObject({ ok: true, sha256: sha('content') });
    expect(pool.threads).toBe(1); // one file, one worker
    await Promise.all([pool.hash(p), pool.hash(p), pool.hash(p)]);
    expect(pool.threads).toBe(2);
    await waitUntil('idle workers stopped', () => pool.threads === 0);
    expect(await pool.hash(p)).toMatchObject({ ok: true, sha256: sha('content') });
    await pool.close();
    await kit.close();
  });

  it('rate-limits bytes per second', async () => {
    const limiter = new ByteRateLimiter(100_000);
    const t0 = performance.now();
    for (let i = 0; i < 4; i++) await limiter.take(50_000); // 200 kB at 100 kB/s with a 100 kB burst
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(3000);
  });
});

export type { AuditEvent };
