// Summarizes a V8 .cpuprofile (node --cpu-prof): self time by function and by package/file.
// Also usable alone: node bench/lib/profile.mjs FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function where(url) {
  if (!url) return '(native/vm)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return url;
  const m = /\/(agent|collector|packages\/[^/]+|proto)\/(dist|gen)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[3]}` : url.replace(/^file:\/\//, '');
}

/** { totalMs, byFunction: [{name, where, ms, pct}], byModule: [{where, ms, pct}] } */
export function summarizeProfile(file, top = 15) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const dt = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    const d = p.timeDeltas[i] ?? 0;
    dt.set(p.samples[i], (dt.get(p.samples[i]) ?? 0) + d);
  }
  const fn = new Map();
  const mod = new Map();
  let total = 0;
  for (const node of p.nodes) {
    const us = dt.get(node.id) ?? 0;
    if (!us) continue;
    total += us;
    const cf = node.callFrame;
    const w = where(cf.url);
    const name = cf.functionName || '(anonymous)';
    const key = `${name}\t${w}:${cf.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    mod.set(w, (mod.get(w) ?? 0) + us);
  }
  const pct = (us) => Math.round((us / total) * 1000) / 10;
  const byFunction = [...fn]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => {
      const [name, at] = k.split('\t');
      return { name, where: at, ms: Math.round(us / 1000), pct: pct(us) };
    });
  const byModule = [...mod]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([w, us]) => ({ where: w, ms: Math.round(us / 1000), pct: pct(us) }));
  return { totalMs: Math.round(total / 1000), byFunction, byModule };
}

export function formatProfile(label, s) {
  const out = [`${label}: ${s.totalMs} ms sampled`, '  self time by function:'];
  for (const f of s.byFunction) {
    out.push(`  ${String(f.pct).padStart(5)}% ${String(f.ms).padStart(7)} ms  ${f.name}  ${f.where}`);
  }
  out.push('  self time by package / file:');
  for (const m of s.byModule)
    out.push(`  ${String(m.pct).padStart(5)}% ${String(m.ms).padStart(7)} ms  ${m.where}`);
  return out.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node bench/lib/profile.mjs FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  console.log(formatProfile(file, summarizeProfile(file, Number(top) || 20)));
}
