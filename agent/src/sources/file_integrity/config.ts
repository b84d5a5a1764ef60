import { byteSize, duration } from '@sealtrail/config';
import { SEVERITIES } from '@sealtrail/event';
import { z } from 'zod';
import { redactRulesSchema } from '../common/redact.js';

export const fileIntegrityConfigSchema = z
  .object({
    type: z.literal('file_integrity'),
    name: z.string().min(1),
    /** Files or directories to watch (absolute paths). Directories are watched with their contents. */
    paths: z.array(z.string().min(1), 'expected a list of paths').min(1, 'expected at least one path'),
    /** Descend into subdirectories. */
    recursive: z.boolean().default(true),
    /**
     * Glob patterns (picomatch) of paths to leave out, matched against the absolute path;
     * a pattern without a slash matches the base name (`*.swp`). An ignored directory's contents are ignored too.
     */
    ignore: z.array(z.string().min(1)).default([]),
    /** Files larger than this are compared by size, mtime and inode only, not hashed. */
    max_file_bytes: byteSize().default(64 * 1024 * 1024),
    /** Hashing budget: bytes read per second across this source's hash workers. */
    max_hash_bytes_per_sec: byteSize().default(32 * 1024 * 1024),
    /** Worker threads that hash files over 64 KiB off the event loop (smaller ones are hashed on the thread pool). */
    hash_workers: z.number().int().min(1).max(16).default(1),
    /** Follow symbolic links into their targets (off: a link is recorded as itself). */
    follow_symlinks: z.boolean().default(false),
    /**
     * Use stat polling instead of inotify (network file systems). Each `poll_interval` the source
     * also compares every baseline entry's mode and owner with a stat (the poller sees only size,
     * mtime and inode), so a chmod or chown alone is reported too.
     */
    poll: z.boolean().default(false),
    /** Polling period, with `poll: true`. */
    poll_interval: duration().default(2000),
    /** Compare the whole tree with the baseline on start (reports changes made while stopped). */
    scan_on_start: z.boolean().default(true),
    /** Severity of content, permission and owner changes; creation and deletion use it too. */
    severity: z.enum(SEVERITIES).default('medium'),
    /** Redaction rules for this source's events, after the agent-wide ones. */
    redact: redactRulesSchema,
  })
  .strict();

export type FileIntegrityConfig = z.output<typeof fileIntegrityConfigSchema>;
