/**
 * `log_tail`: follows files named by paths or globs and turns each line into an
 * event (through a parser), committing the events and the read offsets in one
 * journal batch.
 *
 * A file is identified by (device, inode) plus a fingerprint: SHA-256 of its first
 * `fingerprint_bytes` bytes (of fewer while the file is shorter). Position (journal
 * positions, under the source's name):
 *   { version: 1, files: { "<dev>:<ino>": { path, offset, fp, fp_len } } }
 * where `offset` is the first byte not yet sealed: the start of a partial last line,
 * or of an audit group still being assembled, is never passed.
 *
 * Rotation:
 *   - by rename: the open descriptor keeps reading the old file to its end (for
 *     `rotate_wait` after its last data), the new file at the path is a new inode,
 *     read from its beginning; nothing is lost or read twice. A file renamed while
 *     the agent was stopped is found again by inode in its directory and drained.
 *   - by copytruncate: the file shrinks below the offset, or its fingerprint
 *     changes: it is read again from 0 (sealed as `log.file.truncated`). Lines
 *     written before the copy but not yet read exist only in the copy: when the
 *     include patterns match the copy (`app.log*`), it is recognised by its
 *     fingerprint and read from the offset the original had been read to, so the
 *     only loss is what was written between the copy and the truncate, which no
 *     tailer can see. A copy is never read while its original is not truncated.
 *     A file first seen with fewer bytes than a fingerprint, or whose first bytes are the
 *     beginning of a file being read (or of content truncated away), may be such a copy still
 *     being written: it is held, unread, until its bytes tell (see `classify`).
 *   - inode reuse: same (dev, ino) with another fingerprint is a new file.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, glob, open, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import picomatch from 'picomatch';
import { type EventDraft, EventEncoder } from '../common/emit.js';
import { counter } from '../common/metrics.js';
import type { Source, SourceFactory, SourceSettings } from '../source.js';
import { type LogTailConfig, logTailConfigSchema, type ParserConfig } from './config.js';
import { type Listing, listingStillValid } from './globcache.js';
import { linuxAuditParser } from './parsers/linux_audit.js';
import { linuxAuthParser } from './parsers/linux_auth.js';
import { jsonParser, regexParser } from './parsers/mapping.js';
import { type LineContext, lineParser, logLine, type Parser } from './parsers/parser.js';

export interface FilePosition {
  path: string;
  offset: number;
  fp: string;
  fp_len: number;
}

export interface TailPosition {
  version: 1;
  files: Record<string, FilePosition>;
}

/** How long an audit group may wait for its last record once the file is idle. */
const GROUP_WAIT_MS = 500;

export function createParser(cfg: ParserConfig): Parser {
  switch (cfg.type) {
    case 'none':
      return lineParser(() => null);
    case 'linux_auth':
      return linuxAuthParser();
    case 'linux_audit':
      return linuxAuditParser();
    case 'json':
      return jsonParser(cfg);
    case 'regex':
      return regexParser(cfg);
  }
}

class Tailed {
  /** Next byte to read. */
  pos: number;
  /** Bytes of an incomplete last line (start at pos - pending.length). */
  pending: Buffer = Buffer.alloc(0);
  /** Discarding the rest of an over-long line until its newline. */
  skipping = false;
  /** No longer at a path the include patterns match (renamed away or deleted). */
  rotated = false;
  lastData = Date.now();
  /** The size its last stat saw (0: look again). */
  sizeSeen = 0;
  parser: Parser;

  /** The file's first bytes as this tailer read them (up to `fingerprint_bytes`), and their SHA-256. */
  head: Buffer = Buffer.alloc(0);
  fp = '';

  /**
   * Not read yet: it may be a copy of another file (copytruncate) still being written or whose
   * original is not truncated yet. Not in the positions; classified again when its size moves,
   * when content is truncated away or a file closed (`LogTail.remember`).
   */
  held = true;
  heldSize = -1;

  constructor(
    readonly key: string,
    public path: string,
    readonly fh: FileHandle,
    offset: number,
    head: Buffer,
    parserConfig: ParserConfig,
  ) {
    this.pos = offset;
    this.setHead(head);
    this.parser = createParser(parserConfig);
  }

