import { duration, hostPort } from '@sealtrail/config';
import { z } from 'zod';
import { commonExporterKeys, tlsSchema } from '../common/config.js';

export const FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'security',
  'console',
  'solaris-cron',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

export const syslogExporterConfigSchema = z
  .object({
    type: z.literal('syslog'),
    ...commonExporterKeys('native', { records: 500, bytes: 1_000_000, timeoutMs: 200 }),
    /** Receiver `host:port` (rsyslog imtcp, syslog-ng network(), a SIEM's syslog listener). */
    address: hostPort(),
    /** `tcp` (RFC 6587 octet counting) or `tls` (RFC 5425). */
    transport: z.enum(['tcp', 'tls']).default('tcp'),
    tls: tlsSchema.optional(),
    /** What MSG holds: the event as JSON (`rfc5424-json`), ArcSight `cef`, or IBM QRadar `leef` (2.0). */
    format: z.enum(['rfc5424-json', 'cef', 'leef']).default('rfc5424-json'),
    facility: z.enum(FACILITIES).default('local4'),
    app_name: z
      .string()
      .regex(/^[!-~]{1,48}$/, 'expected 1-48 printable ASCII characters without spaces')
      .default('sealtrail'),
    /** SD-ID of the structured data element carrying the event's identity (RFC 5424 §6.3.2). */
    sd_id: z
      .string()
      .regex(/^[!#-<>-\\^-~]{1,32}$/, 'expected an SD-ID like "sealtrail@32473"')
      .default('sealtrail@32473'),
    connect_timeout: duration().default(10_000),
    /**
     * TCP has no application acknowledgement: when the connection breaks,
     * what was written in this window before the break is sent again.
     */
    resend_window: duration().default(10_000),
    resend_window_max_records: z.number().int().nonnegative().default(10_000),
  })
  .strict()
  .refine((c) => c.transport === 'tls' || c.tls === undefined, {
    path: ['tls'],
    message: 'tls settings need transport: tls',
  });

export type SyslogExporterConfig = z.output<typeof syslogExporterConfigSchema>;
