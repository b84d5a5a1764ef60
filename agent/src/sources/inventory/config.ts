import { validate } from 'node-cron';
import { z } from 'zod';
import { redactRulesSchema } from '../common/redact.js';

const cron = z.string().refine((s) => validate(s), {
  message: 'expected a cron expression, e.g. "*/5 * * * *" (5 fields, or 6 with seconds first)',
});

const table = (schedule: string, enabled = true) =>
  z
    .object({
      enabled: z.boolean().default(enabled),
      /** Cron expression (node-cron: 5 fields, or 6 with seconds). A run that is still going is not started again. */
      schedule: cron.default(schedule),
    })
    .strict()
    .prefault({});

export const INVENTORY_TABLES = [
  'users',
  'logins',
  'processes',
  'listening_ports',
  'packages',
  'os',
] as const;
export type InventoryTable = (typeof INVENTORY_TABLES)[number];

export const inventoryConfigSchema = z
  .object({
    type: z.literal('inventory'),
    name: z.string().min(1),
    tables: z
      .object({
        /** Local accounts and groups (/etc/passwd, /etc/group). */
        users: table('*/5 * * * *'),
        /** Logged-in sessions (utmp, via systeminformation). */
        logins: table('* * * * *'),
        /** Running processes by pid, name and command line. Busy hosts churn: off by default. */
        processes: table('*/5 * * * *', false),
        /** Listening TCP and UDP sockets with their process. */
        listening_ports: table('* * * * *'),
        /** Installed packages (dpkg-query or rpm, whichever is present). */
        packages: table('0 * * * *'),
        /** OS name, release, kernel, architecture. */
        os: table('0 */6 * * *'),
      })
      .strict()
      .prefault({}),
    /** Collect every enabled table once at start, then on schedule. */
    run_on_start: z.boolean().default(true),
    /** Time zone of the schedules (IANA name); the host's when unset. */
    timezone: z.string().optional(),
    /** Rows per `inventory.<table>.snapshot` event (a first run seals the whole table in such chunks). */
    snapshot_rows_per_event: z.number().int().min(1).max(5000).default(100),
    /** Redaction rules for this source's events, after the agent-wide ones. */
    redact: redactRulesSchema,
  })
  .strict();

export type InventoryConfig = z.output<typeof inventoryConfigSchema>;
