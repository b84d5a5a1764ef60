/**
 * The lifecycle every source promises (CONVENTIONS.md, after OpenTelemetry's generated
 * component tests): create → stop without start; start → stop → stop (idempotent);
 * and each registered type has a factory whose schema accepts a minimal config.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Kit, makeKit } from './common/testkit.js';
import { createSource, type SourceConfig, sourceConfigSchema, sourceTypes } from './index.js';

const FAKE_JOURNALCTL = fileURLToPath(new URL('./journald/testdata/fake-journalctl.mjs', import.meta.url));

describe('source conformance', () => {
  let kit: Kit;
  let minimal: Record<string, unknown>;
  beforeAll(async () => {
    kit = await makeKit();
    const dir = join(kit.dir, 'files');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.log'), 'x\n');
    writeFileSync(join(kit.dir, 'journal.jsonl'), '');
    process.env.FAKE_JOURNAL = join(kit.dir, 'journal.jsonl');
    minimal = {
      http_ingest: { type: 'http_ingest', name: 'c-http' },
      file_integrity: { type: 'file_integrity', name: 'c-fim', paths: [dir] },
      log_tail: { type: 'log_tail', name: 'c-tail', include: [join(dir, '*.log')] },
      inventory: {
        type: 'inventory',
        name: 'c-inv',
        run_on_start: false,
        tables: {
          users: { enabled: false },
          logins: { enabled: false },
          listening_ports: { enabled: false },
          packages: { enabled: false },
        },
      },
      journald: { type: 'journald', name: 'c-journal', journalctl_path: FAKE_JOURNALCTL },
    };
  });
  afterAll(async () => {
    await kit.close();
  });

  const types = Object.keys(sourceTypes) as (keyof typeof sourceTypes)[];

  it('every registered type has a minimal config here, and its factory names its type', () => {
    expect(types.sort()).toEqual(Object.keys(minimal).sort());
    for (const t of types) expect(sourceTypes[t].type).toBe(t);
  });

  for (const t of ['http_ingest', 'file_integrity', 'log_tail', 'inventory', 'journald'] as const) {
    it(`${t}: create → stop without start`, async () => {
      const cfg = sourceConfigSchema.parse(minimal[t]) as SourceConfig;
      const s = createSource(kit.settings, cfg);
      expect(s.name).toBe(cfg.name);
      await s.stop();
    });

    it(`${t}: start → stop → stop`, async () => {
      const cfg = sourceConfigSchema.parse(minimal[t]) as SourceConfig;
      const s = createSource(kit.settings, cfg);
      await s.start();
      await new Promise((r) => setTimeout(r, 50));
      await s.stop();
      await s.stop();
    });

    it(`${t}: two instances in one registry (a reload re-creates sources)`, async () => {
      const cfg = sourceConfigSchema.parse(minimal[t]) as SourceConfig;
      const a = createSource(kit.settings, cfg);
      const b = createSource(kit.settings, cfg);
      await a.stop();
      await b.stop();
    });
  }
});
