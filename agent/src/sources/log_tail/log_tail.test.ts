import { execFile } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SealtrailError } from '@sealtrail/errors';
import type { AuditEvent } from '@sealtrail/event';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Journal } from '../../journal/journal.js';
import type { EventDraft } from '../common/emit.js';
import { type Kit, makeKit, waitUntil } from '../common/testkit.js';
import { logTailConfigSchema } from './config.js';
import { createParser, LogTail } from './log_tail.js';

const TESTDATA = fileURLToPath(new URL('./testdata/', import.meta.url));
const NOW = new Date('2024-03-10T00:00:00Z');

function parseFile(name: string, parser: unknown): EventDraft[] {
  const p = createParser(logTailConfigSchema.shape.parser.parse(parser));
  const out: EventDraft[] = [];
  let offset = 0;
  for (const line of readFileSync(join(TESTDATA, name), 'utf8').split('\n')) {
    if (line !== '') out.push(...p.push(line, { path: `/var/log/${name}`, offset, now: NOW }));
    offset += Buffer.byteLength(line) + 1;
  }
  out.push(...p.flush(NOW, 0));
  return out;
}

describe('linux_auth parser (testdata/auth.log)', () => {
  const events = parseFile('auth.log', 'linux_auth');
  const row = (i: number) => {
    const e = events[i]!;
    return [e.type, e.outcome, e.actor?.user, e.actor?.ip];
  };

  it('keeps one event per line, unparsed lines as log.line', () => {
    const lines = readFileSync(join(TESTDATA, 'auth.log'), 'utf8').trim().split('\n');
    expect(events).toHaveLength(lines.length);
    expect(events.at(-1)).toMatchObject({
      type: 'log.line',
      message: 'this line has no syslog header at all',
    });
    // a header it knows, a message it does not: log.line with the program and the line's own time
    const logind = events.find((e) => e.attributes?.program === 'systemd-logind')!;
    expect(logind.type).toBe('log.line');
    expect(new Date(logind.time as Date).getMonth()).toBe(2);
  });

  it('sshd logins, failures, invalid users and disconnects', () => {
    expect(row(0)).toEqual(['auth.login.success', 'success', 'alice', '10.0.0.5']);
    expect(events[0]!.attributes).toMatchObject({
      method: 'password',
      port: 52311,
      program: 'sshd',
      pid: 1201,
    });
    expect(row(2)).toEqual(['auth.login.success', 'success', 'deploy', '10.0.0.7']);
    expect(events[2]!.attributes).toMatchObject({
      method: 'publickey',
      key: expect.stringContaining('ED25519'),
    });
    expect(row(3)).toEqual(['auth.login.failure', 'failure', 'root', '203.0.113.9']);
    expect(row(4)).toEqual(['auth.login.failure', 'failure', 'admin', '203.0.113.9']);
    expect(events[4]!.attributes).toMatchObject({ invalid_user: true });
    expect(row(5)).toEqual(['auth.user.invalid', 'failure', 'oracle', '203.0.113.9']);
    expect(row(6)).toEqual(['auth.login.failure', 'failure', 'git', '198.51.100.4']);
    expect(row(7)).toEqual(['auth.login.attempts_exceeded', 'failure', 'root', '203.0.113.9']);
    expect(row(8)).toEqual(['auth.session.disconnected', 'success', 'admin', '203.0.113.9']);
    expect(row(9)[0]).toBe('auth.session.disconnected');
    expect(row(10)).toEqual(['auth.connection.closed', 'failure', 'root', '203.0.113.9']);
    expect(row(11)).toEqual(['auth.session.disconnected', 'success', 'alice', '10.0.0.5']);
    expect(row(1)[0]).toBe('auth.session.opened');
    expect(row(12)[0]).toBe('auth.session.closed');
    expect(new Date(events[0]!.time as Date).getDate()).toBe(3);
  });

  it('sudo commands and failures', () => {
    expect(events[13]).toMatchObject({
      type: 'process.sudo.command',
      outcome: 'success',
      actor: { user: 'alice' },
      resource: { kind: 'process', name: '/usr/bin/apt update' },
      attributes: { target_user: 'root', cwd: '/home/alice' },
    });
    expect(events[14]).toMatchObject({ type: 'auth.session.opened', actor: { user: 'alice' } });
    expect(events[15]).toMatchObject({
      type: 'auth.authentication.failure',
      actor: { user: 'bob', uid: '1001' },
    });
    expect(events[16]).toMatchObject({
      type: 'process.sudo.failure',
      outcome: 'failure',
      attributes: { reason: '3 incorrect password attempts' },
    });
    expect(events[17]).toMatchObject({
      type: 'process.sudo.failure',
      severity: 'high',
      actor: { user: 'mallory' },
    });
  });

  it('su, account and password changes', () => {
    expect(events[18]).toMatchObject({
      type: 'auth.su.success',
      actor: { user: 'alice' },
      resource: { name: 'root' },
    });
    expect(events[20]).toMatchObject({ type: 'auth.authentication.failure', attributes: { service: 'su' } });
    expect(events[21]).toMatchObject({ type: 'auth.su.failure', actor: { user: 'bob' } });
    expect(events[22]).toMatchObject({
      type: 'account.group.created',
      resource: { name: 'carol', id: '1002' },
    });
    expect(events[23]).toMatchObject({
      type: 'account.user.created',
      resource: { kind: 'user', name: 'carol', id: '1002' },
      attributes: { shell: '/bin/bash', home: '/home/carol' },
    });
    expect(events[24]).toMatchObject({ type: 'account.password.changed', resource: { name: 'carol' } });
    expect(events[25]).toMatchObject({
      type: 'account.group.member_added',
      severity: 'high',
      attributes: { group: 'sudo' },
    });
    expect(events[27]).toMatchObject({ type: 'account.user.modified', resource: { name: 'carol' } });
    expect(events[28]).toMatchObject({ type: 'account.user.locked' });
    expect(events[29]).toMatchObject({ type: 'account.group.created', resource: { name: 'devs' } });
    expect(events[32]).toMatchObject({ type: 'account.user.deleted', resource: { name: 'carol' } });
    expect(events[33]).toMatchObject({ type: 'account.group.deleted', resource: { name: 'carol' } });
    expect(events[34]).toMatchObject({ type: 'account.group.deleted', resource: { name: 'devs' } });
    expect(events[35]).toMatchObject({ type: 'account.password.changed', resource: { name: 'dave' } });
  });

  it('RFC 3339 headers and sshd-session', () => {
    const e = events[38]!;
    expect(e).toMatchObject({ type: 'auth.login.success', actor: { user: 'erin', ip: '192.0.2.44' } });
    expect(new Date(e.time as string).toISOString()).toBe('2024-03-03T10:36:12.345Z');
  });
});

