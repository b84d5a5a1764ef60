/**
 * `file_integrity`: watches files and directories (chokidar), keeps a baseline of
 * every file's SHA-256, size, mode, uid, gid, mtime and inode in the journal's
 * LevelDB (state namespace `fim/<source name>`, one entry per path), and reports
 * `file.created`, `file.modified`, `file.deleted`, `file.permissions_changed` and
 * `file.owner_changed` with `before`/`after` in `attributes`.
 *
 * Every watcher event only marks a path dirty; a checker stats it, compares with
 * the baseline (chokidar reports chmod and chown as `change`, so the stat decides
 * what changed), hashes when size, mtime or inode moved, and commits the events
 * together with the new baseline entry in one journal batch: a restart neither
 * re-alerts nor misses a change. On start the tree is walked and compared, so
 * changes made while the agent was down are reported (`detected: "scan"`); the
 * first run builds the baseline silently and seals one `fim.baseline.created`.
 *
 * Memory stays bounded under a rename storm or a huge tree: dirty paths are a set
 * (a path is queued once however often it changes), checks run with a fixed
 * concurrency, and the walk streams directories.
 */

import { createHash } from 'node:crypto';
import { lstat, opendir, readlink, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import picomatch from 'picomatch';
import type { StateWrite } from '../../journal/journal.js';
import { type EventDraft, EventEncoder } from '../common/emit.js';
import { counter, gauge } from '../common/metrics.js';
import type { Source, SourceFactory, SourceSettings } from '../source.js';
import { type FileIntegrityConfig, fileIntegrityConfigSchema } from './config.js';
import { ByteRateLimiter, HashPool, type HashResult } from './hasher.js';

/** One baseline entry, kept short: 100,000 of them live in memory and in LevelDB. */
export interface BaselineEntry {
  /** `f` regular file, `l` symbolic link (hash of its target text). */
  k: 'f' | 'l';
  s: number;
  m: number;
  u: number;
  g: number;
  t: number;
  i: number;
  d: number;
  /** SHA-256 hex, or null when not hashed (`x` says why). */
  h: string | null;
  x?: string;
}

interface Position {
  version: 1;
  /** `building` until the first full scan committed; a crash mid-scan resumes silently. */
  baseline: 'building' | 'complete';
}

type Detected = 'watch' | 'scan';

const CONCURRENCY = 32;

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

function describe(e: BaselineEntry): Record<string, unknown> {
  return {
    sha256: e.h,
    size: e.s,
    mode: octal(e.m),
    uid: e.u,
    gid: e.g,
    mtime: new Date(e.t).toISOString(),
    inode: e.i,
    ...(e.k === 'l' ? { symlink: true } : {}),
    ...(e.x ? { hash_skipped: e.x } : {}),
  };
}

function sameEntry(a: BaselineEntry, b: BaselineEntry): boolean {
  return (
    a.k === b.k &&
    a.s === b.s &&
    a.m === b.m &&
    a.u === b.u &&
    a.g === b.g &&
    a.t === b.t &&
    a.i === b.i &&
    a.d === b.d &&
    a.h === b.h &&
    a.x === b.x
  );
}

export class FileIntegrity implements Source {
  private readonly encoder: EventEncoder;
  private readonly ns: string;
  private readonly roots: string[];
  private readonly isIgnored: (path: string) => boolean;
  private baseline = new Map<string, BaselineEntry>();
  private readonly dirty = new Set<string>();
  private readonly running = new Set<string>();
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private silent = false;
  private watcher: FSWatcher | null = null;
  private hasher: HashPool | null = null;
  private readonly limiter: ByteRateLimiter;
  private readonly abort = new AbortController();
  private background: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  private readonly errors;
  private readonly hashedBytes;
  private scanDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly settings: SourceSettings,
    private readonly config: FileIntegrityConfig,
  ) {
    this.encoder = new EventEncoder(settings, 'fim', config.name, config.redact);
    this.ns = `fim/${config.name}`;
    this.roots = config.paths.map((p) => resolve(p));
    const matchers = config.ignore.map((p) => picomatch(p, { dot: true, basename: !p.includes('/') }));
    this.isIgnored = (p) => matchers.some((m) => m(p));
    this.limiter = new ByteRateLimiter(config.max_hash_bytes_per_sec);
    this.errors = counter(settings.registry, {
      name: 'sealtrail_fim_errors_total',
      help: 'File integrity errors (stat, hash, watch), by stage',
      labelNames: ['source', 'stage'],
    });
    this.hashedBytes = counter(settings.registry, {
      name: 'sealtrail_fim_hashed_bytes_total',
      help: 'Bytes of file content hashed',
      labelNames: ['source'],
    });
    this.baselineFiles = gauge(settings.registry, {
      name: 'sealtrail_fim_baseline_files',
      help: 'Files in the file integrity baseline',
      labelNames: ['source'],
    });
  }

  private readonly baselineFiles;

  get name(): string {
    return this.config.name;
  }

  /** Resolves once the start-up scan (if any) has been committed: for tests and benchmarks. */
  get ready(): Promise<void> {
    return this.scanDone;
  }

  /** Resolves when no path is dirty or being checked. */
  idle(): Promise<void> {
    if (this.active === 0 && this.dirty.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  get baselineSize(): number {
    return this.baseline.size;
  }

  async start(): Promise<void> {
    const { journal } = this.settings;
    for await (const [path, entry] of journal.stateEntries<BaselineEntry>(this.ns))
      this.baseline.set(path, entry);
    const pos = await journal.position<Position>(this.config.name);
    this.silent = pos?.baseline !== 'complete';
    this.hasher = new HashPool(this.config.hash_workers, {
      maxBytes: this.config.max_file_bytes,
      follow: this.config.follow_symlinks,
    });
    const watcher = watch(this.roots, {
      ignoreInitial: true,
      ignored: (p: string) => this.isIgnored(p),
      followSymlinks: this.config.follow_symlinks,
      // One level per watched directory: subdirectories are added one by one as the walk
      // reaches them. Handing chokidar a 100,000-file tree at once makes it list and stat
      // everything in parallel (~3 KB of transient heap per file); paced, the agent stays small.
      depth: 0,
      backend: this.config.poll ? 'polling' : 'auto',
      pollingInterval: this.config.poll_interval,
      atomic: false,
      ignorePermissionErrors: true,
      persistent: true,
    });
    this.watcher = watcher;
    const onPath = (p: string) => this.markDirty(resolve(p));
    watcher.on('add', onPath).on('change', onPath).on('unlink', onPath);
    // chokidar drops a `change` whose mtime did not move once atime passed mtime (it takes it
    // for a read): a chmod or chown after the file was hashed. The raw inotify event still
    // names the path, and checking a path is idempotent, so raw changes mark it dirty too.
    watcher.on('raw', (event, rel, details) => {
      const w = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if (event !== 'change' || !rel || !w) return;
      const path = isAbsolute(rel) ? rel : basename(w) === rel && this.baseline.has(w) ? w : join(w, rel);
      if (this.baseline.has(path)) this.markDirty(path);
    });
    watcher.on('addDir', (dir: string) => {
      const d = resolve(dir);
      if (!this.config.recursive || this.roots.includes(d) || this.isIgnored(d)) return;
      // A directory created while watching: watch it, and check what was put in it before the watch held.
      watcher.add(d);
      void (async () => {
        for await (const p of this.walk(d)) this.markDirty(p);
      })().catch(() => {});
    });
    watcher.on('unlinkDir', (dir: string) => {
      const prefix = resolve(dir) + sep;
      for (const p of this.baseline.keys()) if (p.startsWith(prefix)) this.markDirty(p);
    });
    watcher.on('error', (err: unknown) => {
      this.errors.inc({ source: this.config.name, stage: 'watch' });
      this.settings.log.warn({ err }, 'file watcher error');
    });
    const watching = new Promise<void>((r) => watcher.once('ready', () => r()));
    this.scanDone = (async () => {
      await watching;
      if (this.silent || this.config.scan_on_start) await this.scan();
      else await this.watchTree();
    })();
    this.background = this.scanDone.catch((err) => {
      if (this.abort.signal.aborted) return;
      this.errors.inc({ source: this.config.name, stage: 'scan' });
      this.settings.log.error({ err }, 'file integrity scan failed');
    });
  }

  private covered(path: string): boolean {
    if (this.isIgnored(path)) return false;
    for (const root of this.roots) {
      if (path === root) return true;
      if (path.startsWith(root + sep)) {
        return this.config.recursive || dirname(path) === root;
      }
    }
    return false;
  }

  /** Walks every root, checks each file, then checks baseline entries the walk did not meet. */
  private async scan(): Promise<void> {
    const started = Date.now();
    const seen = new Set<string>();
    const signal = this.abort.signal;
    for (const root of this.roots) {
      for await (const path of this.walk(root)) {
        if (signal.aborted) return;
        seen.add(path);
        this.markDirty(path, 'scan');
        // Keep the dirty set from holding the whole tree at once.
        if (this.dirty.size >= CONCURRENCY * 8) await this.drained(CONCURRENCY * 2);
      }
    }
    const stale: string[] = [];
    for (const p of this.baseline.keys()) if (!seen.has(p)) stale.push(p);
    seen.clear();
    for (const p of stale) {
      if (signal.aborted) return;
      if (this.covered(p)) this.markDirty(p, 'scan');
      else this.forget.push(p);
      if (this.dirty.size >= CONCURRENCY * 8) await this.drained(CONCURRENCY * 2);
    }
    await this.idle();
    if (signal.aborted) return;
    const state: StateWrite[] = this.forget.splice(0).map((p) => {
      this.baseline.delete(p);
      return { ns: this.ns, key: p, value: null };
    });
    const events: Buffer[] = [];
    if (this.silent) {
      events.push(
        this.encoder.encode({
          category: 'integrity',
          type: 'fim.baseline.created',
          action: 'scan',
          outcome: 'success',
          message: `file integrity baseline of ${this.baseline.size} files built in ${Date.now() - started} ms`,
          attributes: { files: this.baseline.size, paths: this.roots, duration_ms: Date.now() - started },
        }),
      );
    }
    const position: Position = { version: 1, baseline: 'complete' };
    await this.settings.journal.append({ events, state, positions: { [this.config.name]: position } });
    this.silent = false;
    this.settings.log.info(
      { files: this.baseline.size, duration_ms: Date.now() - started },
      'file integrity scan complete',
    );
  }

  /** Baseline entries no longer under a configured path (the config changed): dropped without events. */
  private forget: string[] = [];

  private drained(below: number): Promise<void> {
    return new Promise((r) => {
      const check = () => {
        if (this.dirty.size + this.active <= below || this.abort.signal.aborted) r();
        else setTimeout(check, 5);
      };
      check();
    });
  }

  /** Adds every directory under the roots to the watcher (when no scan does it). */
  private async watchTree(): Promise<void> {
    for (const root of this.roots) {
      for await (const _ of this.walk(root, true, false)) {
        if (this.abort.signal.aborted) return;
      }
    }
  }

  /**
   * Streams the files under `root` (depth first, one open directory at a time), adding each
   * directory to the watcher as it is entered when `watchDirs`.
   */
  private async *walk(root: string, watchDirs = true, files = true): AsyncGenerator<string> {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = this.config.follow_symlinks ? await stat(root) : await lstat(root);
    } catch {
      return;
    }
    if (!st.isDirectory()) {
      if ((st.isFile() || st.isSymbolicLink()) && !this.isIgnored(root)) yield root;
      return;
    }
    const stack = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      if (watchDirs && dir !== root) {
        this.watcher?.add(dir);
        // Let chokidar set the directory up before the next one.
        await new Promise((r) => setImmediate(r));
      }
      let handle: Awaited<ReturnType<typeof opendir>>;
      try {
        handle = await opendir(dir, { bufferSize: 256 });
      } catch {
        this.errors.inc({ source: this.config.name, stage: 'readdir' });
        continue;
      }
      for await (const d of handle) {
        const path = join(dir, d.name);
        if (this.isIgnored(path)) continue;
        let isDir = d.isDirectory();
        let isFile = d.isFile() || d.isSymbolicLink();
        if (d.isSymbolicLink() && this.config.follow_symlinks) {
          try {
            const t = await stat(path);
            isDir = t.isDirectory();
            isFile = t.isFile();
          } catch {
            isDir = false;
          }
        }
        if (isDir) {
          if (this.config.recursive) stack.push(path);
        } else if (isFile && files) yield path;
      }
    }
  }

  private detectedBy = new Map<string, Detected>();

  private markDirty(path: string, how: Detected = 'watch'): void {
    if (this.abort.signal.aborted) return;
    if (!this.dirty.has(path)) this.detectedBy.set(path, how);
    this.dirty.add(path);
    this.pump();
  }

  private pump(): void {
    if (this.active >= CONCURRENCY) return;
    for (const path of this.dirty) {
      if (this.active >= CONCURRENCY) break;
      if (this.running.has(path)) continue;
      this.dirty.delete(path);
      const how = this.detectedBy.get(path) ?? 'watch';
      this.detectedBy.delete(path);
      this.running.add(path);
      this.active++;
      this.check(path, how)
        .catch((err) => {
          if (this.abort.signal.aborted) return;
          this.errors.inc({ source: this.config.name, stage: 'check' });
          this.settings.log.warn({ err, path }, 'file integrity check failed');
        })
        .finally(() => {
          this.running.delete(path);
          this.active--;
          if (this.active === 0 && this.dirty.size === 0) {
            for (const w of this.idleWaiters.splice(0)) w();
          } else this.pump();
        });
    }
  }

  private async current(path: string): Promise<BaselineEntry | null> {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = this.config.follow_symlinks ? await stat(path) : await lstat(path);
    } catch (err) {
      if (
        (err as NodeJS.ErrnoException).code === 'ENOENT' ||
        (err as NodeJS.ErrnoException).code === 'ENOTDIR'
      )
        return null;
      throw err;
    }
    const link = st.isSymbolicLink();
    if (!st.isFile() && !link) return null;
    return {
      k: link ? 'l' : 'f',
      s: st.size,
      m: st.mode & 0o7777,
      u: st.uid,
      g: st.gid,
      t: Math.round(st.mtimeMs),
      i: st.ino,
      d: st.dev,
      h: null,
    };
  }

  private async hash(path: string, e: BaselineEntry): Promise<void> {
    if (e.k === 'l') {
      try {
        e.h = createHash('sha256')
          .update(await readlink(path))
          .digest('hex');
      } catch {
        e.x = 'unreadable';
      }
      return;
    }
    if (e.s > this.config.max_file_bytes) {
      e.x = 'too_large';
      return;
    }
    await this.limiter.take(e.s, this.abort.signal);
    const r: HashResult = await this.hasher!.hash(path);
    if (r.ok) {
      e.h = r.sha256;
      this.hashedBytes.inc({ source: this.config.name }, r.bytes);
    } else {
      e.x = r.reason === 'error' ? (r.detail ?? 'error') : r.reason;
      if (r.reason === 'error') this.errors.inc({ source: this.config.name, stage: 'hash' });
    }
  }

  private async check(path: string, detected: Detected): Promise<void> {
    if (this.abort.signal.aborted) return;
    const old = this.baseline.get(path);
    const cur = this.covered(path) ? await this.current(path) : null;
    const events: EventDraft[] = [];
    const base = {
      category: 'file' as const,
      severity: this.config.severity,
      outcome: 'success' as const,
    };
    if (!cur) {
      if (!old) return;
      if (this.covered(path)) {
        events.push({
          ...base,
          type: 'file.deleted',
          action: 'delete',
          resource: { kind: 'file', name: path, id: `${old.d}:${old.i}` },
          message: `${path} deleted`,
          attributes: { before: describe(old), detected },
        });
      }
      await this.commit(events, path, null);
      return;
    }
    const contentMayDiffer = !old || old.s !== cur.s || old.t !== cur.t || old.i !== cur.i || old.k !== cur.k;
    if (contentMayDiffer) await this.hash(path, cur);
    else {
      cur.h = old.h;
      if (old.x) cur.x = old.x;
    }
    if (this.abort.signal.aborted) return;
    if (old && sameEntry(old, cur)) return;
    const resource = { kind: 'file', name: path, id: `${cur.d}:${cur.i}` };
    if (!old) {
      events.push({
        ...base,
        type: 'file.created',
        action: 'create',
        resource,
        message: `${path} created`,
        attributes: { after: describe(cur), detected },
      });
    } else {
      const before = describe(old);
      const after = describe(cur);
      const contentChanged =
        old.k !== cur.k ||
        (cur.h !== null && old.h !== null ? cur.h !== old.h : old.s !== cur.s || old.i !== cur.i);
      if (contentChanged) {
        events.push({
          ...base,
          type: 'file.modified',
          action: 'write',
          resource,
          message: `${path} modified`,
          attributes: { before, after, changed: changedFields(old, cur, ['h', 's', 'i', 'k']), detected },
        });
      }
      if (old.m !== cur.m) {
        events.push({
          ...base,
          type: 'file.permissions_changed',
          action: 'chmod',
          resource,
          message: `${path} mode ${octal(old.m)} → ${octal(cur.m)}`,
          attributes: { before, after, changed: ['mode'], detected },
        });
      }
      if (old.u !== cur.u || old.g !== cur.g) {
        events.push({
          ...base,
          type: 'file.owner_changed',
          action: 'chown',
          resource,
          message: `${path} owner ${old.u}:${old.g} → ${cur.u}:${cur.g}`,
          attributes: { before, after, changed: changedFields(old, cur, ['u', 'g']), detected },
        });
      }
    }
    await this.commit(events, path, cur);
  }

  private async commit(drafts: EventDraft[], path: string, entry: BaselineEntry | null): Promise<void> {
    const now = new Date();
    const events = this.silent ? [] : drafts.map((d) => this.encoder.encode(d, now));
    await this.settings.journal.append({ events, state: [{ ns: this.ns, key: path, value: entry }] });
    if (entry) this.baseline.set(path, entry);
    else this.baseline.delete(path);
    this.baselineFiles.set({ source: this.config.name }, this.baseline.size);
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.abort.abort();
      await this.watcher?.close();
      this.dirty.clear();
      // Checks already committing finish (their batch is durable or failed); new ones do not start.
      await this.idle();
      await this.background;
      await this.hasher?.close();
    })();
    return this.stopped;
  }
}

const NAMES: Record<string, string> = { h: 'sha256', s: 'size', i: 'inode', k: 'kind', u: 'uid', g: 'gid' };

function changedFields(a: BaselineEntry, b: BaselineEntry, keys: (keyof BaselineEntry)[]): string[] {
  return keys.filter((k) => a[k] !== b[k]).map((k) => NAMES[k] ?? k);
}

export const fileIntegritySource: SourceFactory<FileIntegrityConfig> = {
  type: 'file_integrity',
  configSchema: fileIntegrityConfigSchema,
  create: (settings, config) => new FileIntegrity(settings, config),
};
