// Fails when proto/gen differs from what `buf generate` makes of the .proto files now,
// and when `buf lint` finds a problem. Run by `npm test` (via `npm run proto:check`).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const here = new URL('..', import.meta.url).pathname;
const run = (args) => execFileSync('buf', args, { cwd: here, stdio: 'inherit' });

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else out.push(p);
  }
  return out;
}

run(['lint']);
const tmp = mkdtempSync(join(tmpdir(), 'sealtrail-proto-'));
try {
  run(['generate', '--output', tmp]);
  const fresh = join(tmp, 'gen');
  const committed = join(here, 'gen');
  const want = files(fresh)
    .map((f) => relative(fresh, f))
    .sort();
  const have = files(committed)
    .map((f) => relative(committed, f))
    .sort();
  const stale = [];
  for (const f of new Set([...want, ...have])) {
    if (!want.includes(f) || !have.includes(f)) stale.push(f);
    else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) stale.push(f);
  }
  if (stale.length > 0) {
    console.error(
      `proto/gen is stale (${stale.join(', ')}): run \`npm run proto:gen\` and commit the result.`,
    );
    process.exit(1);
  }
  console.log(`proto: buf lint clean, ${want.length} generated files up to date`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