describe('linux_audit parser (testdata/audit.log)', () => {
  const events = parseFile('audit.log', 'linux_audit');
  const types = events.map((e) => e.type);

  it('groups records by event serial', () => {
    expect(types).toEqual([
      'audit.daemon.start',
      'auth.authenticate.success',
      'auth.login.success',
      'auth.login.failure',
      'process.exec',
      'process.sudo.command',
      'audit.config.changed',
      'account.user.created',
      'account.group.created',
      'account.password.changed',
      'audit.anomaly.promiscuous',
      'system.service.started',
      'audit.syscall',
      'log.line',
    ]);
  });

  it('EXECVE+SYSCALL: argv decoded from hex, cwd, actor', () => {
    const exec = events[4]!;
    expect(exec).toMatchObject({
      category: 'process',
      actor: { uid: '1000', session_id: '3' },
      resource: { kind: 'process', name: '/usr/bin/curl', id: '1290' },
      attributes: {
        argv: ['curl', '-s', 'https://example.com/a b.sh'],
        cwd: '/home/alice',
        key: 'exec',
        records: ['SYSCALL', 'EXECVE', 'CWD', 'PATH', 'PATH', 'PROCTITLE'],
      },
    });
    expect(new Date(exec.time as number).toISOString()).toBe('2024-03-03T10:03:20.333Z');
  });

  it('USER_* records: account, address, result', () => {
    expect(events[2]).toMatchObject({
      actor: { user: 'alice', uid: '1000', ip: '10.0.0.5' },
      outcome: 'success',
    });
    expect(events[3]).toMatchObject({ actor: { user: 'root', ip: '203.0.113.9' }, outcome: 'failure' });
    expect(events[5]).toMatchObject({ resource: { name: 'apt update' }, attributes: { cwd: '/home/alice' } });
    expect(events[6]).toMatchObject({
      category: 'configuration',
      attributes: { op: 'remove_rule', key: 'exec' },
    });
    expect(events[12]).toMatchObject({
      category: 'file',
      outcome: 'failure',
      resource: { kind: 'file', name: '/etc/shadow' },
      attributes: { node: 'web1', key: 'shadow' },
    });
  });

  it('holds an incomplete group and reports where it starts', () => {
    const p = createParser({ type: 'linux_audit' });
    const l1 =
      'type=SYSCALL msg=audit(1709460200.333:9000): arch=c000003e syscall=59 success=yes pid=1 comm="x"';
    const l2 = 'type=EXECVE msg=audit(1709460200.333:9000): argc=1 a0="x"';
    expect(p.push(l1, { path: 'a', offset: 100, now: NOW })).toEqual([]);
    expect(p.push(l2, { path: 'a', offset: 200, now: NOW })).toEqual([]);
    expect(p.held()).toBe(100);
    expect(p.flush(NOW, 10_000)).toEqual([]);
    expect(p.flush(new Date(NOW.getTime() + 20_000), 10_000).map((e) => e.type)).toEqual(['process.exec']);
    expect(p.held()).toBeUndefined();
  });
});

