/**
 * Runs the real, compiled binaries as child processes for end-to-end tests:
 * temp data dirs, free loopback ports, readiness polling, kill -9 and restart.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const AGENT_BIN = join(ROOT, 'agent/bin/sealtrail-agent.js');
export const COLLECTOR_BIN = join(ROOT, 'collector/bin/sealtrail-collector.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = 'sealtrail-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Ports {
  grpc: number;
  collectorHttp: number;
  agentHttp: number;
}

export async function allocatePorts(): Promise<Ports> {
  return { grpc: await freePort(), collectorHttp: await freePort(), agentHttp: await freePort() };
}

export interface ConfigOptions {
  /**
   * TLS (the default of both binaries): the collector uses the PKI `sealtrail-collector init`
   * wrote to `pkiDir`, the agent the CA `sealtrail-agent enroll` stored in its data dir.
   * Without it, both run plaintext (`insecure: true`) and agents are trusted on first use.
   */
  tls?: { pkiDir: string };
  /** The name the agent dials the collector by (default 127.0.0.1); the server certificate has `localhost` too. */
  collectorHost?: string;
  /** More YAML list items under the collector's `exporters:` (indented two spaces). */
  collectorExporters?: string;
}

export function writeConfigs(
  dir: string,
  ports: Ports,
  agentExtra = '',
  opts: ConfigOptions = {},
): { agent: string; collector: string; exportPath: string; agentDataDir: string } {
  const collectorExporters = opts.collectorExporters ?? '';
  const exportPath = join(dir, 'export/events.jsonl');
  const collector = join(dir, 'collector.yaml');
  const agent = join(dir, 'agent.yaml');
  const agentDataDir = join(dir, 'agent');
  const insecure = opts.tls ? '' : '  insecure: true\n';
  writeFileSync(
    collector,
    `collector:
  data_dir: ${join(dir, 'collector')}
  log_level: warn
grpc:
  listen: 127.0.0.1:${ports.grpc}
${insecure}${opts.tls ? `pki:\n  dir: ${opts.tls.pkiDir}\n` : ''}http:
  listen: 127.0.0.1:${ports.collectorHttp}
exporters:
  - type: file
    name: archive
    path: ${exportPath}
${collectorExporters}`,
  );
  writeFileSync(
    agent,
    `agent:
  data_dir: ${agentDataDir}
  log_level: warn
collector:
  address: ${opts.collectorHost ?? '127.0.0.1'}:${ports.grpc}
${insecure}  reconnect_initial: 50ms
  reconnect_max: 500ms
http:
  listen: 127.0.0.1:${ports.agentHttp}
sources:
  - type: http_ingest
    name: apps
${agentExtra}`,
  );
  return { agent, collector, exportPath, agentDataDir };
}

/** A binary running as a child process, restartable after a kill. */
export class Proc {
  child: ChildProcess | null = null;
  stderr = '';

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly readyUrl: string,
  ) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null)
        throw new Error(`${this.name} exited with ${child.exitCode}:\n${this.stderr}`);
      try {
        if ((await fetch(this.readyUrl)).status < 500) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.name} did not answer ${this.readyUrl}:\n${this.stderr}`);
  }

  private exited(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((r) => c.once('exit', () => r()));
  }

  async kill9(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited();
  }

  /** SIGTERM, then SIGKILL if it has not exited in 15 s. Resolves with the exit code. */
  async stop(): Promise<number | null> {
    const c = this.child;
    if (!c) return null;
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await this.exited();
      clearTimeout(t);
    }
    return c.exitCode;
  }
}

export function collectorProc(config: string, ports: Ports): Proc {
  return new Proc(
    'collector',
    [COLLECTOR_BIN, 'run', '--config', config],
    `http://127.0.0.1:${ports.collectorHttp}/healthz`,
  );
}

export function agentProc(config: string, ports: Ports): Proc {
  return new Proc(
    'agent',
    [AGENT_BIN, 'run', '--config', config],
    `http://127.0.0.1:${ports.agentHttp}/healthz`,
  );
}

/** Runs a CLI to completion. */
export function runCli(
  bin: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export function readLines(path: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function waitFor(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
