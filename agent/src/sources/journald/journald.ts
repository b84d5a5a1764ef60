/**
 * `journald`: follows `journalctl -o json --follow` (a child process), turns each
 * entry into an event (through the `linux_auth` rules for sshd, sudo, su, useradd…,
 * else a `log.line`), and commits each batch with the cursor of its last entry
 * (position `{ version: 1, cursor }`), so a restart resumes with `--after-cursor`
 * and neither loses nor repeats entries. A missing journalctl is a start-up error
 * of this source alone; a journalctl that exits is started again after `restart_delay`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { SealtrailError } from '@sealtrail/errors';
import type { Severity } from '@sealtrail/event';
import { type EventDraft, EventEncoder } from '../common/emit.js';
import { counter } from '../common/metrics.js';
import { parseAuthMessage } from '../log_tail/parsers/linux_auth.js';
import type { Source, SourceFactory, SourceSettings } from '../source.js';
import { JOURNAL_PRIORITIES, type JournaldConfig, journaldConfigSchema } from './config.js';

interface Position {
  version: 1;
  cursor: string;
}

type Entry = Record<string, unknown>;

/** Finds an executable the way a shell would; null when there is none. */
export function findExecutable(name: string, path = process.env.PATH ?? ''): string | null {
  const candidates = name.includes('/')
    ? [name]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  return null;
}

function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  // journald gives binary-safe fields as arrays of bytes.
  if (Array.isArray(v) && v.every((b) => typeof b === 'number'))
    return Buffer.from(v as number[]).toString('utf8');
  if (Array.isArray(v)) return text(v[0]);
  return undefined;
}

function severityOf(priority: number): Severity {
  if (priority <= 2) return 'critical';
  if (priority === 3) return 'high';
  if (priority === 4) return 'medium';
  if (priority === 5) return 'low';
  return 'info';
}

export function entryToDraft(e: Entry, parser: JournaldConfig['parser']): EventDraft {
  const message = text(e.MESSAGE) ?? '';
  const usec = Number(text(e.__REALTIME_TIMESTAMP));
  const time = Number.isFinite(usec) ? new Date(Math.floor(usec / 1000)) : undefined;
  const identifier = text(e.SYSLOG_IDENTIFIER) ?? text(e._COMM) ?? '';
  const pid = text(e._PID) ?? text(e.SYSLOG_PID);
  const priority = Number(text(e.PRIORITY) ?? 6);
  const unit = text(e._SYSTEMD_UNIT);
  const origin: Record<string, unknown> = {
    program: identifier,
    ...(pid ? { pid: Number(pid) } : {}),
    ...(unit ? { unit } : {}),
    priority,
    ...(text(e._HOSTNAME) ? { hostname: text(e._HOSTNAME) } : {}),
    ...(text(e._BOOT_ID) ? { boot_id: text(e._BOOT_ID) } : {}),
    ...(text(e._UID) ? { uid: Number(text(e._UID)) } : {}),
  };
  if (parser === 'linux_auth') {
    const d = parseAuthMessage(message, {
      time,
      host: text(e._HOSTNAME) ?? '',
      program: identifier,
      pid,
      message,
    });
    if (d) return { ...d, time, message, attributes: { ...d.attributes, ...origin } };
  }
  return {
    time,
    category: 'system',
    type: 'log.line',
    action: 'log',
    severity: severityOf(Number.isFinite(priority) ? priority : 6),
    message,
    attributes: origin,
  };
}

export class Journald implements Source {
  private readonly encoder: EventEncoder;
  private child: ChildProcess | null = null;
  private cursor: string | undefined;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private pending: Entry[] = [];
  private flushing: Promise<void> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private exe = '';
  private readonly entries;
  private readonly restarts;
  private stderr = '';

