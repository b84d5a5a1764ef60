#!/usr/bin/env node
// Runs the compiled CLI (`npm run build` first).
import('../dist/main.js')
  .then((m) => m.main(process.argv.slice(2)))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
