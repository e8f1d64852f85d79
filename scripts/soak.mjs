#!/usr/bin/env node
// `npm run soak`: the long versions of the reliability suites (issue #6),
// one after the other, then a summary. `npm test` runs the same files with
// small bounds; this raises them:
//   - fuzzing with SOAK_FUZZ_ITERATIONS cases per target (default 3000);
//   - the kill -9 crash tests with SOAK_CRASH_TRIALS kills (default 20; crash-twm: per scenario);
//   - three nodes on one PostgreSQL with SOAK_MULTINODE_KILLS kills, one node at a time (default 6);
//   - the fault tests SOAK_FAULT_ROUNDS times (default 3).
// FUZZ_SEED repeats a fuzz run. The figures printed at the end are the ones
// docs/reliability.md quotes. Exit status: 1 if any step failed.
import { spawnSync } from 'node:child_process';

const fuzzIterations = process.env.SOAK_FUZZ_ITERATIONS ?? '3000';
const crashTrials = process.env.SOAK_CRASH_TRIALS ?? '20';
const multiNodeKills = process.env.SOAK_MULTINODE_KILLS ?? '6';
const faultRounds = Number(process.env.SOAK_FAULT_ROUNDS ?? '3');

const steps = [
  { name: `fuzz (${fuzzIterations} cases per target)`, files: ['test/fuzz-parsers.test.ts', 'test/fuzz-smtp.test.ts', 'test/fuzz-mime.test.ts', 'test/fuzz-twm.test.ts', 'test/fuzz-carddav.test.ts', 'test/fuzz-from.test.ts'], env: { FUZZ_ITERATIONS: fuzzIterations } },
  { name: `crash test (${crashTrials} kill -9)`, files: ['test/crash-safety.test.ts', 'test/crash-twm.test.ts'], env: { TWOWAY_CRASH_TRIALS: crashTrials } },
  { name: `three nodes on one PostgreSQL (${multiNodeKills} kill -9)`, files: ['test/multi-node.test.ts'], env: { TWOWAY_MULTINODE_KILLS: multiNodeKills } },
  ...Array.from({ length: faultRounds }, (_, i) => ({
    name: `faults, round ${i + 1} of ${faultRounds}`,
    files: ['test/faults-delivery.test.ts', 'test/faults-disk.test.ts', 'test/faults-postgres.test.ts'],
    // The PostgreSQL restart runs only here: in `npm test` it would break the PostgreSQL tests running beside it.
    env: { TWOWAY_TEST_PG_RESTART: '1' },
  })),
  { name: 'security battery', files: ['test/security-smtp.test.ts', 'test/security-auth.test.ts', 'test/security-api.test.ts', 'test/security-twm.test.ts', 'test/security-carddav.test.ts', 'test/security-from.test.ts'], env: {} },
];

// Diagnostic lines worth keeping in the summary (seeds, outcomes, figures).
const KEEP = /^#\s+(seed |outcomes|replies|\d+ reply lines|\d+ stored|result:|trial \d+:|kill \d+:|three nodes started|restart took|security \(|fake MX|while DNS|\d+ messages in|\d+ accepted before)/;

const results = [];
for (const step of steps) {
  const began = Date.now();
  process.stderr.write(`\n== soak: ${step.name} ==\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-concurrency=1', '--test-timeout=3600000', ...step.files], {
    env: { ...process.env, ...step.env },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const kept = out.split('\n').map((l) => l.trim()).filter((l) => KEEP.test(l)).map((l) => l.replace(/^#\s+/, ''));
  const count = (label) => Number(new RegExp(`^# ${label} (\\d+)`, 'm').exec(out)?.[1] ?? 0);
  const res = { name: step.name, ok: r.status === 0, seconds: (Date.now() - began) / 1000, pass: count('pass'), fail: count('fail'), skipped: count('skipped'), kept };
  results.push(res);
  for (const line of kept) process.stderr.write(`  ${line}\n`);
  if (!res.ok) process.stderr.write(out.split('\n').filter((l) => /not ok|error:|FUZZ_SEED=/.test(l)).slice(0, 40).join('\n') + '\n');
}

process.stdout.write('\n# Soak summary\n\n| step | result | tests passed | failed | skipped | seconds |\n|---|---|---:|---:|---:|---:|\n');
for (const r of results) process.stdout.write(`| ${r.name} | ${r.ok ? 'ok' : 'FAILED'} | ${r.pass} | ${r.fail} | ${r.skipped} | ${r.seconds.toFixed(0)} |\n`);
process.stdout.write('\nFigures:\n');
for (const r of results) for (const line of r.kept) process.stdout.write(`- ${r.name}: ${line}\n`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
