/**
 * Shared harness for source tests and benchmarks: a real journal in a temp
 * directory, the settings the agent would hand a source, and readers for what
 * was sealed. No mocks: the events are read back from LevelDB.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditEvent, DEFAULT_MAX_EVENT_BYTES, decodeEvent } from '@sealtrail/event';
import { createLogger, createRegistry } from '@sealtrail/telemetry';
import { chainStartEvent } from '../../journal/events.js';
import { Journal } from '../../journal/journal.js';
import type { SourceSettings } from '../source.js';
import { compileRedaction, type RedactRule } from './redact.js';

export const TEST_AGENT_ID = '0190a5e4-0000-7000-8000-000000000001';

export interface Kit {
  dir: string;
  journal: Journal;
  settings: SourceSettings;
  /** Every sealed event after record 0, in order. */
  events(): Promise<AuditEvent[]>;
  /** The same, parsed without validation (fast, for 100,000-event checks). */
  rawEvents(): Promise<AuditEvent[]>;
  /** Closes the journal and opens it again (a restart). */
  reopen(): Promise<void>;
  close(): Promise<void>;
}

export async function makeKit(
  opts: { redact?: RedactRule[]; dir?: string; maxEventBytes?: number } = {},
): Promise<Kit> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'sealtrail-src-'));
  const host = { id: TEST_AGENT_ID, name: 'test-host', os: 'linux' };
  const open = async () => {
    const j = new Journal({
      dir: join(dir, 'journal'),
      agentId: TEST_AGENT_ID,
      hooks: { chainStart: (start) => chainStartEvent(host, Buffer.alloc(32), start) },
    });
    await j.open();
    return j;
  };
  const journal = await open();
  const redact = compileRedaction(opts.redact ?? []);
  const kit: Kit = {
    dir,
    journal,
    settings: {
      journal,
      host,
      log: createLogger('test', process.env.SEALTRAIL_TEST_LOG ?? 'silent'),
      registry: createRegistry('test'),
      maxEventBytes: opts.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
      overHighWater: () => false,
      redact,
    },
    async events() {
      const out: AuditEvent[] = [];
      for await (const r of kit.journal.records()) {
        if (r.seq === 0n) continue;
        out.push(decodeEvent(r.eventBytes!));
      }
      return out;
    },
    async rawEvents() {
      const out: AuditEvent[] = [];
      for await (const r of kit.journal.records()) {
        if (r.seq === 0n) continue;
        out.push(JSON.parse(r.eventBytes!.toString('utf8')) as AuditEvent);
      }
      return out;
    },
    async reopen() {
      await kit.journal.close();
      kit.journal = await open();
      kit.settings.journal = kit.journal;
    },
    async close() {
      await kit.journal.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return kit;
}

export async function waitUntil(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
