import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, exporterConfigSchema } from '@sealtrail/collector';
import { canonicalBytes, newEventId } from '@sealtrail/event';
const D = process.env.DIST ?? '/work/wt-exporters/collector/dist';
const { toExportRecord } = await import(`${D}/exporters/common/record.js`);
const { bulkEncoder } = await import(`${D}/exporters/elasticsearch/encode.js`);
const { hecEncoder } = await import(`${D}/exporters/splunk_hec/encode.js`);
const { fileEncoder } = await import(`${D}/exporters/file/encode.js`);
const { toEcs, ecsJson, ecsFromRaw } = await import(`${D}/exporters/common/schemas.js`);
const { hecHead, hecHeadFromText } = await import(`${D}/exporters/splunk_hec/encode.js`);
const { nativeJson } = await import(`${D}/exporters/common/schemas.js`);
const AGENT = '0190a0b0-0000-7000-8000-000000000001';
const N = 50000;
function event(i) {
  return JSON.parse(JSON.stringify({
    id: newEventId(), time: new Date(Date.UTC(2026, 10, 23, 10, 0, 0, i % 1000)).toISOString(),
    observed_time: new Date(Date.UTC(2026, 10, 23, 10, 0, 1)).toISOString(),
    category: i % 5 === 0 ? 'file' : 'authentication', type: i % 5 === 0 ? 'file.modified' : 'auth.login.failure',
    severity: ['info', 'low', 'medium', 'high', 'critical'][i % 5], outcome: 'failure', action: i % 5 === 0 ? 'write' : 'login',
    actor: { user: `user${i % 97}`, ip: '198.51.100.7', session_id: `s${i % 13}` },
    resource: i % 5 === 0 ? { kind: 'file', name: `/etc/app/conf${i % 7}.yaml` } : undefined,
    host: { id: AGENT, name: 'web-1', os: 'linux' }, source: { kind: 'http_ingest', name: 'apps' },
    message: `failed password for user${i % 97} from 198.51.100.7 port ${40000 + (i % 20000)} ssh2`,
    attributes: { attempt: i % 5, tty: 'ssh' },
  }));
}
const dir = mkdtempSync(join(tmpdir(), 'exp-enc-'));
const spool = new Spool(join(dir, 's')); await spool.open();
const agent = { agent_id: AGENT, public_key: '', hostname: 'w', first_seen: '', last_seen: '', chain_id: AGENT, seq: null, hash: null, chains: [], records: 0, duplicates: 0 };
for (let i = 0; i < N; i += 1000) await spool.commit(agent, Array.from({ length: 1000 }, (_, j) => { const e = event(i + j); return { chainId: AGENT, seq: BigInt(i + j), recordHash: randomBytes(32), eventBytes: canonicalBytes(e), eventId: e.id }; }));
const es = bulkEncoder(exporterConfigSchema.parse({ type: 'elasticsearch', name: 'e', endpoint: 'http://x' }));
const hec = hecEncoder(exporterConfigSchema.parse({ type: 'splunk_hec', name: 's', endpoint: 'http://x', token: 't' }));
const file = fileEncoder(exporterConfigSchema.parse({ type: 'file', name: 'f', path: '/tmp/x' }));
const batches = [];
for (let off = -1n; off < BigInt(N - 1); off += 1000n) batches.push(await spool.read(off, 1000));
const line = (f) => (x) => { const p = `{"create":{"_index":"sealtrail","_id":${JSON.stringify(x.event.id)}}}\n${f(x)}\n`; Buffer.byteLength(p); return p; };
const lineRaw = (f) => (x) => { const p = `{"create":{"_index":"sealtrail","_id":"${x.text.slice(x.text.indexOf('"id":"') + 6, x.text.indexOf('"id":"') + 42)}"}}\n${f(x)}\n`; Buffer.byteLength(p); return p; };
const v = { stringify: line((x) => JSON.stringify(toEcs(x))), ecsJson: line(ecsJson), raw: lineRaw(ecsFromRaw) };
const F = '"source":"sealtrail","sourcetype":"_json"';
const mk = (h) => (x) => { const p = `${h(x, F)},"event":${nativeJson(x)}}`; Buffer.byteLength(p); return p; };
const hp = mk(hecHead), hr = mk(hecHeadFromText);
const stages = {
  hecParsed: (rs) => { Buffer.from(rs.map((r) => hp(toExportRecord(r))).join('\n')); },
  hecRaw: (rs) => { Buffer.from(rs.map((r) => hr(toExportRecord(r))).join('\n')); },
  ecsStringify: (rs) => { Buffer.from(rs.map((r) => v.stringify(toExportRecord(r))).join('')); },
};
const res = {};
for (let round = 0; round < 6; round++) for (const [name, f] of Object.entries(stages)) {
  const c0 = process.cpuUsage();
  for (const b of batches) f(b);
  const c = process.cpuUsage(c0);
  if (round > 0) (res[name] ??= []).push((c.user + c.system) / N);
}
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(12), 'min', Math.min(...v).toFixed(2), 'median', v.sort((a, b) => a - b)[Math.floor(v.length / 2)].toFixed(2), 'µs/ev (encode only, records already read)');
await spool.close(); rmSync(dir, { recursive: true, force: true });
