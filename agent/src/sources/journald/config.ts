import { duration } from '@sealtrail/config';
import { z } from 'zod';
import { redactRulesSchema } from '../common/redact.js';

export const JOURNAL_PRIORITIES = [
  'emerg',
  'alert',
  'crit',
  'err',
  'warning',
  'notice',
  'info',
  'debug',
] as const;

export const journaldConfigSchema = z
  .object({
    type: z.literal('journald'),
    name: z.string().min(1),
    /** The journalctl binary: a name looked up in PATH, or a path. */
    journalctl_path: z.string().min(1).default('journalctl'),
    /** Only these systemd units (`-u`), e.g. `[ssh.service, sudo]`; all when empty. */
    units: z.array(z.string().min(1)).default([]),
    /** Only these syslog identifiers (`-t`), e.g. `[sshd, sudo]`; all when empty. */
    identifiers: z.array(z.string().min(1)).default([]),
    /** Only entries at this priority or more severe (`-p 0..N`). */
    priority: z.enum(JOURNAL_PRIORITIES).optional(),
    /** Where to start when no cursor was saved: `end` (new entries only) or `beginning` (the whole journal). */
    start_at: z.enum(['end', 'beginning']).default('end'),
    /** Parse messages of sshd, sudo, su, useradd… as `linux_auth` does; `none` keeps every entry as `log.line`. */
    parser: z.enum(['none', 'linux_auth']).default('linux_auth'),
    /** Most entries sealed in one journal batch. */
    batch_max_entries: z.number().int().positive().default(1000),
    /** Wait before starting journalctl again after it exited. */
    restart_delay: duration().default(1000),
    /** Redaction rules for this source's events, after the agent-wide ones. */
    redact: redactRulesSchema,
  })
  .strict();

export type JournaldConfig = z.output<typeof journaldConfigSchema>;
