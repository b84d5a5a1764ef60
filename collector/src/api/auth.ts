/** Admin API keys: the collector keeps only their SHA-256, one per line (`<hex> <label>`). */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MiddlewareHandler } from 'hono';

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function loadApiKeyHashes(file: string): Buffer[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => Buffer.from(l.split(/\s+/)[0]!, 'hex'))
    .filter((b) => b.length === 32);
}

/** Requires `Authorization: Bearer <key>` matching one of the hashes (re-read when the file changes is left to reload). */
export function requireApiKey(hashes: () => Buffer[]): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) return c.json({ error: 'missing API key (Authorization: Bearer <key>)' }, 401);
    const h = Buffer.from(hashApiKey(m[1]!), 'hex');
    if (!hashes().some((k) => timingSafeEqual(k, h))) return c.json({ error: 'invalid API key' }, 403);
    await next();
  };
}
