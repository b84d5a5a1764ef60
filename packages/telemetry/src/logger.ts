import { type Logger, pino } from 'pino';

export type { Logger };

/** JSON logs on stderr (stdout stays free for CLI output). Level from config or SEALTRAIL_LOG_LEVEL. */
export function createLogger(component: string, level?: string): Logger {
  return pino(
    { name: `sealtrail-${component}`, level: level ?? process.env.SEALTRAIL_LOG_LEVEL ?? 'info' },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** Logs at most once per `intervalMs` per key, counting what it held back: errors that repeat per event stay quiet. */
export function rateLimited(log: Logger, intervalMs = 10_000) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key: string, fields: Record<string, unknown>, msg: string) => {
    const now = Date.now();
    const s = last.get(key);
    if (s && now - s.at < intervalMs) {
      s.suppressed++;
      return;
    }
    log.error({ ...fields, suppressed: s?.suppressed ?? 0 }, msg);
    last.set(key, { at: now, suppressed: 0 });
  };
}

/**
 * A logger that hands each record, as one JSON line without time or process fields, to
 * `write`: a source on a worker thread logs through it and the main thread's logger
 * writes the record with its own fields (`forwardLogLine`).
 */
export function createLineLogger(level: string, write: (line: string) => void): Logger {
  return pino({ level, base: null, timestamp: false }, { write });
}

/** Logs a line from `createLineLogger` on `log`, at the line's level, with its fields. */
export function forwardLogLine(log: Logger, line: string): void {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log.warn({ line }, 'unreadable log record from a worker thread');
    return;
  }
  const { level, msg, ...fields } = rec;
  const label = typeof level === 'number' ? pino.levels.labels[level] : undefined;
  const fn = label && label in pino.levels.values ? (log[label as pino.Level] as pino.LogFn) : log.info;
  fn.call(log, fields, typeof msg === 'string' ? msg : '');
}
