#!/usr/bin/env node
// Runs the compiled CLI in dist/, which `npm install` / `npm ci` builds (the
// package's prepare script). Plain JavaScript: no TypeScript loader at run time.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/index.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  // A checkout that was never built. With tsx installed (development) the
  // sources still run, more slowly; say so, and how to build.
  process.stderr.write('twoway: dist/ is missing: run "npm run build" (or npm install); running the TypeScript sources through tsx meanwhile\n');
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write('twoway: tsx is not installed either; build dist/ with "npm run build"\n');
    process.exit(3);
  }
  register();
  await import('../src/cli/index.ts');
}
