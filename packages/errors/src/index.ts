/**
 * One error base for every Sealtrail component: a stable `code` that docs and
 * tests can name, whether a retry can help, and how long to wait before it.
 */
export interface SealtrailErrorOptions {
  cause?: unknown;
  retryable?: boolean;
  retryAfterMs?: number;
}

export class SealtrailError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, options: SealtrailErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SealtrailError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** A usage or configuration problem: the CLI maps it to exit code 2. */
export class ConfigError extends SealtrailError {
  constructor(message: string, options: SealtrailErrorOptions = {}) {
    super('ST_CONFIG_INVALID', message, options);
    this.name = 'ConfigError';
  }
}

/** A path as operators read it: `sources[2].paths`, `actor.ip`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

export interface IssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly code?: string;
  readonly keys?: readonly string[];
}

/** `actor.ip: expected string, received number` — one line per issue. */
export function formatIssue(issue: IssueLike, describe?: (path: readonly PropertyKey[]) => string): string {
  const where = describe ? describe(issue.path) : formatPath(issue.path);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys' && issue.keys) {
    message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  return where === '' ? message : `${where}: ${message}`;
}
