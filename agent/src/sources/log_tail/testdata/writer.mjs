// Test helper run as a real child process: appends numbered lines as fast as it can,
// rotating the file every `every` lines by rename (app.log → app.log.<k>, new app.log)
// or by copytruncate (copy app.log → app.log.<k>, truncate app.log in place).
// With copytruncate, `window` lines are written after the copy and before the truncate: they
// are in neither file, the loss no tailer can avoid. Prints { lines, rotations, lost } at the end.
import { closeSync, copyFileSync, ftruncateSync, openSync, renameSync, writeSync } from 'node:fs';

const [path, totalArg, mode, everyArg, windowArg] = process.argv.slice(2);
const window = Number(windowArg ?? 0);
const total = Number(totalArg);
const every = Number(everyArg);
const pad = 'x'.repeat(40);
let fd = openSync(path, 'a');
let rotations = 0;
let batch = [];
for (let n = 1; n <= total; n++) {
  batch.push(`line ${n} ${pad}\n`);
  if (batch.length === 100 || n === total || n % every === 0) {
    writeSync(fd, batch.join(''));
    batch = [];
  }
  if (n % every === 0 && n < total) {
    rotations++;
    if (mode === 'rename') {
      closeSync(fd);
      renameSync(path, `${path}.${rotations}`);
      fd = openSync(path, 'a');
    } else {
      copyFileSync(path, `${path}.${rotations}`);
      let w = '';
      for (let i = 0; i < window && n < total; i++) w += `line ${++n} ${pad}\n`;
      if (w) writeSync(fd, w);
      ftruncateSync(fd, 0);
    }
  }
}
closeSync(fd);
process.stdout.write(
  `${JSON.stringify({ lines: total, rotations, lost: mode === 'rename' ? 0 : rotations * window })}\n`,
);
