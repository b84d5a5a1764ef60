/**
 * `worker_thread: auto` for log_tail: the source runs on the main thread, where an idle tail
 * costs nothing extra, and moves to a worker thread of its own (threaded.ts) while a backlog
 * lasts, where it reads about 15 % more lines/s and leaves the main thread free. A worker
 * idles at about 0.07 % of a core and 35 MB, which the sample config's two tails would pay
 * all the time for bursts that may never come.
 *
 * A move is a stop of one and a start of the other, with the positions the journal holds:
 * the same guarantees as a restart of the agent, no more often than a backlog starts or ends.
 */
import type { Logger } from '@sealtrail/telemetry';
import { counter } from '../common/metrics.js';
import type { LogTailConfig } from '../log_tail/config.js';
import { LogTail } from '../log_tail/log_tail.js';
import type { Source, SourceSettings } from '../source.js';
import { ThreadedSource } from './threaded.js';

export interface AdaptiveOptions {
  /** A backlog this long on the main thread moves the source to a worker thread. */
  backlogMs?: number;
  /** On a worker thread, this long below `busyLinesPerSec` moves it back. */
  quietMs?: number;
  /** Events per second that count as busy on the worker thread. */
  busyLinesPerSec?: number;
  /** How often the decision is made. */
  checkMs?: number;
}

type Mode = 'main' | 'worker';

export class AdaptiveLogTail implements Source {
  private current: LogTail | ThreadedSource;
  private moving: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** On the worker: events taken at the last check, when that was, and when it was last busy. */
  private lastTaken = 0;
  private lastCheck = 0;
  private lastBusy = 0;
  private readonly moves;
  private readonly log: Logger;
  private readonly o: Required<AdaptiveOptions>;

  constructor(
    private readonly settings: SourceSettings,
    private readonly config: LogTailConfig,
    opts: AdaptiveOptions = {},
  ) {
    this.o = { backlogMs: 1000, quietMs: 60_000, busyLinesPerSec: 5000, checkMs: 250, ...opts };
    this.log = settings.log;
    this.current = new LogTail(settings, config);
    this.moves = counter(settings.registry, {
      name: 'sealtrail_log_tail_thread_moves_total',
      help: 'log_tail sources moved between the main thread and a worker thread (worker_thread: auto)',
      labelNames: ['source', 'to'],
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** Where the source runs now. */
  get mode(): Mode {
    return this.current instanceof ThreadedSource ? 'worker' : 'main';
  }

  async start(): Promise<void> {
    await this.current.start();
    this.timer = setInterval(() => this.check(), this.o.checkMs);
    this.timer.unref();
  }

  private check(): void {
    if (this.moving || this.stopped) return;
    const now = Date.now();
    const c = this.current;
    if (c instanceof LogTail) {
      if (c.backlogSince !== null && now - c.backlogSince >= this.o.backlogMs) this.move('worker');
      return;
    }
    const rate = ((c.eventsTaken - this.lastTaken) * 1000) / Math.max(1, now - this.lastCheck);
    this.lastTaken = c.eventsTaken;
    this.lastCheck = now;
    if (rate >= this.o.busyLinesPerSec) this.lastBusy = now;
    else if (now - this.lastBusy >= this.o.quietMs) this.move('main');
  }

  private move(to: Mode): void {
    this.moving = (async () => {
      await this.current.stop();
      if (this.stopped) return;
      let next: LogTail | ThreadedSource =
        to === 'worker'
          ? new ThreadedSource(this.settings, 'log_tail', this.config)
          : new LogTail(this.settings, this.config);
      try {
        await next.start();
      } catch (err) {
        if (to === 'main') throw err;
        // No worker thread (out of threads or memory): the main thread carries on.
        this.log.warn({ err }, 'log_tail cannot start a worker thread; staying on the main thread');
        next = new LogTail(this.settings, this.config);
        await next.start();
        this.current = next;
        return;
      }
      this.current = next;
      this.moves.inc({ source: this.config.name, to });
      if (next instanceof ThreadedSource) {
        this.lastTaken = 0;
        this.lastCheck = Date.now();
        this.lastBusy = this.lastCheck;
      }
      this.log.info(
        { to },
        to === 'worker'
          ? 'log_tail backlog: reading on a worker thread'
          : 'log_tail caught up: reading on the main thread',
      );
    })()
      .catch((err) => this.log.error({ err }, 'log_tail could not move between threads'))
      .finally(() => {
        this.moving = null;
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.moving;
    await this.current.stop();
  }
}