  get fpLen(): number {
    return this.head.length;
  }

  setHead(head: Buffer): void {
    this.head = Buffer.from(head);
    this.fp = sha256(head);
  }

  /** First byte not yet sealed. */
  committed(): number {
    const held = this.parser.held();
    const lineStart = this.pos - this.pending.length;
    return held === undefined ? lineStart : Math.min(held, lineStart);
  }
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Up to `len` bytes from the start of the file (fewer when it is shorter). */
async function readHead(fh: FileHandle, len: number): Promise<Buffer> {
  if (len === 0) return Buffer.alloc(0);
  const buf = Buffer.alloc(len);
  const { bytesRead } = await fh.read(buf, 0, len, 0);
  return buf.subarray(0, bytesRead);
}

/** The file still starts with the bytes this tailer read there. */
async function sameHead(t: Tailed): Promise<boolean> {
  if (t.fpLen === 0) return true;
  const h = await readHead(t.fh, t.fpLen);
  return h.length === t.fpLen && h.equals(t.head);
}

/** One is the beginning of the other. */
function agree(a: Buffer, b: Buffer): boolean {
  const n = Math.min(a.length, b.length);
  return a.subarray(0, n).equals(b.subarray(0, n));
}

/**
 * Content truncated away from (or closed after) a file this source read: its first bytes and the
 * line offset read to. Only a truncated full fingerprint lasts; a shorter head, or a closed file's,
 * identifies a file less surely (a constant first line, a rename-rotated log's next generation):
 * it serves the copies that exist when it is recorded, which the next discovery has found, and
 * is dropped after that discovery (`expires`, a discovery count).
 */
interface Past {
  /** The head's length and SHA-256; the bytes too, unless it came from a saved position. */
  len: number;
  fp: string;
  head?: Buffer;
  readTo: number;
  expires?: number;
}

function hasGlob(p: string): boolean {
  return /[*?[\]{}]/.test(p);
}

export class LogTail implements Source {
  private readonly encoder: EventEncoder;
  private readonly files = new Map<string, Tailed>();
  /** Fingerprint → content truncated away or closed (newest last, at most 1024). */
  private readonly pasts = new Map<string, Past>();
  /** Discoveries completed. */
  private discoveries = 0;
  /**
   * During the first discovery: each file's first bytes as read in it. Every new file is compared
   * with every other: a read per pair would be 500,000 reads for 1,000 files (65 µs each measured
   * on the loaded 2-core machine); nothing has been read from any file yet, so one look per file
   * is enough.
   */
  private passHeads: Map<Tailed, Buffer> | null = null;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private lastGlob = 0;
  private firstRun = true;
  private firstDiscovery = true;
  private restored: Record<string, FilePosition> = {};
  private readonly excluded: (p: string) => boolean;
  private readonly buf: Buffer;
  private readonly lines;
  private readonly truncations;
  private readonly errors;
  private readonly log: SourceSettings['log'];
  private wake: (() => void) | null = null;

