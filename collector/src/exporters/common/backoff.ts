/** Exponential backoff with full jitter (AWS architecture blog), and `Retry-After` parsing (RFC 9110 §10.2.3). */

export interface BackoffConfig {
  initialMs: number;
  maxMs: number;
}

/** Wait before retry number `attempt` (0-based): uniform in [0, min(max, initial·2^attempt)], at least `retryAfterMs`. */
export function backoffDelay(
  cfg: BackoffConfig,
  attempt: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(cfg.maxMs, cfg.initialMs * 2 ** Math.min(attempt, 30));
  const jittered = Math.floor(random() * cap);
  return retryAfterMs !== undefined ? Math.max(jittered, retryAfterMs) : jittered;
}

/** `Retry-After: 120` or `Retry-After: Fri, 31 Dec 1999 23:59:59 GMT` → milliseconds from now, capped at one hour. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  let ms: number;
  if (/^\s*\d+\s*$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, 3_600_000);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
