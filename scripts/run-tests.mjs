#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node:test through tsx.
// Node 20's --test does not expand globs, so the files are listed here.
// Extra arguments are passed through (e.g. a file list or --test-name-pattern).
//
// The whole suite runs in two phases. Most files wait on sockets, child
// processes and peers far more than they compute, so they run several at a
// time (TWOWAY_TEST_CONCURRENCY, 3 by default on this 2-core kind of
// machine). Files whose first lines say `test-exclusive:` (with the reason)
// measure latency under an attack they create, which only means something
// when nothing else loads the machine: they run afterwards, one at a time.
// Each phase prints node:test's own summary; the last line adds them up.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

const NODE_ARGS = ['--import', 'tsx', '--import', './scripts/test-timeout.mjs', '--test'];
// --test-timeout stays a 10-minute guard on each whole file (under --test it
// bounds files and suites, not single tests); test-timeout.mjs gives every
// test its 60 s.
const FILE_GUARD = '--test-timeout=600000';

const args = process.argv.slice(2);
if (args.some((a) => a.endsWith('.ts'))) {
  // Named files: one run, as before.
  const r = spawnSync(process.execPath, [...NODE_ARGS, '--test-concurrency=2', FILE_GUARD, ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

// The slowest files (seconds in a full run on this 2-core kind of machine, 2026-12-04) start
// first: in name order most of them came last, and the run ended with one or two of them
// alone on the machine. A file not listed (or renamed) still runs, in name order after these.
const SLOW_FIRST = [
  'test/extension-chromium-network.test.ts', // ~100 (measured under load)
  'test/extension-chromium-prompt.test.ts', // ~95 (measured under load)
  'test/processes.test.ts', // 82
  'test/twm-dnssec.test.ts', // 57
  'test/web-mail-browser.test.ts', // 42
  'test/crash-twm.test.ts', // 36
  'test/web-browser.test.ts', // 35
  'test/decisions.test.ts', // 34
  'test/web-compose-browser.test.ts', // 31
  'test/web-contacts-browser.test.ts', // 30
  'test/spam-imap.test.ts', // 28
  'test/crash-safety.test.ts', // 27
  'test/security-auth.test.ts', // 25
  'test/multi-node.test.ts', // 24
  'test/imap-screener.test.ts', // 24
  'test/twm-reflection.test.ts', // 22
  'test/twm-trust.test.ts', // 22
  'test/twm.test.ts', // 21
];

const files = [...find('src'), ...find('test')].sort();
const exclusive = files.filter((f) => /test-exclusive:/.test(readFileSync(f, 'utf8').slice(0, 2000)));
const rest = files.filter((f) => !exclusive.includes(f));
const shared = [...SLOW_FIRST.filter((f) => rest.includes(f)), ...rest.filter((f) => !SLOW_FIRST.includes(f))];
const concurrency = process.env.TWOWAY_TEST_CONCURRENCY ?? '3';
const dir = mkdtempSync(join(tmpdir(), 'twoway-tests-'));

function phase(name, list, n) {
  const tap = join(dir, `${name}.tap`);
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    [...NODE_ARGS, `--test-concurrency=${n}`, FILE_GUARD, '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...args, ...list],
    { stdio: 'inherit' },
  );
  const text = readFileSync(tap, 'utf8');
  const count = (key) => Number(text.match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? 0);
  return { status: r.status ?? 1, pass: count('pass'), fail: count('fail') + count('cancelled'), skipped: count('skipped'), seconds: (Date.now() - started) / 1000 };
}

const results = [phase('shared', shared, concurrency), phase('exclusive', exclusive, 1)];
rmSync(dir, { recursive: true, force: true });
const sum = (k) => results.reduce((s, r) => s + r[k], 0);
console.log(
  `\n${sum('pass')} passed, ${sum('fail')} failed, ${sum('skipped')} skipped in ${sum('seconds').toFixed(0)} s ` +
    `(${shared.length} files ${concurrency} at a time: ${results[0].seconds.toFixed(0)} s; ${exclusive.length} alone: ${results[1].seconds.toFixed(0)} s)`,
);
process.exit(results.some((r) => r.status !== 0) ? 1 : 0);
