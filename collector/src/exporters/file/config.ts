import { byteSize, duration } from '@sealtrail/config';
import { z } from 'zod';
import { commonExporterKeys } from '../common/config.js';

export const fileExporterConfigSchema = z
  .object({
    type: z.literal('file'),
    ...commonExporterKeys('native', { records: 1000, bytes: 8 * 1024 * 1024, timeoutMs: 0 }),
    /** JSON lines file; its directory is created if missing. */
    path: z.string().min(1),
    /** Rotate once the file holds this many bytes (lines are never split); no size rotation when absent. */
    rotate_max_bytes: byteSize()
      .refine((n) => n > 0, 'expected a size above 0')
      .optional(),
    /** Rotate a non-empty file this long after its first line; no time rotation when absent. */
    rotate_interval: duration()
      .refine((n) => n > 0, 'expected a duration above 0')
      .optional(),
    /** gzip rotated files (`….jsonl.gz`). */
    compress: z.boolean().default(true),
    /** Rotated files kept (oldest removed first); 0 keeps them all. */
    keep_files: z.number().int().nonnegative().default(0),
  })
  .strict();

export type FileExporterConfig = z.output<typeof fileExporterConfigSchema>;
