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
