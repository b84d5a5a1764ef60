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
 * Memory stays bounded under a rename storm or a huge tree: the baseline lives only
 * in LevelDB (a check reads its one entry; nothing holds the whole baseline), dirty
 * paths are a set (a path is queued once however often it changes) that the walk
 * does not outrun, checks run with a fixed concurrency, and the walk holds one
 * directory listing per level. The start-up scan walks the tree in the byte order
 * LevelDB keeps the baseline in and merges the two streams, so it finds the entries
 * whose file is gone without a set of the paths it saw.
 */

import { createHash } from 'node:crypto';
import { lstat, opendir, readlink, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import picomatch from 'picomatch';
import { type EventDraft, EventEncoder } from '../common/emit.js';
import { counter, gauge } from '../common/metrics.js';
import type { Source, SourceFactory, SourceSettings } from '../source.js';
import { type FileIntegrityConfig, fileIntegrityConfigSchema } from './config.js';
import { ByteRateLimiter, HashPool, type HashResult, hashSmallFile, SMALL_FILE_BYTES } from './hasher.js';
import { compareUtf8, sortEntries } from './order.js';

/** One baseline entry, kept short: one per file in LevelDB. */
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
/** The walk pauses when this many paths are queued, until the checks bring it down to LOW_WATER. */
const HIGH_WATER = CONCURRENCY * 8;
const LOW_WATER = CONCURRENCY * 2;

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
  /** Entries in the baseline (LevelDB), for the gauge and the baseline event. */
  private count = 0;
  /** Paths to check, each with what first noticed it (one table: Set/Map churn is promoted garbage). */
  private readonly dirty = new Map<string, Detected>();
  /**
   * The paths being checked, one slot per check (at most CONCURRENCY). Not a Set: V8 allocates
   * the new table of a long-lived Set or Map straight in old space each time churn rehashes it,
   * and a scan's 100,000 adds and deletes left ~8 MB of dead tables there before the next major GC.
   */
  private readonly running: (string | null)[] = new Array(CONCURRENCY).fill(null);
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private drainWaiters: { below: number; resolve: () => void }[] = [];
  /** Directories reported gone (with a trailing separator), swept against the baseline together. */
  private readonly goneDirs = new Set<string>();
  private sweeping: Promise<void> | null = null;
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
  private pollTimer: NodeJS.Timeout | null = null;

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
    this.scanning = gauge(settings.registry, {
      name: 'sealtrail_fim_scan_running',
      help: '1 while the start-up scan (or first baseline) of this source runs, 0 once it is committed',
      labelNames: ['source'],
    });
  }

  private readonly baselineFiles;
  private readonly scanning;

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
    return this.count;
  }

  async start(): Promise<void> {
    const { journal } = this.settings;
    const pos = await journal.position<Position>(this.config.name);
    this.silent = pos?.baseline !== 'complete';
    this.hasher = new HashPool(this.config.hash_workers, {
      maxBytes: this.config.max_file_bytes,
      follow: this.config.follow_symlinks,
    });
    // With native watches, chokidar tracks directories only: it would otherwise keep a name and
    // stat facts for every file (~10 MB of live heap per 100,000 files, which V8 then lets grow
    // fourfold before a major GC). The raw events of each watched directory name every entry
    // created, removed, written, chmod-ed or chown-ed, and the check decides what changed.
    // Polling watches each file itself, so there chokidar keeps tracking files.
    const filesByRaw = !this.config.poll;
    const watcher = watch(this.roots, {
      ignoreInitial: true,
      ignored: (p: string, st?: { isFile(): boolean }) =>
        this.isIgnored(p) || (filesByRaw && st?.isFile() === true && !this.roots.includes(resolve(p))),
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
    // Raw events mark paths dirty too: files are reported only this way (see `filesByRaw`), and
    // chokidar drops a `change` whose mtime did not move once atime passed mtime (it takes it
    // for a read): a chmod or chown after the file was hashed. Checking a path is idempotent
    // (one that is neither in the baseline nor a covered file costs a lookup and a stat).
    watcher.on('raw', (event, rel, details) => {
      const w = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if ((event !== 'change' && event !== 'rename') || !rel || !w) return;
      if (isAbsolute(rel)) return this.markDirty(rel);
      // A file watched as itself names itself; otherwise `rel` is an entry of the directory `w`.
      if (basename(w) === rel) this.markDirty(w);
      this.markDirty(join(w, rel));
    });
    watcher.on('addDir', (dir: string) => {
      const d = resolve(dir);
      if (!this.config.recursive || this.roots.includes(d) || this.isIgnored(d)) return;
      // A directory created while watching: watch it, and check what was put in it before the watch held.
      watcher.add(d);
      void (async () => {
        for await (const p of this.walk(d)) {
          this.markDirty(p);
          await this.drained();
        }
      })().catch(() => {});
    });
    watcher.on('unlinkDir', (dir: string) => this.dirGone(resolve(dir)));
    watcher.on('error', (err: unknown) => {
      this.errors.inc({ source: this.config.name, stage: 'watch' });
      this.settings.log.warn({ err }, 'file watcher error');
    });
    const watching = new Promise<void>((r) => watcher.once('ready', () => r()));
    this.scanning.set({ source: this.config.name }, 1);
    this.scanDone = (async () => {
      await watching;
      if (this.silent || this.config.scan_on_start) await this.scan();
      else {
        await this.watchTree();
        await this.countBaseline();
      }
      this.scanning.set({ source: this.config.name }, 0);
      if (this.config.poll) this.schedulePollSweep();
    })();
    this.background = this.scanDone.catch((err) => {
      if (this.abort.signal.aborted) return;
      this.errors.inc({ source: this.config.name, stage: 'scan' });
      this.settings.log.error({ err }, 'file integrity scan failed');
    });
  }

  /**
   * Polling only: chokidar's poller compares size, mtime and inode (chokidar 6), so a chmod or
   * chown alone never reaches us. Every `poll_interval` after the previous sweep ended, each
   * baseline entry's mode and owner are compared with a fresh stat, and a path that moved is
   * checked like any other. The baseline is streamed from LevelDB, as the start-up merge does.
   */
  private schedulePollSweep(): void {
    if (this.abort.signal.aborted) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      this.pollSweep()
        .catch((err) => {
          if (this.abort.signal.aborted) return;
          this.errors.inc({ source: this.config.name, stage: 'poll' });
          this.settings.log.warn({ err }, 'file integrity attribute poll failed');
        })
        .finally(() => this.schedulePollSweep());
    }, this.config.poll_interval);
  }

  private async pollSweep(): Promise<void> {
    for await (const [path, old] of this.settings.journal.stateEntries<BaselineEntry>(this.ns)) {
      if (this.abort.signal.aborted) return;
      const cur = await this.current(path).catch(() => null);
      if (!cur || cur.m !== old.m || cur.u !== old.u || cur.g !== old.g) this.markDirty(path);
      await this.drained();
    }
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

  /**
   * The baseline's paths as LevelDB holds them now (an iterator reads a snapshot), keys only:
   * each check reads its own entry when it runs. Taken when no check is running, so every
   * commit after it moves `count` by its own change and none is counted twice.
   */
  private async snapshot(): Promise<AsyncGenerator<string>> {
    await this.idle();
    this.count = 0;
    return this.settings.journal.stateKeys(this.ns);
  }

  private async countBaseline(): Promise<void> {
    for await (const _ of await this.snapshot()) {
      this.count++;
      if (this.abort.signal.aborted) return;
    }
    this.baselineFiles.set({ source: this.config.name }, this.count);
  }

  /**
   * Walks every root and merges it with the baseline: both come in UTF-8 byte order, so an
   * entry the walk passes without meeting is a file that is gone (or no longer covered).
   */
  private async scan(): Promise<void> {
    const started = Date.now();
    const signal = this.abort.signal;
    const base = await this.snapshot();
    try {
      let next = await base.next();
      // Every baseline entry that sorts before `until` was not met by the walk: its check
      // reports the file deleted, or drops the entry silently when no configured path covers it.
      const unmet = async (until: string | null) => {
        while (!next.done && (until === null || compareUtf8(next.value, until) < 0)) {
          if (signal.aborted) return;
          this.count++;
          await this.checkScanned(next.value);
          next = await base.next();
        }
      };
      for (const root of await this.scanRoots()) {
        for await (const path of this.walk(root)) {
          if (signal.aborted) return;
          // Called only when an entry was passed: one async call per path was promoted garbage.
          if (!next.done && compareUtf8(next.value, path) < 0) await unmet(path);
          if (!next.done && next.value === path) {
            this.count++;
            next = await base.next();
          }
          await this.checkScanned(path);
        }
      }
      await unmet(null);
    } finally {
      await base.return(undefined);
    }
    await this.idle();
    if (signal.aborted) return;
    const events: Buffer[] = [];
    if (this.silent) {
      events.push(
        this.encoder.encode({
          category: 'integrity',
          type: 'fim.baseline.created',
          action: 'scan',
          outcome: 'success',
          message: `file integrity baseline of ${this.count} files built in ${Date.now() - started} ms`,
          attributes: { files: this.count, paths: this.roots, duration_ms: Date.now() - started },
        }),
      );
    }
    const position: Position = { version: 1, baseline: 'complete' };
    await this.settings.journal.append({ events, positions: { [this.config.name]: position } });
    this.silent = false;
    this.baselineFiles.set({ source: this.config.name }, this.count);
    this.settings.log.info(
      { files: this.count, duration_ms: Date.now() - started },
      'file integrity scan complete',
    );
  }

  /**
   * The roots in the order their paths sort (a directory's paths all start with `dir/`), without
   * those inside another recursive root. Nested roots without `recursive` may still interleave;
   * the merge then checks a few files twice, which is harmless.
   */
  private async scanRoots(): Promise<string[]> {
    const keyed: { root: string; key: string }[] = [];
    for (const root of new Set(this.roots)) {
      const isDir = await stat(root).then(
        (st) => st.isDirectory(),
        () => false,
      );
      keyed.push({ root, key: isDir ? root + sep : root });
    }
    keyed.sort((a, b) => compareUtf8(a.key, b.key));
    const out: string[] = [];
    for (const { root } of keyed) {
      const inside = out.some((r) => root === r || (this.config.recursive && root.startsWith(r + sep)));
      if (!inside) out.push(root);
    }
    return out;
  }

  /** Resolves once no more than `below` paths are queued or being checked. */
  private drained(below = HIGH_WATER): Promise<void> {
    if (this.dirty.size + this.active <= below || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ below: Math.min(below, LOW_WATER), resolve }));
  }

  /** Marks the baseline entries under removed directories dirty, in one pass for a burst of removals. */
  private dirGone(dir: string): void {
    this.goneDirs.add(dir + sep);
    if (this.sweeping) return;
    this.sweeping = (async () => {
      // Let the rest of a burst (rm -r of a tree) arrive first.
      await new Promise((r) => setImmediate(r));
      while (this.goneDirs.size > 0 && !this.abort.signal.aborted) {
        const prefixes = [...this.goneDirs];
        this.goneDirs.clear();
        for await (const p of this.settings.journal.stateKeys(this.ns)) {
          if (this.abort.signal.aborted) break;
          if (prefixes.some((x) => p.startsWith(x))) {
            this.markDirty(p);
            await this.drained();
          }
        }
      }
    })()
      .catch((err) => {
        if (this.abort.signal.aborted) return;
        this.errors.inc({ source: this.config.name, stage: 'sweep' });
        this.settings.log.warn({ err }, 'file integrity sweep of removed directories failed');
      })
      .finally(() => {
        this.sweeping = null;
        if (this.goneDirs.size > 0 && !this.abort.signal.aborted) {
          const again = [...this.goneDirs];
          this.goneDirs.clear();
          for (const d of again) this.dirGone(d.slice(0, -1));
        }
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
   * The names of one directory's entries that are not ignored, a directory's with a trailing `/`,
   * in path order; null when it cannot be read.
   */
  private async list(dir: string): Promise<string[] | null> {
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(dir, { bufferSize: 256 });
    } catch {
      this.errors.inc({ source: this.config.name, stage: 'readdir' });
      return null;
    }
    const out: string[] = [];
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
      if (isDir) out.push(`${d.name}/`);
      else if (isFile) out.push(d.name);
    }
    return sortEntries(out);
  }

  /**
   * Streams the files under `root` in UTF-8 byte order of their paths (depth first, one
   * listing per level), adding each directory to the watcher as it is entered when `watchDirs`.
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
    const top = await this.list(root);
    if (!top) return;
    const stack: { dir: string; entries: string[]; i: number }[] = [{ dir: root, entries: top, i: 0 }];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const e = frame.entries[frame.i++];
      if (!e) {
        stack.pop();
        continue;
      }
      if (!e.endsWith('/')) {
        const path = join(frame.dir, e);
        if (files) yield path;
        continue;
      }
      if (!this.config.recursive) continue;
      const path = join(frame.dir, e.slice(0, -1));
      if (watchDirs) await this.watchDir(path);
      const entries = await this.list(path);
      if (entries) stack.push({ dir: path, entries, i: 0 });
    }
  }

  /**
   * Adds one directory to the watcher once chokidar has finished listing the previous one.
   * chokidar lists a directory it watches and lstat's every entry (to ask `ignored` about
   * files), holding the whole batch of stats until the listing ends; when the walk outran it,
   * several listings of 1,000 stats each were alive at every scavenge and were promoted: the
   * ~20 MB step in the restart compare's RSS (V8's old space, seen in `--trace-gc-nvp`
   * promoted bytes and a sampling heap profile). `streams` is chokidar's set of listings in flight.
   */
  private async watchDir(path: string): Promise<void> {
    const watcher = this.watcher;
    if (!watcher) return;
    // Bounded (~1 s): a directory that keeps changing has chokidar list it again and again.
    for (let i = 0; i < 1000 && watcher.streams.size > 0 && !this.abort.signal.aborted; i++)
      await new Promise((r) => setTimeout(r, 1));
    watcher.add(path);
    // Let chokidar start the listing before the walk goes on.
    await new Promise((r) => setImmediate(r));
  }

  private markDirty(path: string, how: Detected = 'watch'): void {
    if (this.abort.signal.aborted) return;
    if (!this.dirty.has(path)) this.dirty.set(path, how);
    this.pump();
  }

  /**
   * The scan starts its checks itself as slots free up: queueing 100,000 paths through `dirty`
   * churns its hash table, and the tables it drops live long enough to be promoted garbage.
   */
  private async checkScanned(path: string): Promise<void> {
    await this.drained(CONCURRENCY - 1);
    if (this.active < CONCURRENCY && !this.running.includes(path) && !this.dirty.has(path))
      this.run(path, 'scan');
    else this.markDirty(path, 'scan');
  }

  private pump(): void {
    if (this.active >= CONCURRENCY) return;
    for (const [path, how] of this.dirty) {
      if (this.active >= CONCURRENCY) break;
      if (this.running.includes(path)) continue;
      this.dirty.delete(path);
      this.run(path, how);
    }
  }

  private run(path: string, how: Detected): void {
    // Callers start a check only while `active` < CONCURRENCY, so a slot is free.
    const slot = this.running.indexOf(null);
    this.running[slot] = path;
    this.active++;
    this.check(path, how)
      .catch((err) => {
        if (this.abort.signal.aborted) return;
        this.errors.inc({ source: this.config.name, stage: 'check' });
        this.settings.log.warn({ err, path }, 'file integrity check failed');
      })
      .finally(() => {
        this.running[slot] = null;
        this.active--;
        if (this.drainWaiters.length > 0) {
          const queued = this.dirty.size + this.active;
          this.drainWaiters = this.drainWaiters.filter((w) => (queued <= w.below ? void w.resolve() : true));
        }
        if (this.active === 0 && this.dirty.size === 0) {
          for (const w of this.idleWaiters.splice(0)) w();
        } else this.pump();
      });
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
    const opts = { maxBytes: this.config.max_file_bytes, follow: this.config.follow_symlinks };
    const r: HashResult =
      (e.s <= SMALL_FILE_BYTES ? await hashSmallFile(path, opts) : null) ?? (await this.hasher!.hash(path));
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
    // Read here, not when queued: no other check of this path runs meanwhile, so it is current.
    const old = await this.settings.journal.getState<BaselineEntry>(this.ns, path);
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
      await this.commit(events, path, null, old);
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
    await this.commit(events, path, cur, old);
  }

  private async commit(
    drafts: EventDraft[],
    path: string,
    entry: BaselineEntry | null,
    old: BaselineEntry | undefined,
  ): Promise<void> {
    const now = new Date();
    const events = this.silent ? [] : drafts.map((d) => this.encoder.encode(d, now));
    await this.settings.journal.append({ events, state: [{ ns: this.ns, key: path, value: entry }] });
    this.count += (entry ? 1 : 0) - (old ? 1 : 0);
    this.baselineFiles.set({ source: this.config.name }, this.count);
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.abort.abort();
      if (this.pollTimer) clearTimeout(this.pollTimer);
      await this.watcher?.close();
      this.dirty.clear();
      for (const w of this.drainWaiters.splice(0)) w.resolve();
      await this.sweeping;
      // Checks already committing finish (their batch is durable or failed); new ones do not start.
      await this.idle();
      await this.background;
      await this.hasher?.close();
      this.scanning.set({ source: this.config.name }, 0);
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
