#!/usr/bin/env node
'use strict';
// `npx changegate ...` from the project: the TypeScript source through tsx when the dev tools are installed (always
// the checked-out code), the compiled CLI otherwise (an image with production dependencies only).
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const source = join(__dirname, '..', 'src', 'cli', 'changegate.ts');
let useSource = existsSync(source);
if (useSource) {
  try {
    require('tsx/cjs');
  } catch {
    useSource = false;
  }
}
const { run } = require(useSource ? source : join(__dirname, '..', 'dist', 'src', 'cli', 'changegate.js'));
process.exitCode = run(process.argv.slice(2), (l) => process.stdout.write(`${l}\n`), (l) => process.stderr.write(`${l}\n`));
