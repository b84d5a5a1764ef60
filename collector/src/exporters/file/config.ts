import { z } from 'zod';

export const fileExporterConfigSchema = z
  .object({
    type: z.literal('file'),
    name: z.string().min(1),
    /** JSON lines file; its directory is created if missing. */
    path: z.string().min(1),
    batch_max_records: z.number().int().positive().default(1000),
  })
  .strict();

export type FileExporterConfig = z.output<typeof fileExporterConfigSchema>;
