import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSyslog } from './syslog.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

describe('parseSyslog: header time, cached from line to line', () => {
  it('reads RFC 3164 and RFC 3339 times as a fresh parse would, whatever came before', () => {
    const line = fc.record({
      iso: fc.boolean(),
      month: fc.integer({ min: 0, max: 11 }),
      day: fc.integer({ min: 1, max: 28 }),
      h: fc.integer({ min: 0, max: 23 }),
      mi: fc.integer({ min: 0, max: 1 }),
      s: fc.integer({ min: 0, max: 1 }),
      // Two readers a year apart: the same text must not keep the other year's Date.
      nowYear: fc.constantFrom(2024, 2025),
    });
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 30 }), (ls) => {
        for (const l of ls) {
          const now = new Date(l.nowYear, 11, 31, 23, 0, 0);
          const time = l.iso
            ? `2024-${two(l.month + 1)}-${two(l.day)}T${two(l.h)}:${two(l.mi)}:${two(l.s)}Z`
            : `${MONTHS[l.month]} ${String(l.day).padStart(2, ' ')} ${two(l.h)}:${two(l.mi)}:${two(l.s)}`;
          const s = parseSyslog(`${time} web1 sshd[12]: hello`, now);
          const want = l.iso ? new Date(time) : new Date(l.nowYear, l.month, l.day, l.h, l.mi, l.s);
          expect(s?.time?.getTime()).toBe(want.getTime());
          expect([s?.host, s?.program, s?.pid, s?.message]).toEqual(['web1', 'sshd', '12', 'hello']);
        }
      }),
    );
  });

  it('puts a December line read in January in the year before', () => {
    const now = new Date(2025, 0, 2, 8, 0, 0);
    expect(parseSyslog('Dec 31 23:59:59 h cron: x', now)?.time?.getTime()).toBe(
      new Date(2024, 11, 31, 23, 59, 59).getTime(),
    );
    expect(parseSyslog('Jan  2 07:00:00 h cron: x', now)?.time?.getTime()).toBe(
      new Date(2025, 0, 2, 7, 0, 0).getTime(),
    );
    expect(parseSyslog('Foo  2 07:00:00 h cron: x', now)?.time).toBeUndefined();
    expect(parseSyslog('2024-13-45T00:00:00Z h cron: x', now)?.time).toBeUndefined();
  });
});