describe('json and regex parsers', () => {
  it('json: maps fields with templates, keeps unparsed lines', () => {
    const events = parseFile('app.jsonl', {
      type: 'json',
      category: 'authentication',
      mapping: {
        time: '{ts}',
        type: 'app.{event}',
        action: 'login',
        severity: '{level}',
        outcome: '{result}',
        'actor.user': '{user.name}',
        'actor.ip': '{user.ip}',
        message: '{msg}',
      },
    });
    expect(events.map((e) => e.type)).toEqual(['app.login.failed', 'app.login.ok', 'log.line', 'log.line']);
    expect(events[0]).toMatchObject({
      category: 'authentication',
      severity: 'medium',
      outcome: 'failure',
      actor: { user: 'alice', ip: '10.0.0.5' },
      message: 'bad password',
      time: '2024-03-03T10:40:00.000Z',
    });
    expect(events[1]).toMatchObject({ outcome: 'success', severity: 'info' });
    expect(new Date(events[1]!.time as Date).toISOString()).toBe('2024-03-03T10:41:00.000Z');
    expect(events[2]!.attributes).toMatchObject({ parse_error: 'not JSON' });
  });

  it('regex: named groups into a mapping', () => {
    const events = parseFile('app.log', {
      type: 'regex',
      pattern: '^(?<ts>\\S+ \\S+) LOGIN user=(?<user>\\S+) ip=(?<ip>\\S+) result=(?<result>\\S+)$',
      category: 'authentication',
      event_type: 'app.login',
      action: 'login',
      mapping: {
        'actor.user': '{user}',
        'actor.ip': '{ip}',
        outcome: '{result}',
        type: 'app.login.{result}',
      },
    });
    expect(events.map((e) => [e.type, e.actor?.user, e.outcome])).toEqual([
      ['app.login.success', 'alice', 'success'],
      ['app.login.failure', 'mallory', 'failure'],
      ['log.line', undefined, undefined],
    ]);
  });

  it('config errors name the problem', () => {
    const r = logTailConfigSchema.safeParse({
      type: 'log_tail',
      name: 'x',
      include: ['/a'],
      parser: { type: 'regex', pattern: '(', mapping: { bogus: '{x}' } },
    });
    expect(r.success).toBe(false);
    const messages = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages.some((m) => m.startsWith('parser.pattern: not a valid regular expression'))).toBe(true);
    expect(messages.some((m) => m.startsWith('parser.mapping.bogus: not an event field'))).toBe(true);
  });
});