  constructor(
    private readonly settings: SourceSettings,
    private readonly config: LogTailConfig,
  ) {
    // A json/regex mapping is the user's: its drafts get the full schema check.
    const external = config.parser.type === 'json' || config.parser.type === 'regex';
    this.encoder = new EventEncoder(settings, 'log_tail', config.name, config.redact, { external });
    const ex = config.exclude.map((p) => picomatch(p, { dot: true, basename: !p.includes('/') }));
    this.excluded = (p) => ex.some((m) => m(p));
    this.buf = Buffer.allocUnsafe(config.read_chunk_bytes);
    this.log = settings.log;
    this.lines = counter(settings.registry, {
      name: 'sealtrail_log_tail_lines_total',
      help: 'Lines read by log_tail sources',
      labelNames: ['source'],
    });
    this.truncations = counter(settings.registry, {
      name: 'sealtrail_log_tail_truncations_total',
      help: 'Files found truncated (copytruncate rotation or an emptied log)',
      labelNames: ['source'],
    });
    this.errors = counter(settings.registry, {
      name: 'sealtrail_log_tail_errors_total',
      help: 'log_tail errors, by stage',
      labelNames: ['source', 'stage'],
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** Files being tailed: path → committed offset (tests, status). */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.files.values()) if (!t.held) out[t.path] = t.committed();
    return out;
  }

  async start(): Promise<void> {
    const pos = await this.settings.journal.position<TailPosition>(this.config.name);
    if (pos?.version === 1) {
      this.firstRun = false;
      this.restored = { ...pos.files };
    }
    this.loop = this.run().catch((err) => {
      if (!this.abort.signal.aborted) this.log.error({ err }, 'log_tail stopped on an error');
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(done, ms);
      const signal = this.abort.signal;
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        r();
      }
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        if (Date.now() - this.lastGlob >= this.config.glob_interval || this.firstDiscovery) {
          this.lastGlob = Date.now();
          const first = this.firstDiscovery;
          if (first) this.passHeads = new Map();
          await this.discover().finally(() => {
            this.passHeads = null;
          });
          // Where each file starts is durable before any line is read: a restart does not skip lines.
          if (first) await this.commit([], new Date());
        }
        let busy = false;
        if (!this.settings.overHighWater()) {
          for (const t of [...this.files.values()]) {
            if (signal.aborted) break;
            busy = (await this.readFile(t)) || busy;
          }
        }
        if (busy) continue;
        // Caught up: the last chunk is durable (or rewound to be read again) before the sleep.
        await this.flushCommits();
      } catch (err) {
        if (signal.aborted) break;
        this.errors.inc({ source: this.config.name, stage: 'poll' });
        this.log.warn({ err }, 'log_tail poll failed');
      }
      await this.sleep(this.config.poll_interval);
    }
  }

  /** Per pattern whose wildcards are all in its last segment: the directory's times and what it matched. */
  private readonly globCache = new Map<string, Listing>();

  private async expand(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const pattern of this.config.include) {
      if (!hasGlob(pattern)) {
        out.add(resolve(pattern));
        continue;
      }
      const abs = resolve(pattern);
      const dir = dirname(abs);
      // A directory whose times did not move has the same entries: skip the glob walk (idle
      // CPU), once those times are safely older than the listing (see globcache.ts).
      let dirStat: { mtimeMs: number; ctimeMs: number } | null = null;
      const listedAt = Date.now();
      if (!hasGlob(dir)) {
        try {
          dirStat = await stat(dir);
        } catch {
          this.globCache.delete(pattern);
          continue;
        }
        const cached = this.globCache.get(pattern);
        if (listingStillValid(cached, dirStat)) {
          for (const m of cached.matches) out.add(m);
          continue;
        }
      }
      const matches: string[] = [];
      try {
        for await (const p of glob(pattern)) matches.push(resolve(p));
      } catch {
        this.errors.inc({ source: this.config.name, stage: 'glob' });
      }
      if (dirStat)
        this.globCache.set(pattern, {
          mtimeMs: dirStat.mtimeMs,
          ctimeMs: dirStat.ctimeMs,
          listedAt,
          matches,
        });
      for (const m of matches) out.add(m);
    }
    for (const p of out) if (this.excluded(p)) out.delete(p);
    return out;
  }

  /** Finds new files and files rotated away; opens, resumes or marks them. */
  private async discover(): Promise<void> {
    const first = this.firstDiscovery;
    this.firstDiscovery = false;
    const paths = await this.expand();
    const found: { path: string; key: string; size: number }[] = [];
    for (const path of paths) {
      try {
        const st = await stat(path);
        if (st.isFile()) found.push({ path, key: `${st.dev}:${st.ino}`, size: st.size });
      } catch {}
    }
    const live = new Set(found.map((f) => f.key));
    // Files rotated away while stopped are older than what is at the paths now: drained first.
    // Then the files in the saved position, so that one truncated while stopped is remembered
    // before its copy is classified.
    if (first) {
      await this.recoverRotated(live);
      found.sort((a, b) => Number(b.key in this.restored) - Number(a.key in this.restored));
    }
    for (const { path, key, size } of found) {
      const known = this.files.get(key);
      if (known) {
        known.path = path;
        known.rotated = false;
        continue;
      }
      if (this.files.size >= this.config.max_open_files) {
        this.errors.inc({ source: this.config.name, stage: 'too_many_files' });
        continue;
      }
      await this.openNew(path, key, size, first);
    }
    for (const t of this.files.values()) if (!live.has(t.key)) t.rotated = true;
    this.restored = {};
    this.discoveries++;
    for (const [fp, p] of this.pasts)
      if (p.expires !== undefined && p.expires < this.discoveries) this.pasts.delete(fp);
  }

