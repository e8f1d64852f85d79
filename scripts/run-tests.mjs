#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node:test through tsx.
// Node 20's --test does not expand globs, so the files are listed here.
// Extra arguments are passed through (e.g. a file list or --test-name-pattern).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(find(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const args = process.argv.slice(2);
const files = args.some((a) => a.endsWith('.ts')) ? [] : [...find('src'), ...find('test')].sort();
// test-timeout.mjs gives every test a 60 s timeout unless it sets its own;
// --test-timeout stays a 10-minute guard on each whole file (under --test it
// bounds files and suites, not single tests).
const result = spawnSync(process.execPath, ['--import', 'tsx', '--import', './scripts/test-timeout.mjs', '--test', '--test-concurrency=2', '--test-timeout=600000', ...args, ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