describe('log_tail', () => {
  let kit: Kit;
  let dir: string;
  let tail: LogTail | null = null;

  beforeEach(async () => {
    kit = await makeKit();
    dir = join(kit.dir, 'logs');
    mkdirSync(dir);
  });
  afterEach(async () => {
    await tail?.stop();
    tail = null;
    await kit.close();
  });

  const config = (extra: Record<string, unknown> = {}) =>
    logTailConfigSchema.parse({
      type: 'log_tail',
      name: 'app',
      include: [join(dir, '*.log')],
      poll_interval: '20ms',
      glob_interval: '20ms',
      rotate_wait: '300ms',
      ...extra,
    });

  async function run(extra?: Record<string, unknown>): Promise<LogTail> {
    tail = new LogTail(kit.settings, config(extra));
    await tail.start();
    return tail;
  }

  async function restart(extra?: Record<string, unknown>): Promise<void> {
    await tail?.stop();
    tail = null;
    await kit.reopen();
    await run(extra);
  }

  const lines = async () =>
    (await kit.events()).filter((e) => e.type === 'log.line').map((e) => e.message ?? '');

  /** The kit's journal, but the `failOn`-th appends with events fail late (after 30 ms), as a full disk does. */
  function failingJournal(failOn: number[]) {
    let batches = 0;
    const journal = {
      position: (name: string) => kit.journal.position(name),
      append: async (req: Parameters<Journal['append']>[0]) => {
        if (req.events.length > 0 && failOn.includes(++batches)) {
          await new Promise((r) => setTimeout(r, 30));
          throw new SealtrailError('ST_JOURNAL_WRITE', 'journal write failed (ENOSPC)', { retryable: true });
        }
        return kit.journal.append(req);
      },
    } as unknown as Journal;
    return { journal, batches: () => batches };
  }

  it('start_at end skips existing content on the first run; new lines are read', async () => {
    writeFileSync(join(dir, 'a.log'), 'old 1\nold 2\n');
    await run();
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    appendFileSync(join(dir, 'a.log'), 'new 1\nnew 2\n');
    await waitUntil('lines', async () => (await lines()).length === 2);
    expect(await lines()).toEqual(['new 1', 'new 2']);
  });

  it('start_at beginning reads existing content; a file created later is read from its start', async () => {
    writeFileSync(join(dir, 'a.log'), 'a1\na2\n');
    await run({ start_at: 'beginning' });
    await waitUntil('a', async () => (await lines()).length === 2);
    writeFileSync(join(dir, 'b.log'), 'b1\n');
    await waitUntil('b', async () => (await lines()).length === 3);
    expect(await lines()).toEqual(['a1', 'a2', 'b1']);
    const e = (await kit.events()).at(-1)!;
    expect(e.source).toEqual({ kind: 'log_tail', name: 'app' });
    expect(e.attributes).toMatchObject({ file: join(dir, 'b.log'), offset: 0 });
  });

  it('holds a partial last line until it is complete, across a restart', async () => {
    const f = join(dir, 'a.log');
    writeFileSync(f, '');
    await run();
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    appendFileSync(f, 'one\r\ntw');
    await waitUntil('one', async () => (await lines()).length === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(await lines()).toEqual(['one']);
    await restart();
    appendFileSync(f, 'o\nthree\n');
    await waitUntil('rest', async () => (await lines()).length === 3);
    expect(await lines()).toEqual(['one', 'two', 'three']);
  });

  it('resumes after a restart without loss or duplicates, including lines written while stopped', async () => {
    const f = join(dir, 'a.log');
    writeFileSync(f, '');
    await run();
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    appendFileSync(f, Array.from({ length: 100 }, (_, i) => `l${i}\n`).join(''));
    await waitUntil('100', async () => (await lines()).length === 100);
    await tail!.stop();
    tail = null;
    appendFileSync(f, Array.from({ length: 50 }, (_, i) => `l${100 + i}\n`).join(''));
    await kit.reopen();
    await run();
    await waitUntil('150', async () => (await lines()).length >= 150);
    await new Promise((r) => setTimeout(r, 100));
    expect(await lines()).toEqual(Array.from({ length: 150 }, (_, i) => `l${i}`));
  });

  it('a failed journal write loses nothing: its lines and every later batch are read again', async () => {
    const f = join(dir, 'a.log');
    const all = Array.from({ length: 20_000 }, (_, i) => `l${i}`);
    writeFileSync(f, `${all.join('\n')}\n`);
    // The 3rd and 7th batches with events fail, late: the next chunk is parsed (and, before
    // the fix, sealed with a position past the failed lines) while they are "being written".
    const failing = failingJournal([3, 7]);
    tail = new LogTail(
      { ...kit.settings, journal: failing.journal },
      config({ start_at: 'beginning', read_chunk_bytes: '4KiB', poll_interval: '5ms' }),
    );
    await tail.start();
    await waitUntil('every line', async () => (await lines()).length >= all.length, 20_000);
    await tail.stop();
    tail = null;
    expect(failing.batches()).toBeGreaterThan(7);
    expect(await lines()).toEqual(all);
  });

  it('a failed journal write loses nothing and repeats nothing of linux_audit groups that span chunks', async () => {
    const f = join(dir, 'audit.log');
    // The testdata 400 times over, each copy with its own serials: 8,800 records, groups cut by chunks.
    const sample = readFileSync(join(TESTDATA, 'audit.log'), 'utf8').trim().split('\n');
    const text = Array.from({ length: 400 }, (_, k) =>
      sample.map((l) => l.replace(/:(\d+)\)/, (_m, s) => `:${Number(s) + 100_000 * (k + 1)})`)).join('\n'),
    ).join('\n');
    writeFileSync(f, `${text}\n`);
    const expected = (() => {
      const p = createParser(logTailConfigSchema.shape.parser.parse('linux_audit'));
      const out: EventDraft[] = [];
      let offset = 0;
      for (const line of text.split('\n')) {
        out.push(...p.push(line, { path: f, offset, now: NOW }));
        offset += Buffer.byteLength(line) + 1;
      }
      out.push(...p.flush(NOW, 0));
      return out.map((d) => `${d.type} ${d.attributes?.audit_serial ?? d.message}`);
    })();
    const failing = failingJournal([2, 5, 9]);
    tail = new LogTail(
      { ...kit.settings, journal: failing.journal },
      config({
        start_at: 'beginning',
        parser: 'linux_audit',
        read_chunk_bytes: '2KiB',
        poll_interval: '5ms',
      }),
    );
    await tail.start();
    const sealed = async () =>
      (await kit.events())
        .filter((e) => e.source.name === 'app')
        .map((e) => `${e.type} ${e.attributes?.audit_serial ?? e.message}`);
    await waitUntil('every group', async () => (await sealed()).length >= expected.length, 20_000);
    await tail.stop();
    tail = null;
    expect(failing.batches()).toBeGreaterThan(9);
    expect(await sealed()).toEqual(expected);
  });

  it('cuts over-long lines at max_line_bytes and says so', async () => {
    const f = join(dir, 'a.log');
    writeFileSync(f, '');
    await run({ max_line_bytes: 16 });
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    appendFileSync(f, `short\n${'x'.repeat(40)}\nafter\n${'y'.repeat(20)}`);
    await waitUntil('lines', async () => (await lines()).length === 4);
    const events = (await kit.events()).filter((e) => e.type === 'log.line');
    expect(events.map((e) => e.message)).toEqual(['short', 'x'.repeat(16), 'after', 'y'.repeat(16)]);
    expect(events[1]!.attributes).toMatchObject({ truncated: true, original_bytes: 40 });
    expect(events[3]!.attributes).toMatchObject({ truncated: true });
    appendFileSync(f, 'yyyy\nnext\n');
    await waitUntil('next', async () => (await lines()).length === 5);
    expect((await lines()).at(-1)).toBe('next');
  });

  it('detects truncation and reads the file again from the start', async () => {
    const f = join(dir, 'a.log');
    writeFileSync(f, '');
    await run();
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    appendFileSync(f, 'before 1\nbefore 2\n');
    await waitUntil('2', async () => (await lines()).length === 2);
    truncateSync(f, 0);
    appendFileSync(f, 'after 1\n');
    await waitUntil('after', async () => (await lines()).length === 3);
    expect(await lines()).toEqual(['before 1', 'before 2', 'after 1']);
    expect((await kit.events()).some((e) => e.type === 'log.file.truncated')).toBe(true);
  });

  it('drains a file that was rotated by rename while the agent was stopped', async () => {
    const f = join(dir, 'a.log');
    writeFileSync(f, '');
    await run({ include: [f] });
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    appendFileSync(f, 'first\n');
    await waitUntil('first', async () => (await lines()).length === 1);
    await tail!.stop();
    tail = null;
    appendFileSync(f, 'late\n');
    renameSync(f, `${f}.1`);
    writeFileSync(f, 'new file\n');
    await kit.reopen();
    await run({ include: [f] });
    await waitUntil('3', async () => (await lines()).length === 3);
    expect(await lines()).toEqual(['first', 'late', 'new file']);
  });

  it('parses with linux_auth while tailing', async () => {
    const f = join(dir, 'auth.log');
    writeFileSync(f, readFileSync(join(TESTDATA, 'auth.log')));
    await run({ include: [f], start_at: 'beginning', parser: 'linux_auth' });
    await waitUntil('all', async () => (await kit.events()).length >= 40);
    const events = await kit.events();
    expect(events.filter((e) => e.type === 'auth.login.failure')).toHaveLength(3);
    expect(events.every((e: AuditEvent) => e.source.kind === 'log_tail')).toBe(true);
  });

  function writer(path: string, total: number, mode: 'rename' | 'copytruncate', every: number, window = 0) {
    return new Promise<void>((resolve, reject) => {
      execFile(
        process.execPath,
        [join(TESTDATA, 'writer.mjs'), path, String(total), mode, String(every), String(window)],
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }

  /** Waits until nothing new was sealed for 2.5 s (a 1 MiB chunk can take a second on a loaded machine). */
  async function settle(): Promise<void> {
    let last = -1;
    let stable = 0;
    await waitUntil(
      'sealing to settle',
      async () => {
        await new Promise((r) => setTimeout(r, 500));
        const head = Number(kit.journal.head?.seq ?? 0n);
        stable = head === last ? stable + 1 : 0;
        last = head;
        return stable >= 5;
      },
      120_000,
    );
  }

  const numbers = async () =>
    (await kit.rawEvents())
      .filter((e) => e.type === 'log.line')
      .map((e) => Number(/^line (\d+) /.exec(e.message ?? '')?.[1] ?? Number.NaN));

  it('rename rotation under a fast writer: 100,000 lines, each exactly once, in order per file', async () => {
    const f = join(dir, 'app.log');
    writeFileSync(f, '');
    const N = 100_000;
    const EVERY = 20_000;
    // Rotated names are included (as operators should configure it): a generation that lives at
    // app.log for less than one discovery interval is still found, by its new name.
    await run({ include: [`${f}*`] });
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    const t0 = Date.now();
    await writer(f, N, 'rename', EVERY);
    await waitUntil('all lines', () => Number(kit.journal.head?.seq ?? 0n) >= N, 120_000);
    console.log(`rename rotation: ${N} lines sealed ${Date.now() - t0} ms after the writer started`);
    await new Promise((r) => setTimeout(r, 300));
    const got = await numbers();
    expect(got.length).toBe(N);
    expect(new Set(got).size).toBe(N);
    // each writer file holds lines ((k-1)*EVERY, k*EVERY]: within it, sealed in order
    for (let k = 0; k < N / EVERY; k++) {
      const part = got.filter((n) => n > k * EVERY && n <= (k + 1) * EVERY);
      expect(part).toEqual(Array.from({ length: EVERY }, (_, i) => k * EVERY + i + 1));
    }
  }, 180_000);

  it('copytruncate rotation under a fast writer: no duplicates, loss limited to the copy window', async () => {
    const f = join(dir, 'app.log');
    writeFileSync(f, '');
    const N = 100_000;
    const EVERY = 20_000;
    // The copies (app.log.1 …) are included: lines not yet read when the copy was taken are read from it.
    await run({ include: [`${f}*`] });
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    await writer(f, N, 'copytruncate', EVERY);
    await settle();
    const got = await numbers();
    expect(new Set(got).size).toBe(got.length); // no duplicates
    // Per generation (the lines between two rotations): what was sealed is its first lines, in
    // order; anything missing is its tail, written after the copy and before the truncate.
    let lost = 0;
    for (let k = 0; k < N / EVERY; k++) {
      const part = got.filter((n) => n > k * EVERY && n <= (k + 1) * EVERY).sort((a, b) => a - b);
      expect(part).toEqual(Array.from({ length: part.length }, (_, i) => k * EVERY + i + 1));
      lost += EVERY - part.length;
    }
    console.log(
      `copytruncate: ${N} lines, ${N / EVERY - 1} rotations, ${lost} lines lost in copy→truncate windows`,
    );
    // This writer truncates right after copying (no line is written in between): nothing may be lost.
    expect(lost).toBe(0);
  }, 180_000);

  /** One more pass of the tailer's loop: a line appended to another file, sealed. */
  let ticks = 0;
  async function tick(): Promise<void> {
    const want = ++ticks;
    appendFileSync(join(dir, 'tick.log'), `tick ${want}\n`);
    await waitUntil(`tick ${want}`, async () => (await lines()).includes(`tick ${want}`));
  }
  /** Two passes: the later one started after the first was sealed, so its discovery saw what is on disk now. */
  const passes = async () => {
    await tick();
    await tick();
  };
  const sealedLines = async () => (await lines()).filter((l) => !l.startsWith('tick '));
  /** Tails app.log* and tick.log, discovering on every pass; returns app.log's path. */
  async function runWithTicks(): Promise<string> {
    const f = join(dir, 'app.log');
    writeFileSync(f, '');
    writeFileSync(join(dir, 'tick.log'), '');
    await run({ include: [`${f}*`, join(dir, 'tick.log')], glob_interval: '1ms' });
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    return f;
  }

  it('copytruncate: a copy found while it is still being written (empty, then shorter than a fingerprint) is not read as a new file', async () => {
    const f = await runWithTicks();
    const gen = (from: number) =>
      Array.from({ length: 50 }, (_, i) => `line ${from + i} ${'x'.repeat(40)}\n`).join('');
    let expected: string[] = [];
    for (const [k, firstSight] of [
      [1, 0],
      [2, 100],
    ] as const) {
      const content = gen(k * 100);
      appendFileSync(f, content);
      expected = [...expected, ...content.trim().split('\n')];
      await waitUntil(`generation ${k}`, async () => (await sealedLines()).length === expected.length);
      // logrotate's copy as the tailer can catch it: created, then `firstSight` bytes (fewer than
      // fingerprint_bytes), then the rest; the original is truncated after the copy is complete.
      const copy = `${f}.${k}`;
      writeFileSync(copy, content.slice(0, firstSight));
      await passes();
      appendFileSync(copy, content.slice(firstSight, 200));
      await passes();
      appendFileSync(copy, content.slice(200));
      truncateSync(f, 0);
      await passes();
    }
    appendFileSync(f, 'after\n');
    await waitUntil('after', async () => (await sealedLines()).includes('after'));
    await passes();
    expect(await sealedLines()).toEqual([...expected, 'after']);
  });

  it('copytruncate of a file shorter than a fingerprint: the copy is read from where the original stopped', async () => {
    const f = await runWithTicks();
    appendFileSync(f, 'one\ntwo\n');
    await waitUntil('two', async () => (await sealedLines()).length === 2);
    // A backup (cp) of a file not truncated is never read.
    writeFileSync(`${f}.bak`, 'one\ntwo\n');
    await passes();
    expect(await sealedLines()).toEqual(['one', 'two']);
    // copytruncate; the copy also holds a line the tailer had not read yet.
    appendFileSync(f, 'three\n');
    writeFileSync(`${f}.1`, 'one\ntwo\nthree\n');
    truncateSync(f, 0);
    appendFileSync(f, 'four\n');
    await waitUntil('four', async () => (await sealedLines()).includes('four'));
    await passes();
    const got = await sealedLines();
    expect(got.filter((l) => l !== 'three')).toEqual(['one', 'two', 'four']);
    expect(got.filter((l) => l === 'three')).toHaveLength(1);
  });

  it('copytruncate while the agent was stopped: the copy is read from where the original stopped', async () => {
    const f = join(dir, 'app.log');
    writeFileSync(f, '');
    // The copy's name sorts before the original's, so it may be found first.
    await run({ include: [`${f}*`, join(dir, 'a-copy.log')] });
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    const before = Array.from({ length: 20 }, (_, i) => `before ${i} ${'x'.repeat(20)}`);
    appendFileSync(f, `${before.join('\n')}\n`);
    await waitUntil('before', async () => (await lines()).length === 20);
    await tail!.stop();
    tail = null;
    appendFileSync(f, 'late\n');
    writeFileSync(join(dir, 'a-copy.log'), readFileSync(f));
    truncateSync(f, 0);
    appendFileSync(f, 'after\n');
    await kit.reopen();
    await run({ include: [`${f}*`, join(dir, 'a-copy.log')] });
    await waitUntil('after', async () => (await lines()).includes('after'));
    await new Promise((r) => setTimeout(r, 200));
    const got = await lines();
    // each once; the two files are read in either order
    expect(got.slice(0, 20)).toEqual(before);
    expect(got.slice(20).sort()).toEqual(['after', 'late']);
  });

  it('copytruncate: lines written between copy and truncate are the only loss (measured)', async () => {
    const f = join(dir, 'app.log');
    writeFileSync(f, '');
    const N = 10_000;
    const EVERY = 2_000;
    const WINDOW = 25;
    await run({ include: [`${f}*`] });
    await waitUntil('position saved', async () => (await kit.journal.position('app')) !== undefined);
    await writer(f, N, 'copytruncate', EVERY, WINDOW);
    await settle();
    const got = new Set(await numbers());
    const missing = Array.from({ length: N }, (_, i) => i + 1).filter((n) => !got.has(n));
    const windows = Array.from({ length: N / EVERY - 1 }, (_, k) =>
      Array.from({ length: WINDOW }, (_, i) => (k + 1) * EVERY + i + 1),
    ).flat();
    expect(missing).toEqual(windows);
    console.log(
      `copytruncate with a ${WINDOW}-line copy→truncate window: ${missing.length} of ${N} lost, all in the windows`,
    );
  }, 60_000);
});
