/**
 * kill -9 at random moments, 50 times: after each restart the journal opens and
 * verifies, and every append that had resolved before the kill is present
 * exactly once (appends that had not resolved may or may not be there — once).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Journal, journalPaths, loadOrCreateIdentity } from '@sealtrail/agent';
import { afterAll, describe, expect, it } from 'vitest';

const WRITER = fileURLToPath(new URL('./fixtures/journal-writer.mjs', import.meta.url));
const KILLS = 50;

async function runAndKill(dataDir: string, start: number): Promise<number[][]> {
  const child = spawn(process.execPath, [WRITER, dataDir, String(start)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 20_000;
  while (!out.includes('ready\n')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`writer did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 20 + Math.random() * 250));
  child.kill('SIGKILL');
  await exited;
  return out
    .split('\n')
    .filter((l) => /^\d+-\d+$/.test(l))
    .map((l) => l.split('-').map(Number));
}

describe('journal under kill -9', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sealtrail-crash-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it(`opens, verifies and keeps every resolved append exactly once across ${KILLS} kills`, {
    timeout: 300_000,
  }, async () => {
    const resolved = new Set<number>();
    // Every event number ever found in the journal, with how often.
    const seen = new Map<number, number>();
    let next = 0;
    for (let i = 0; i < KILLS; i++) {
      for (const [a, b] of await runAndKill(dataDir, next)) for (let n = a!; n <= b!; n++) resolved.add(n);

      const identity = loadOrCreateIdentity(dataDir);
      const journal = new Journal({
        dir: journalPaths(dataDir).journal,
        agentId: identity.agentId,
        hooks: { chainStart: () => Buffer.alloc(0) },
      });
      await journal.open({ startChain: false });
      try {
        expect(await journal.verifyTail()).toBeNull();
        for await (const r of journal.records()) {
          const ev = JSON.parse(r.eventBytes!.toString());
          if (ev.type !== 'app.crash.test') continue;
          const n = ev.attributes.n as number;
          seen.set(n, (seen.get(n) ?? 0) + 1);
          if (n >= next) next = n + 1;
        }
        // As a collector would: acknowledge what was checked, so the next round sees only new records.
        if (journal.head) await journal.ack(journal.head);
      } finally {
        await journal.close();
      }
      for (const n of resolved) if (n >= next) next = n + 1;
      expect([...seen].filter(([, c]) => c > 1)).toEqual([]);
      expect([...resolved].filter((n) => !seen.has(n))).toEqual([]);
    }
    expect(resolved.size).toBeGreaterThan(KILLS);
    console.log(
      `${KILLS} kills: ${resolved.size} events of resolved appends all present once; ${seen.size} events kept in all`,
    );
  });
});
