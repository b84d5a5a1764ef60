/** The journal's keyed state store ('s' prefix): written in the events' batch, namespaced, invisible to records. */
import { describe, expect, it } from 'vitest';
import { makeKit } from '../sources/common/testkit.js';

describe('journal state store', () => {
  it('writes state with events, deletes, keeps namespaces apart, survives a reopen', async () => {
    const kit = await makeKit();
    const j = () => kit.journal;
    const ev = Buffer.from('{"x":1}');
    await j().append({
      events: [ev],
      state: [
        { ns: 'fim/a', key: '/etc/passwd', value: { h: '1' } },
        { ns: 'fim/a', key: '/etc/group', value: { h: '2' } },
        { ns: 'fim/ab', key: '/etc/hosts', value: { h: '3' } },
      ],
      positions: { a: { baseline: 'complete' } },
    });
    await j().append({ events: [], state: [{ ns: 'fim/a', key: '/etc/group', value: null }] });
    await kit.reopen();
    const entries = [];
    for await (const e of j().stateEntries('fim/a')) entries.push(e);
    expect(entries).toEqual([['/etc/passwd', { h: '1' }]]);
    const keys = [];
    for await (const k of j().stateKeys('fim/a')) keys.push(k);
    expect(keys).toEqual(['/etc/passwd']);
    expect(await j().getState('fim/ab', '/etc/hosts')).toEqual({ h: '3' });
    expect(await j().getState('fim/a', '/etc/group')).toBeUndefined();
    expect(await j().position('a')).toEqual({ baseline: 'complete' });
    const seqs = [];
    for await (const r of j().records()) seqs.push(r.seq);
    expect(seqs).toEqual([0n, 1n]); // the chain start and the one event: state is not a record
    await expect(
      j().append({ events: [], state: [{ ns: 'bad\0ns', key: 'k', value: 1 }] }),
    ).rejects.toMatchObject({
      code: 'ST_JOURNAL_STATE_NS',
    });
    await kit.close();
  });
});
