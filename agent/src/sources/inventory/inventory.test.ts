import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Kit, makeKit, waitUntil } from '../common/testkit.js';
import { listeningPorts, os, packages, type Rows, users } from './collectors.js';
import { inventoryConfigSchema } from './config.js';
import { Inventory } from './inventory.js';

/** A clock the test moves by hand. */
function fakeClock(start = '2024-05-01T00:00:00Z') {
  let t = new Date(start).getTime();
  return {
    now: () => new Date(t),
    advance(ms: number) {
      t += ms;
    },
  };
}

const onlyTables = (tables: string[], extra: Record<string, unknown> = {}) =>
  inventoryConfigSchema.parse({
    type: 'inventory',
    name: 'inv',
    run_on_start: false,
    tables: Object.fromEntries(
      ['users', 'logins', 'processes', 'listening_ports', 'packages', 'os'].map((t) => [
        t,
        { enabled: tables.includes(t), schedule: '0 0 1 1 *' },
      ]),
    ),
    ...extra,
  });

describe('inventory', () => {
  let kit: Kit;
  let inv: Inventory | null = null;
  beforeEach(async () => {
    kit = await makeKit();
  });
  afterEach(async () => {
    await inv?.stop();
    inv = null;
    await kit.close();
  });

  it('listening_ports: a started and a stopped socket are added and removed, with a fake clock', async () => {
    const clock = fakeClock();
    inv = new Inventory(kit.settings, onlyTables(['listening_ports']), { now: clock.now });
    await inv.start();
    await inv.collect('listening_ports');
    const first = await kit.events();
    expect(first.length).toBeGreaterThan(0);
    expect(first.every((e) => e.type === 'inventory.listening_ports.snapshot')).toBe(true);
    expect(first[0]!.observed_time).toBe('2024-05-01T00:00:00.000Z');

    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    clock.advance(60_000);
    await inv.collect('listening_ports');
    const added = (await kit.events()).filter(
      (e) => e.type === 'inventory.listening_ports.added' && e.attributes?.key === `tcp:127.0.0.1:${port}`,
    );
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      category: 'network',
      severity: 'medium',
      observed_time: '2024-05-01T00:01:00.000Z',
      resource: { kind: 'port', name: `tcp/127.0.0.1:${port}` },
      attributes: { row: { protocol: 'tcp', address: '127.0.0.1', port } },
    });

    await new Promise<void>((r) => server.close(() => r()));
    clock.advance(60_000);
    await inv.collect('listening_ports');
    const removed = (await kit.events()).filter(
      (e) => e.type === 'inventory.listening_ports.removed' && e.attributes?.key === `tcp:127.0.0.1:${port}`,
    );
    expect(removed).toHaveLength(1);
    expect(removed[0]!.observed_time).toBe('2024-05-01T00:02:00.000Z');
  });

  it('keeps its snapshot across a restart: no second snapshot, only differences', async () => {
    const rows: Rows = new Map([
      ['a', { name: 'a', version: '1' }],
      ['b', { name: 'b', version: '1' }],
    ]);
    const collectors = { packages: async () => new Map(rows) };
    inv = new Inventory(kit.settings, onlyTables(['packages']), { collectors });
    await inv.start();
    await inv.collect('packages');
    expect((await kit.events()).map((e) => e.type)).toEqual(['inventory.packages.snapshot']);
    await inv.stop();
    await kit.reopen();

    rows.set('b', { name: 'b', version: '2' });
    rows.delete('a');
    rows.set('c', { name: 'c', version: '1' });
    inv = new Inventory(kit.settings, onlyTables(['packages']), { collectors });
    await inv.start();
    await inv.collect('packages');
    const diff = (await kit.events()).slice(1);
    expect(diff.map((e) => [e.type, e.attributes?.key])).toEqual([
      ['inventory.packages.changed', 'b'],
      ['inventory.packages.added', 'c'],
      ['inventory.packages.removed', 'a'],
    ]);
    expect(diff[0]!.attributes).toMatchObject({ before: { version: '1' }, after: { version: '2' } });
    // nothing changed: nothing sealed
    const n = (await kit.events()).length;
    await inv.collect('packages');
    expect((await kit.events()).length).toBe(n);
    expect(await kit.journal.getState('inv/inv/packages', 'c')).toEqual({ name: 'c', version: '1' });
  });

  it('splits a large first snapshot into events under the size cap', async () => {
    const rows: Rows = new Map(
      Array.from({ length: 1000 }, (_, i) => [
        `p${i}`,
        { name: `p${i}`, version: '1.0.0-'.padEnd(100, 'x') },
      ]),
    );
    inv = new Inventory(kit.settings, onlyTables(['packages'], { snapshot_rows_per_event: 5000 }), {
      collectors: { packages: async () => rows },
    });
    await inv.start();
    await inv.collect('packages');
    const events = await kit.events();
    expect(events.length).toBeGreaterThan(1);
    expect(events.every((e) => e.type === 'inventory.packages.snapshot')).toBe(true);
    expect(events.reduce((n, e) => n + ((e.attributes?.rows ?? []) as unknown[]).length, 0)).toBe(1000);
  });

  it('never runs a table twice at once', async () => {
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    inv = new Inventory(kit.settings, onlyTables(['os']), {
      collectors: {
        os: async () => {
          calls++;
          await gate;
          return new Map([['os', { distro: 'x' }]]);
        },
      },
    });
    await inv.start();
    const a = inv.collect('os');
    const b = inv.collect('os');
    release();
    await Promise.all([a, b]);
    expect(calls).toBe(1);
  });

  it('runs on its cron schedule (node-cron, seconds field)', async () => {
    let calls = 0;
    const cfg = onlyTables(['os']);
    cfg.tables.os.schedule = '* * * * * *';
    inv = new Inventory(kit.settings, cfg, {
      collectors: {
        os: async () => {
          calls++;
          return new Map([['os', { distro: 'x', n: calls }]]);
        },
      },
    });
    await inv.start();
    await waitUntil('two scheduled runs', () => calls >= 2, 5000);
    await inv.stop();
    const types = (await kit.events()).map((e) => e.type);
    expect(types[0]).toBe('inventory.os.snapshot');
    expect(types.slice(1).every((t) => t === 'inventory.os.changed')).toBe(true);
  });

  it('rejects a bad cron expression with a message', () => {
    const r = inventoryConfigSchema.safeParse({
      type: 'inventory',
      name: 'x',
      tables: { users: { schedule: 'every minute' } },
    });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['tables', 'users', 'schedule']);
    expect(r.error!.issues[0]!.message).toMatch(/expected a cron expression/);
  });
});

describe('collectors on this host', () => {
  it('users and groups from passwd-format files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealtrail-inv-'));
    writeFileSync(
      join(dir, 'passwd'),
      'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh\n',
    );
    writeFileSync(join(dir, 'group'), 'root:x:0:\nsudo:x:27:bob,alice\n');
    const rows = await users({ passwdFile: join(dir, 'passwd'), groupFile: join(dir, 'group') });
    expect(rows.get('user:alice')).toEqual({
      kind: 'user',
      name: 'alice',
      uid: 1000,
      gid: 1000,
      gecos: 'Alice,,,',
      home: '/home/alice',
      shell: '/bin/zsh',
    });
    expect(rows.get('group:sudo')).toEqual({ kind: 'group', name: 'sudo', gid: 27, members: 'alice,bob' });
    rmSync(dir, { recursive: true, force: true });
  });

  it('os, packages and listening ports answer', async () => {
    expect((await os()).get('os')?.platform).toBe(process.platform);
    const pkgs = await packages();
    if (pkgs !== null) expect(pkgs.size).toBeGreaterThan(0);
    expect(await listeningPorts()).toBeInstanceOf(Map);
  });
});