  private async openNew(path: string, key: string, size: number, first: boolean): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      this.errors.inc({ source: this.config.name, stage: 'open' });
      this.log.warn({ err, path }, 'cannot open log file');
      return;
    }
    const saved = this.restored[key];
    if (saved) {
      delete this.restored[key];
      const head = await readHead(fh, saved.fp_len);
      if (head.length === saved.fp_len && sha256(head) === saved.fp && saved.offset <= size) {
        const t = new Tailed(key, path, fh, saved.offset, head, this.config.parser);
        t.held = false;
        this.files.set(key, t);
        return;
      }
      // Same inode, other content: the inode was reused or the file truncated while stopped;
      // a copy of what it held (copytruncate while stopped) is read from where it had been read to.
      const full = saved.fp_len === this.config.fingerprint_bytes;
      this.remember({ len: saved.fp_len, fp: saved.fp, readTo: saved.offset }, full);
    }
    const offset = first && this.firstRun && this.config.start_at === 'end' ? size : 0;
    const t = new Tailed(key, path, fh, offset, Buffer.alloc(0), this.config.parser);
    this.files.set(key, t);
    // A failed stat leaves it held: readFile tries again.
    await this.settleHeld(t).catch(() => {});
  }

  /**
   * A file not read yet, from its first bytes `h` (up to `fingerprint_bytes`):
   *   - 'hold': it may be a copy (copytruncate, or a backup) being written or waiting for its
   *     original's truncate: `h` is the beginning of another file's content on disk, or agrees
   *     with what was read of a file rewritten since (its truncation not seen yet), or is
   *     shorter than content truncated away and its beginning. An empty file is held while any
   *     other exists: nothing to read, nothing known yet.
   *   - a number: a copy of content truncated away (or read to the end and closed), whose first
   *     bytes begin `h`: read from the line offset the original was read to (more bytes than
   *     the tailer had read are read from the copy);
   *   - 'new': none of these; read from the offset it was opened with.
   */
  private async classify(n: Tailed, h: Buffer): Promise<'hold' | 'new' | number> {
    const fpBytes = this.config.fingerprint_bytes;
    for (const t of [...this.files.values()]) {
      if (t === n) continue;
      if (h.length === 0) return 'hold';
      const disk = this.passHeads?.get(t) ?? (await readHead(t.fh, fpBytes).catch(() => null));
      if (!disk) continue;
      this.passHeads?.set(t, disk);
      if (disk.length >= h.length && disk.subarray(0, h.length).equals(h)) return 'hold';
      const rewritten = !(disk.length >= t.fpLen && disk.subarray(0, t.fpLen).equals(t.head));
      if (!t.held && rewritten && agree(h, t.head)) return 'hold';
    }
    let best: Past | undefined;
    for (const p of this.pasts.values()) {
      if (p.head && h.length < p.len && p.head.subarray(0, h.length).equals(h)) return 'hold';
      if (h.length < p.len || p.len <= (best?.len ?? 0)) continue;
      const start = h.subarray(0, p.len);
      if (p.head ? start.equals(p.head) : sha256(start) === p.fp) best = p;
    }
    return best ? best.readTo : 'new';
  }

  /** Classifies a held file again when its size moved (or `force`); releases it when its bytes tell. */
  private async settleHeld(t: Tailed, force = false): Promise<void> {
    const size = (await t.fh.stat()).size;
    if (size === t.heldSize && !force) {
      // Gone from the patterns and still undecided: a copy of a file being read, dropped unread.
      if (t.rotated && Date.now() - t.lastData >= this.config.rotate_wait) {
        this.files.delete(t.key);
        await t.fh.close().catch(() => {});
        await this.recheckHeld();
      }
      return;
    }
    if (size !== t.heldSize) t.lastData = Date.now();
    t.heldSize = size;
    const h = await readHead(t.fh, this.config.fingerprint_bytes);
    this.passHeads?.set(t, h);
    const v = await this.classify(t, h);
    if (v === 'hold') return;
    t.held = false;
    if (typeof v === 'number') t.pos = Math.min(v, size);
    t.setHead(h);
  }

  /** Held files, classified again now: a file they may have copied was truncated or closed. */
  private async recheckHeld(): Promise<void> {
    for (const n of [...this.files.values()]) if (n.held) await this.settleHeld(n, true).catch(() => {});
  }

  /**
   * `head`'s content up to `readTo` was sealed: a copy of it is read from there. Call
   * `recheckHeld` once the file's own state is updated.
   */
  private remember(past: Omit<Past, 'expires'>, lasting: boolean): void {
    if (past.len === 0) return;
    this.pasts.delete(past.fp);
    this.pasts.set(past.fp, { ...past, expires: lasting ? undefined : this.discoveries + 1 });
    if (this.pasts.size > 1024) this.pasts.delete(this.pasts.keys().next().value as string);
  }

  /** Files in the saved position that the patterns no longer match: renamed while stopped. */
  private async recoverRotated(live: Set<string>): Promise<void> {
    for (const [key, saved] of Object.entries(this.restored)) {
      if (live.has(key)) continue;
      const dir = dirname(saved.path);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        const path = join(dir, name);
        let st: Awaited<ReturnType<typeof stat>>;
        try {
          st = await stat(path);
        } catch {
          continue;
        }
        if (`${st.dev}:${st.ino}` !== key || !st.isFile()) continue;
        await this.openNew(path, key, st.size, false);
        const t = this.files.get(key);
        if (t) {
          t.rotated = true;
          this.log.info(
            { path, was: basename(saved.path) },
            'draining a file rotated while the agent was stopped',
          );
        }
        break;
      }
    }
  }

  private positions(): TailPosition {
    const files: Record<string, FilePosition> = {};
    for (const t of this.files.values()) {
      if (!t.held) files[t.key] = { path: t.path, offset: t.committed(), fp: t.fp, fp_len: t.fpLen };
    }
    return { version: 1, files };
  }

  /** The chunk being written while the next is parsed, and how to rewind its file to before it. */
  private inflight: { done: Promise<unknown>; undo: () => void } | null = null;

  /**
   * Seals `events` (already encoded), then `drafts`, with the positions as they stand now.
   * Batches reach the journal one at a time, each once the one before is durable: a batch
   * written after a failed one would carry a position past lines that were never sealed.
   * A chunk (`undo` given) is written while the next one is parsed: this returns once it is
   * handed over, and a failure shows at the next commit or `flushCommits`, which rewind its
   * file (and this chunk's) to read the lines again. Other batches return once durable.
   */
  private async commit(
    drafts: EventDraft[],
    now: Date,
    events: Buffer[] = [],
    undo?: () => void,
  ): Promise<void> {
    await this.flushCommits(undo);
    this.encoder.encodeInto(events, drafts, now);
    this.encoder.flushCount();
    const done = this.settings.journal.append({
      events,
      positions: { [this.config.name]: this.positions() },
    });
    if (!undo) {
      await done;
      return;
    }
    done.catch(() => {}); // seen by whoever waits for it next
    this.inflight = { done, undo };
  }

  /**
   * Waits for the chunk being written; if it failed, rewinds its file, and first `newer` (a
   * chunk parsed since, not handed over: when both are of one file, the older snapshot stays).
   */
  private async flushCommits(newer?: () => void): Promise<void> {
    const prev = this.inflight;
    this.inflight = null;
    if (!prev) return;
    try {
      await prev.done;
    } catch (err) {
      newer?.();
      prev.undo();
      throw err;
    }
  }

  /** Reads what is new in one file; true when it read a full chunk (more may be waiting). */
  private async readFile(t: Tailed): Promise<boolean> {
    if (t.held) {
      await this.settleHeld(t).catch((err) => {
        this.errors.inc({ source: this.config.name, stage: 'stat' });
        this.log.warn({ err, path: t.path }, 'cannot stat log file');
      });
      if (t.held) return false;
    }
    // In a backlog the last stat says more than a chunk is waiting: no stat per chunk. A file
    // truncated since shows in the read (fewer bytes: stat again) or the head check after it.
    let size = t.sizeSeen;
    if (size - t.pos <= this.buf.length) {
      try {
        size = (await t.fh.stat()).size;
      } catch (err) {
        this.errors.inc({ source: this.config.name, stage: 'stat' });
        this.log.warn({ err, path: t.path }, 'cannot stat log file');
        return false;
      }
      t.sizeSeen = size;
    }
    const now = new Date();
    if (size < t.pos) {
      await this.truncated(t, size, now);
      return true;
    }
    if (size === t.pos) {
      const idleFor = Date.now() - t.lastData;
      const held = t.parser.flush(now, GROUP_WAIT_MS);
      if (t.rotated && idleFor >= this.config.rotate_wait) {
        await this.close(t, [...held, ...this.finalPartial(t, now)], now);
      } else if (held.length > 0) await this.commit(held, now);
      return false;
    }
    const want = Math.min(this.buf.length, size - t.pos);
    const { bytesRead } = await t.fh.read(this.buf, 0, want, t.pos);
    if (bytesRead < want) t.sizeSeen = 0; // shorter than it was: stat next turn
    if (bytesRead === 0) return false;
    // After the read, so that it covers the read: a file rewritten in place (truncated, then
    // grown past the offset, with other first bytes) would hand us new content at an old offset.
    if (!(await sameHead(t))) {
      await this.truncated(t, (await t.fh.stat()).size, now);
      return true;
    }
    t.lastData = Date.now();
    const start = t.pos;
    const chunk = this.buf.subarray(0, bytesRead);
    const fpBytes = this.config.fingerprint_bytes;
    if (t.fpLen < fpBytes && start <= t.fpLen && start + bytesRead > t.fpLen) {
      // The fingerprint grows from the bytes read, never from a second look at the file.
      t.setHead(Buffer.concat([t.head.subarray(0, start), chunk.subarray(0, fpBytes - start)]));
    }
    // If this chunk is not durable, its bytes are read again, into the parser as it was.
    const undo = { pos: t.pos, pending: t.pending, skipping: t.skipping };
    const parser = t.parser.mark?.();
    await this.commit([], now, this.split(t, chunk, now), () => {
      Object.assign(t, undo);
      if (parser !== undefined) t.parser.rewind?.(parser);
    });
    return bytesRead === this.buf.length;
  }

  private async truncated(t: Tailed, size: number, now: Date): Promise<void> {
    this.truncations.inc({ source: this.config.name });
    const drafts = t.parser.flush(now, 0);
    // A partial last line is not emitted: a copytruncate copy holds it whole and is read from its start.
    const at = t.pos - t.pending.length;
    this.remember(
      { len: t.fpLen, fp: t.fp, head: t.head, readTo: at },
      t.fpLen === this.config.fingerprint_bytes,
    );
    t.pos = 0;
    t.pending = Buffer.alloc(0);
    t.skipping = false;
    // Nothing of the new content is read yet: its fingerprint grows from the first read.
    t.setHead(Buffer.alloc(0));
    drafts.push({
      category: 'system',
      type: 'log.file.truncated',
      action: 'truncate',
      outcome: 'success',
      severity: 'low',
      resource: { kind: 'file', name: t.path },
      message: `${t.path} was truncated (at offset ${at}, now ${size} bytes); reading it again from the start`,
      attributes: { file: t.path, offset_before: at, size_after: size },
    });
    await this.commit(drafts, now);
    await this.recheckHeld();
  }

  /** An incomplete last line of a file that will not grow again: kept, marked partial. */
  private finalPartial(t: Tailed, now: Date): EventDraft[] {
    if (t.pending.length === 0 || t.skipping) return [];
    const offset = t.pos - t.pending.length;
    const line = t.pending.toString('utf8');
    t.pending = Buffer.alloc(0);
    return t.parser.push(line, { path: t.path, offset, now }).map((d) => ({
      ...d,
      attributes: { ...d.attributes, partial: true },
    }));
  }

  private async close(t: Tailed, drafts: EventDraft[], now: Date): Promise<void> {
    // Its last chunk durable first: a failed one is read again from the file, which stays open.
    await this.flushCommits();
    this.files.delete(t.key);
    await this.commit(drafts, now);
    // A copy of it (held while it was read) holds nothing more than what was sealed from it.
    this.remember({ len: t.fpLen, fp: t.fp, head: t.head, readTo: t.committed() }, false);
    await this.recheckHeld();
    await t.fh.close().catch(() => {});
  }

  /**
   * Splits a chunk into lines (LF, CRLF), holding back a partial last line; parses complete
   * ones and encodes their events line by line (a chunk's drafts all alive at once made each
   * scavenge copy them: several times the GC time of the source).
   */
  private split(t: Tailed, chunk: Buffer, now: Date): Buffer[] {
    const out: Buffer[] = [];
    const max = this.config.max_line_bytes;
    let data = chunk;
    let base = t.pos; // file offset of data[0]
    if (t.pending.length > 0) {
      base -= t.pending.length;
      data = Buffer.concat([t.pending, chunk]);
      t.pending = Buffer.alloc(0);
    }
    t.pos += chunk.length;
    let start = 0;
    let count = 0;
    while (start < data.length) {
      const nl = data.indexOf(10, start);
      if (nl === -1) {
        const rest = data.length - start;
        if (t.skipping) break;
        if (rest > max) {
          // An over-long line with no end yet: keep its start, skip the rest until its newline.
          this.encoder.encodeInto(
            out,
            this.emitLine(t, data.subarray(start, start + max), base + start, now, { truncated: true }),
            now,
          );
          t.skipping = true;
          count++;
        } else t.pending = Buffer.from(data.subarray(start));
        break;
      }
      if (t.skipping) {
        t.skipping = false;
        start = nl + 1;
        continue;
      }
      let end = nl;
      if (end > start && data[end - 1] === 13) end--;
      const len = end - start;
      if (len > max) {
        const drafts = this.emitLine(t, data.subarray(start, start + max), base + start, now, {
          truncated: true,
          original_bytes: len,
        });
        this.encoder.encodeInto(out, drafts, now);
      } else if (len > 0)
        this.encoder.encodeInto(out, this.emitLine(t, data.subarray(start, end), base + start, now), now);
      count++;
      start = nl + 1;
    }
    this.lines.inc({ source: this.config.name }, count);
    return out;
  }

  private emitLine(
    t: Tailed,
    bytes: Buffer,
    offset: number,
    now: Date,
    extra?: Record<string, unknown>,
  ): EventDraft[] {
    const line = bytes.toString('utf8');
    const ctx: LineContext = { path: t.path, offset, now };
    let drafts: EventDraft[];
    try {
      drafts = t.parser.push(line, ctx);
    } catch (err) {
      this.errors.inc({ source: this.config.name, stage: 'parse' });
      drafts = [logLine(line, ctx, { parse_error: (err as Error).message })];
    }
    if (extra) for (const d of drafts) d.attributes = { ...d.attributes, ...extra };
    return drafts;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.abort.abort();
      this.wake?.();
      await this.loop;
      await this.flushCommits().catch(() => {});
      for (const t of this.files.values()) await t.fh.close().catch(() => {});
      this.files.clear();
    })();
    return this.stopping;
  }
}

export const logTailSource: SourceFactory<LogTailConfig> = {
  type: 'log_tail',
  configSchema: logTailConfigSchema,
  create: (settings, config) => new LogTail(settings, config),
};
