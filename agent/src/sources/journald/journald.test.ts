import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Kit, makeKit, waitUntil } from '../common/testkit.js';
import { journaldConfigSchema } from './config.js';
import { entryToDraft, findExecutable, Journald } from './journald.js';

const FAKE = fileURLToPath(new URL('./testdata/fake-journalctl.mjs', import.meta.url));

let n = 0;
function entry(message: string | number[], extra: Record<string, string> = {}) {
  n++;
  return {
    __CURSOR: `s=abc;i=${n}`,
    __REALTIME_TIMESTAMP: String(Date.UTC(2024, 2, 3, 10, 0, n) * 1000),
    PRIORITY: '6',
    SYSLOG_IDENTIFIER: 'sshd',
    _PID: '1201',
    _SYSTEMD_UNIT: 'ssh.service',
    _HOSTNAME: 'web1',
    MESSAGE: message,
    ...extra,
  };
}

describe('journald', () => {
  let kit: Kit;
  let src: Journald | null = null;
  let journal: string;

  beforeEach(async () => {
    kit = await makeKit();
    journal = join(kit.dir, 'journal.jsonl');
    writeFileSync(journal, '');
    process.env.FAKE_JOURNAL = journal;
  });
  afterEach(async () => {
    await src?.stop();
    src = null;
    delete process.env.FAKE_JOURNAL_EXIT;
    await kit.close();
  });

  const write = (...entries: object[]) =>
    appendFileSync(journal, entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
  const config = (extra: Record<string, unknown> = {}) =>
    journaldConfigSchema.parse({
      type: 'journald',
      name: 'journal',
      journalctl_path: FAKE,
      restart_delay: '50ms',
      ...extra,
    });

  it('a missing journalctl is a clear start-up error of this source', async () => {
    src = new Journald(kit.settings, config({ journalctl_path: 'no-such-journalctl' }));
    await expect(src.start()).rejects.toMatchObject({
      code: 'ST_JOURNALD_UNAVAILABLE',
      message: expect.stringContaining('journald source "journal": no-such-journalctl not found in PATH'),
    });
    expect(findExecutable('sh')).not.toBeNull();
  });

  it('follows entries, parses auth messages, and resumes from the saved cursor', async () => {
    write(entry('old entry before the agent started'));
    src = new Journald(kit.settings, config());
    await src.start();
    // start_at end: only entries after journalctl started count; wait until it has.
    await waitUntil('journalctl started', () => existsSync(`${journal}.args`));
    await new Promise((r) => setTimeout(r, 300));
    write(
      entry('Accepted publickey for deploy from 10.0.0.7 port 40022 ssh2: ED25519 SHA256:x'),
      entry('Server listening on 0.0.0.0 port 22.'),
    );
    await waitUntil('2 events', async () => (await kit.events()).length === 2);
    const [login, other] = await kit.events();
    expect(login).toMatchObject({
      type: 'auth.login.success',
      source: { kind: 'journald', name: 'journal' },
      actor: { user: 'deploy', ip: '10.0.0.7' },
      attributes: { unit: 'ssh.service', program: 'sshd', pid: 1201 },
    });
    expect(login!.time).toBe('2024-03-03T10:00:02.000Z');
    expect(other).toMatchObject({ type: 'log.line', message: 'Server listening on 0.0.0.0 port 22.' });
    expect(await kit.journal.position('journal')).toEqual({ version: 1, cursor: `s=abc;i=${n}` });

    await src.stop();
    src = null;
    write(entry('written while the agent was stopped'));
    await kit.reopen();
    src = new Journald(kit.settings, config());
    await src.start();
    await waitUntil('3 events', async () => (await kit.events()).length === 3);
    await new Promise((r) => setTimeout(r, 100));
    expect((await kit.events()).map((e) => e.message)).toEqual([
      'Accepted publickey for deploy from 10.0.0.7 port 40022 ssh2: ED25519 SHA256:x',
      'Server listening on 0.0.0.0 port 22.',
      'written while the agent was stopped',
    ]);
    const args = readFileSync(`${journal}.args`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[]);
    expect(args[0]).toContain('--lines=0');
    expect(args[1]).toEqual(expect.arrayContaining(['--after-cursor', `s=abc;i=${n - 1}`]));
  });

  it('passes unit, identifier and priority filters to journalctl', () => {
    src = new Journald(
      kit.settings,
      config({ units: ['ssh.service'], identifiers: ['sudo'], priority: 'warning', start_at: 'beginning' }),
    );
    expect(src.args()).toEqual([
      '-o',
      'json',
      '--follow',
      '--no-pager',
      '--no-tail',
      '-u',
      'ssh.service',
      '-t',
      'sudo',
      '-p',
      '0..4',
    ]);
  });

  it('starts journalctl again when it exits, without losing entries', async () => {
    process.env.FAKE_JOURNAL_EXIT = '1';
    src = new Journald(kit.settings, config({ start_at: 'beginning' }));
    await src.start();
    write(entry('one'));
    await waitUntil('one', async () => (await kit.events()).length === 1);
    write(entry('two'));
    await waitUntil('two', async () => (await kit.events()).length === 2);
    expect((await kit.events()).map((e) => e.message)).toEqual(['one', 'two']);
  });

  it('a cursor journalctl no longer knows: the gap is sealed and following resumes from now', async () => {
    await kit.journal.append({ events: [], positions: { journal: { version: 1, cursor: 's=gone;i=1' } } });
    src = new Journald(kit.settings, config());
    await src.start();
    await waitUntil('cursor_lost', async () =>
      (await kit.events()).some((e) => e.type === 'agent.journald.cursor_lost'),
    );
    await waitUntil('restarted without the cursor', () =>
      readFileSync(`${journal}.args`, 'utf8')
        .trim()
        .split('\n')
        .some((l) => l.includes('--lines=0')),
    );
    await new Promise((r) => setTimeout(r, 300));
    write(entry('after the gap'));
    await waitUntil('new entry', async () => (await kit.events()).some((e) => e.message === 'after the gap'));
  });

  it('maps binary messages and priorities', () => {
    const d = entryToDraft(entry([104, 105], { PRIORITY: '3', SYSLOG_IDENTIFIER: 'kernel' }), 'linux_auth');
    expect(d).toMatchObject({
      type: 'log.line',
      message: 'hi',
      severity: 'high',
      attributes: { priority: 3 },
    });
  });
});
