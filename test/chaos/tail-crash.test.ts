/**
 * log_tail under kill -9: a writer appends numbered lines to a file (rotated by rename now
 * and then while the tailer is down), a tailer is killed at random moments and restarted,
 * and between runs everything sealed is acknowledged, so the marks that carried the
 * positions are deleted. At the end every line was sealed exactly once, in order per file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Journal } from '@sealtrail/agent';
import { afterAll, describe, expect, it } from 'vitest';

const RUNNER = fileURLToPath(new URL('./fixtures/tail-runner.mjs', import.meta.url));
/** The sources' test kit's agent id (agent/src/sources/common/testkit.ts). */
const AGENT_ID = '0190a5e4-0000-7000-8000-000000000001';
const KILLS = 20;

async function started(dataDir: string, file: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [RUNNER, dataDir, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const deadline = Date.now() + 20_000;
  while (!out.includes('ready\n')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`tailer did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await exited;
}

describe('log_tail under kill -9', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealtrail-tail-crash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`seals every line exactly once, in order per file, across ${KILLS} kills and rotations`, {
    timeout: 300_000,
  }, async () => {
    const dataDir = join(dir, 'data');
    const file = join(dir, 'app.log');
    let written = 0;
    /** Line numbers by the file (generation) they were written to. */
    const generations: number[][] = [[]];
    const write = (n: number) => {
      let text = '';
      for (let i = 0; i < n; i++) {
        text += `line ${++written} ${'x'.repeat(written % 60)}\n`;
        generations.at(-1)!.push(written);
      }
      appendFileSync(file, text);
    };
    write(500);
    /** Every line number sealed so far, in sealing order. */
    const sealed: number[] = [];
    const collect = async () => {
      const journal = new Journal({
        dir: join(dataDir, 'journal'),
        agentId: AGENT_ID,
        hooks: { chainStart: () => Buffer.alloc(0) },
      });
      await journal.open({ startChain: false });
      try {
        expect(await journal.verifyTail()).toBeNull();
        for await (const r of journal.records()) {
          const m = /^line (\d+) /.exec(JSON.parse(r.eventBytes!.toString()).message ?? '');
          if (m) sealed.push(Number(m[1]));
        }
        // As a collector would: everything sealed is acknowledged, its marks deleted with it.
        if (journal.head) await journal.ack(journal.head);
        const st = statSync(file);
        const pos = await journal.position<{ files: Record<string, unknown> }>('app');
        return pos?.files[`${st.dev}:${st.ino}`] !== undefined;
      } finally {
        await journal.close();
      }
    };
    let rotations = 0;
    for (let i = 0; i < KILLS; i++) {
      const child = await started(dataDir, file);
      const until = Date.now() + 50 + Math.random() * 300;
      while (Date.now() < until) {
        write(1 + Math.floor(Math.random() * 80));
        await new Promise((r) => setTimeout(r, 2));
      }
      await killed(child);
      const known = await collect();
      // Renamed while the tailer is down, once its position knows the file (else the file would
      // be one it never saw): the next run drains it by inode, then reads the new file.
      if (known && i % 4 === 1) {
        renameSync(file, `${file}.${++rotations}`);
        generations.push([]);
        write(200);
      }
    }
    // Drain: runs of 1.5 s until nothing is missing (the last one may still be killed mid-batch).
    for (let i = 0; i < 10 && new Set(sealed).size < written; i++) {
      const child = await started(dataDir, file);
      await new Promise((r) => setTimeout(r, 1500));
      await killed(child);
      await collect();
    }
    const counts = new Map<number, number>();
    for (const n of sealed) counts.set(n, (counts.get(n) ?? 0) + 1);
    expect([...counts].filter(([, c]) => c > 1)).toEqual([]);
    expect(counts.size).toBe(written);
    const generationOf = new Map(generations.flatMap((g, k) => g.map((n) => [n, k] as const)));
    const perFile = generations.map((): number[] => []);
    for (const n of sealed) perFile[generationOf.get(n)!]!.push(n);
    expect(perFile).toEqual(generations);
    expect(rotations).toBeGreaterThan(0);
    console.log(`${KILLS} kills, ${rotations} rotations: ${written} lines, each sealed once, in order`);
  });
});
