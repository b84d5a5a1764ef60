import { readFileSync } from 'node:fs';
import { ConfigError, formatIssue } from '@sealtrail/errors';
import { parseDocument } from 'yaml';
import type { z } from 'zod';

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$/g;

/**
 * Replaces `${NAME}` and `${NAME:-default}` in every string value (not keys),
 * after YAML parsing so a value can never inject YAML structure. `$$` is a literal `$`.
 */
export function substituteEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: PropertyKey[] = [],
  root: unknown = value,
): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (whole, name: string | undefined, fallback: string | undefined) => {
      if (whole === '$$') return '$';
      const v = env[name!];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      const where = describePath(path, root);
      throw new ConfigError(`${where === '' ? '' : `${where}: `}environment variable ${name} is not set`);
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, i], root));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, [...path, k], root);
    return out;
  }
  return value;
}

/** `sources[2] (name: auth).paths` — names the list item so a long file is easy to search. */
export function describePath(path: readonly PropertyKey[], root?: unknown): string {
  let out = '';
  let node: unknown = root;
  for (const part of path) {
    node = node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[part] : undefined;
    if (typeof part === 'number') {
      const name = node && typeof node === 'object' ? (node as Record<string, unknown>).name : undefined;
      out += typeof name === 'string' ? `[${part}] (name: ${name})` : `[${part}]`;
    } else {
      out += out === '' ? String(part) : `.${String(part)}`;
    }
  }
  return out;
}

export interface ParseOptions {
  env?: NodeJS.ProcessEnv;
  /** Shown in errors: the file name. */
  origin?: string;
}

/** Parses YAML text into a validated config; throws one ConfigError listing every problem. */
export function parseConfig<S extends z.ZodType>(
  text: string,
  schema: S,
  opts: ParseOptions = {},
): z.output<S> {
  const origin = opts.origin ?? 'config';
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(`${origin}: invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
  }
  const raw = doc.toJS() ?? {};
  let substituted: unknown;
  try {
    substituted = substituteEnv(raw, opts.env ?? process.env);
  } catch (err) {
    // Name the file, as every other problem below does.
    if (err instanceof ConfigError) throw new ConfigError(`${origin}: ${err.message}`, { cause: err });
    throw err;
  }
  const r = schema.safeParse(substituted);
  if (!r.success) {
    const lines = r.error.issues.map((i) => formatIssue(i, (p) => describePath(p, substituted)));
    throw new ConfigError(
      `${origin}: ${lines.length} problem${lines.length > 1 ? 's' : ''}:\n  ${lines.join('\n  ')}`,
    );
  }
  return r.data;
}

export function loadConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
  opts: ParseOptions = {},
): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`${file}: cannot read config file: ${(cause as Error).message}`, { cause });
  }
  return parseConfig(text, schema, { ...opts, origin: opts.origin ?? file });
}
