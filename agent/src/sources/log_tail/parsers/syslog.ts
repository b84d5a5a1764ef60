/**
 * The header rsyslog and syslog-ng put before a message in /var/log files:
 *   RFC 3164:  `Mar  3 10:15:01 web1 sshd[1234]: message`           (local time, no year)
 *   RFC 3339:  `2024-03-03T10:15:01.123456+00:00 web1 sshd[1234]: message`  (Debian 12+ default)
 */
export interface SyslogLine {
  time: Date | undefined;
  host: string;
  program: string;
  pid: string | undefined;
  message: string;
}

// Groups: 1 the RFC 3164 time text (2 month, 3 day, 4–6 h:m:s), 7 the RFC 3339 time,
// 8 host, 9 program, 10 pid, 11 message.
const HEADER =
  /^(?:(([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d))|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)) +(\S+) +([^\s[:]+)(?:\[(\d+)\])?: ?(.*)$/;
const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

/**
 * The last header time text (with, for RFC 3164, the year it was read in; -1 for RFC 3339)
 * and its Date: consecutive lines mostly share their second, and building a local-time Date
 * is a large part of a line's parse. The key is the matched text itself, so a hit builds
 * no string and no closure. The Date is shared between lines, never changed.
 */
let lastKey = '';
let lastYear = -2;
let lastDate: Date | undefined;
let yearOf: { now: Date; year: number } | null = null;

function localTime(m: RegExpExecArray, month: number, year: number): Date {
  return new Date(year, month, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

export function parseSyslog(line: string, now: Date): SyslogLine | null {
  const m = HEADER.exec(line);
  if (!m) return null;
  let time: Date | undefined;
  const iso = m[7];
  if (iso) {
    if (iso !== lastKey || lastYear !== -1) {
      const d = new Date(iso);
      lastDate = Number.isNaN(d.getTime()) ? undefined : d;
      lastKey = iso;
      lastYear = -1;
    }
    time = lastDate;
  } else {
    const month = MONTHS[m[2]!];
    if (month !== undefined) {
      if (yearOf?.now !== now) yearOf = { now, year: now.getFullYear() };
      const year = yearOf.year;
      const text = m[1]!;
      if (text !== lastKey || year !== lastYear) {
        lastDate = localTime(m, month, year);
        lastKey = text;
        lastYear = year;
      }
      time = lastDate;
      // No year in RFC 3164: this year, unless that lands more than a day ahead (a December line read in January).
      if (time!.getTime() > now.getTime() + 86_400_000) time = localTime(m, month, year - 1);
    }
  }
  return { time, host: m[8]!, program: m[9]!, pid: m[10], message: m[11]! };
}

/** `key=value key2=value2` as PAM and shadow-utils write them (values may be empty). */
export function keyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([A-Za-z_][\w-]*)=("[^"]*"|'[^']*'|[^\s,;]*)/g)) {
    let v = m[2]!;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[m[1]!] = v;
  }
  return out;
}
