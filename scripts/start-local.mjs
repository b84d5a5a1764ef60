// `npm start`: a local collector and agent on the embedded configs (config/*.yaml),
// data under ./.sealtrail/. Ctrl-C stops both cleanly.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const procs = [];

function start(name, bin, config) {
  const p = spawn(process.execPath, [bin, 'run', '--config', config], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  p.on('exit', (code, signal) => {
    console.error(`[start] ${name} exited (${signal ?? code})`);
    if (!stopping) stop(code ?? 1);
  });
  procs.push(p);
  return p;
}

async function ready(url) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become ready`);
}

let stopping = false;
function stop(code = 0) {
  stopping = true;
  for (const p of procs.reverse()) p.kill('SIGTERM');
  Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r))))).then(() =>
    process.exit(code),
  );
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

start('collector', 'collector/bin/sealtrail-collector.js', 'config/collector.yaml');
await ready('http://127.0.0.1:7700/healthz');
start('agent', 'agent/bin/sealtrail-agent.js', 'config/agent.yaml');
await ready('http://127.0.0.1:7780/readyz');
console.log(`
Sealtrail is running: collector 127.0.0.1:7701 (HTTP :7700), agent HTTP 127.0.0.1:7780.
Exported events are appended to ${root}.sealtrail/export/events.jsonl
Post an event:
  curl -s -X POST http://127.0.0.1:7780/v1/events -H 'content-type: application/json' \\
    -d '{"category":"authentication","type":"auth.login.failure","action":"login","actor":{"user":"alice","ip":"203.0.113.7"}}'
Ctrl-C stops both.
`);
