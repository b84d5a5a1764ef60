/** A real collector child process (plaintext loopback, one file exporter) for chaos tests. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COLLECTOR_BIN, freePort, Proc, readLines, runCli } from '../../e2e/harness.js';

export interface ChaosCollector {
  proc: Proc;
  grpcAddress: string;
  dataDir: string;
  exportPath: string;
  config: string;
}

export async function chaosCollector(dir: string): Promise<ChaosCollector> {
  const grpc = await freePort();
  const http = await freePort();
  const dataDir = join(dir, 'collector');
  const exportPath = join(dir, 'export/events.jsonl');
  const config = join(dir, 'collector.yaml');
  writeFileSync(
    config,
    `collector:
  data_dir: ${dataDir}
  log_level: warn
grpc:
  listen: 127.0.0.1:${grpc}
  insecure: true
http:
  listen: 127.0.0.1:${http}
exporters:
  - type: file
    name: archive
    path: ${exportPath}
`,
  );
  const proc = new Proc(
    'collector',
    [COLLECTOR_BIN, 'run', '--config', config],
    `http://127.0.0.1:${http}/healthz`,
  );
  return { proc, grpcAddress: `127.0.0.1:${grpc}`, dataDir, exportPath, config };
}

export interface ExportCheck {
  lines: number;
  /** Event ids that appear more than once. */
  twice: string[];
  /** Per agent: seqs in the export file, in file order. */
  seqs: Map<string, bigint[]>;
  ids: Set<string>;
}

/** Reads the export file: each line's id, and each agent's seqs in order. */
export function readExport(path: string): ExportCheck {
  const counts = new Map<string, number>();
  const seqs = new Map<string, bigint[]>();
  const lines = readLines(path);
  for (const l of lines) {
    const id = l.id as string;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    const st = l.sealtrail as { agent_id: string; seq: string };
    const list = seqs.get(st.agent_id) ?? [];
    if (list.length === 0) seqs.set(st.agent_id, list);
    list.push(BigInt(st.seq));
  }
  return {
    lines: lines.length,
    twice: [...counts].filter(([, n]) => n > 1).map(([id]) => id),
    seqs,
    ids: new Set(counts.keys()),
  };
}

/** A seq list that is not exactly 0..n-1 in order: a description of the first problem, or null. */
export function seqProblem(seqs: bigint[], expected: number): string | null {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== BigInt(i)) return `position ${i} holds seq ${seqs[i]}`;
  }
  return seqs.length === expected ? null : `${seqs.length} records, expected ${expected}`;
}

export interface VerifyReport {
  ok: boolean;
  records: number;
  violations: number;
  agents: { agent_id: string; ok: boolean; records: number; head: { seq: string | null }; fault?: unknown }[];
}

export async function verifyCollector(dataDir: string): Promise<{ code: number; report: VerifyReport }> {
  const r = await runCli(COLLECTOR_BIN, ['verify', '--data-dir', dataDir, '--json']);
  if (r.stderr !== '') throw new Error(`verify wrote to stderr:\n${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as VerifyReport };
}
