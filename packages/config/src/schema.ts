import type { z } from 'zod';
import { z as zod } from 'zod';

/** `log_level` for either binary (pino's levels). */
export const logLevel = () => zod.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info');

/**
 * A `superRefine` check that the items of the list `key` have unique `name`s; the
 * error names the second item (`sources[3].name: duplicate source name "auth"`).
 */
export function uniqueNames(key: string, what: string) {
  return (cfg: object, ctx: z.RefinementCtx): void => {
    const seen = new Set<string>();
    const items = (cfg as Record<string, { name: string }[]>)[key] ?? [];
    items.forEach((item, i) => {
      if (seen.has(item.name)) {
        ctx.addIssue({
          code: 'custom',
          path: [key, i, 'name'],
          message: `duplicate ${what} name "${item.name}"`,
        });
      }
      seen.add(item.name);
    });
  };
}
