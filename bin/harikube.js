#!/usr/bin/env node
// Runs the compiled CLI (`npm run build` first). During development use `npm start` or `tsx middleware/src/cli.ts`.
import { run } from '../dist/middleware/src/cli.js';

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`harikube: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