  constructor(
    private readonly settings: SourceSettings,
    private readonly config: JournaldConfig,
  ) {
    this.encoder = new EventEncoder(settings, 'journald', config.name, config.redact);
    this.entries = counter(settings.registry, {
      name: 'sealtrail_journald_entries_total',
      help: 'Journal entries read',
      labelNames: ['source'],
    });
    this.restarts = counter(settings.registry, {
      name: 'sealtrail_journald_restarts_total',
      help: 'Times journalctl exited and was started again',
      labelNames: ['source'],
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** The arguments journalctl is started with (tests check them). */
  args(): string[] {
    const a = ['-o', 'json', '--follow', '--no-pager'];
    if (this.cursor) a.push('--after-cursor', this.cursor, '--no-tail');
    else if (this.config.start_at === 'beginning') a.push('--no-tail');
    else a.push('--lines=0');
    for (const u of this.config.units) a.push('-u', u);
    for (const t of this.config.identifiers) a.push('-t', t);
    if (this.config.priority) a.push('-p', `0..${JOURNAL_PRIORITIES.indexOf(this.config.priority)}`);
    return a;
  }

  async start(): Promise<void> {
    const exe = findExecutable(this.config.journalctl_path);
    if (!exe) {
      throw new SealtrailError(
        'ST_JOURNALD_UNAVAILABLE',
        `journald source "${this.config.name}": ${this.config.journalctl_path} not found` +
          (this.config.journalctl_path.includes('/') ? '' : ' in PATH') +
          ' (is this a systemd host? install systemd or remove the source)',
      );
    }
    this.exe = exe;
    const pos = await this.settings.journal.position<Position>(this.config.name);
    this.cursor = pos?.cursor;
    this.spawn();
  }

  private spawn(): void {
    if (this.stopped) return;
    const child = spawn(this.exe, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    child.on('error', (err) => this.settings.log.error({ err }, 'journalctl failed to start'));
    const rl = createInterface({ input: child.stdout!, crlfDelay: Number.POSITIVE_INFINITY });
    let rlClosed = false;
    rl.on('close', () => {
      rlClosed = true;
    });
    const resume = () => {
      if (!rlClosed && !this.stopped) rl.resume();
    };
    rl.on('line', (line) => {
      if (line === '') return;
      try {
        this.pending.push(JSON.parse(line) as Entry);
      } catch {
        this.pending.push({ MESSAGE: line, __unparsed: true });
      }
      if (this.pending.length >= this.config.batch_max_entries) rl.pause();
      this.schedule(resume);
    });
    child.on('close', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopped) return;
      this.restarts.inc({ source: this.config.name });
      this.settings.log.warn(
        { code, signal, stderr: this.stderr.trim().slice(-500) },
        'journalctl exited; starting it again',
      );
      const badCursor = code !== 0 && this.cursor !== undefined && /cursor/i.test(this.stderr);
      this.restartTimer = setTimeout(async () => {
        this.restartTimer = null;
        await this.flushing;
        if (badCursor) await this.cursorLost().catch(() => {});
        this.spawn();
      }, this.config.restart_delay);
    });
  }

  /**
   * journalctl refused the saved cursor (the journal was vacuumed or rotated past it): starting
   * again with it would loop. Follow from now on, and seal the gap so it is visible.
   */
  private async cursorLost(): Promise<void> {
    const lost = this.cursor;
    this.cursor = undefined;
    const event = this.encoder.encode({
      category: 'agent',
      type: 'agent.journald.cursor_lost',
      action: 'resume',
      outcome: 'failure',
      severity: 'medium',
      message: `journald source "${this.config.name}": journalctl refused the saved cursor; following new entries from now (entries in between may be missing)`,
      attributes: { cursor: lost, stderr: this.stderr.trim().slice(-500) },
    });
    await this.settings.journal.append({ events: [event] });
    this.settings.log.error({ cursor: lost }, 'journald cursor refused; following from now');
  }

  private schedule(resume: () => void): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      await new Promise((r) => setImmediate(r));
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, this.config.batch_max_entries);
        try {
          await this.commit(batch);
        } catch (err) {
          // Not sealed: put the batch back; the next line or restart tries again.
          this.pending.unshift(...batch);
          this.settings.log.error({ err }, 'journald batch not stored');
          break;
        }
      }
      this.flushing = null;
      resume();
    })();
  }

  private async commit(batch: Entry[]): Promise<void> {
    const now = new Date();
    let cursor = this.cursor;
    const events: Buffer[] = [];
    for (const e of batch) {
      events.push(this.encoder.encode(entryToDraft(e, this.config.parser), now));
      const c = text(e.__CURSOR);
      if (c) cursor = c;
    }
    await this.settings.journal.append({
      events,
      ...(cursor ? { positions: { [this.config.name]: { version: 1, cursor } satisfies Position } } : {}),
    });
    this.cursor = cursor;
    this.entries.inc({ source: this.config.name }, batch.length);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      if (this.restartTimer) clearTimeout(this.restartTimer);
      const child = this.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        const closed = new Promise((r) => child.once('close', r));
        child.kill('SIGTERM');
        await closed;
      }
      while (this.flushing) await this.flushing;
      // Entries read but not yet sealed: sealed now, so a restart's --after-cursor does not skip them.
      if (this.pending.length > 0) await this.commit(this.pending.splice(0)).catch(() => {});
    })();
    return this.stopping;
  }
}

export const journaldSource: SourceFactory<JournaldConfig> = {
  type: 'journald',
  configSchema: journaldConfigSchema,
  create: (settings, config) => new Journald(settings, config),
};
