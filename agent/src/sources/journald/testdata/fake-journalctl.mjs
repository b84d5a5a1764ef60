#!/usr/bin/env node
// A stand-in for `journalctl -o json --follow` run as a real child process: prints the entries
// of $FAKE_JOURNAL (one JSON object per line, each with __CURSOR) after --after-cursor (or the
// last --lines=N; all with --no-tail), then follows the file for appended entries. Appends its
// argv to $FAKE_JOURNAL.args so tests can check the flags.
import { appendFileSync, readFileSync } from 'node:fs';

const file = process.env.FAKE_JOURNAL;
const args = process.argv.slice(2);
appendFileSync(`${file}.args`, `${JSON.stringify(args)}\n`);
const after = args.includes('--after-cursor') ? args[args.indexOf('--after-cursor') + 1] : null;
const linesArg = args.find((a) => a.startsWith('--lines='));
const read = () =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
let entries = read();
let start = 0;
if (after !== null) {
  start = entries.findIndex((e) => e.__CURSOR === after) + 1;
  if (start === 0) {
    // as journalctl does when the cursor is gone from the journal
    process.stderr.write('Failed to seek to cursor: Invalid argument\n');
    process.exit(1);
  }
} else if (linesArg) start = Math.max(0, entries.length - Number(linesArg.slice(8)));
else if (!args.includes('--no-tail')) start = Math.max(0, entries.length - 10);
let printed = start;
const flush = () => {
  entries = read();
  while (printed < entries.length) process.stdout.write(`${JSON.stringify(entries[printed++])}\n`);
};
flush();
if (process.env.FAKE_JOURNAL_EXIT) process.exit(Number(process.env.FAKE_JOURNAL_EXIT));
if (args.includes('--follow')) setInterval(flush, 20);
