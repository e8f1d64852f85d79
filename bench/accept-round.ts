/**
 * One group-commit round of the accept path, alone: the main thread's CPU per round and per
 * message, and the WAL pages each round writes, on a real SQLite store (WAL, the fsync off the
 * event loop as in the server). No sockets, no authentication: only what a round costs the event
 * loop, the figure behind "a round costs a fixed 1.0-1.5 ms" (bench/results.md), which the whole
 * server's CPU figures (bench/accept-cpu.ts) cannot separate from everything else.
 *
 *   npx tsx bench/accept-round.ts
 *   BENCH_TREES=/tmp/base,. npx tsx bench/accept-round.ts    # checkouts side by side, alternating
 *
 * Each round delivers BENCH_BATCH messages (default 3, what a round holds at 20 sessions) shaped
 * like the benchmark's: 10 KB bodies, a stranger's first contact with its Screener request (one
 * sender for all, as smtp-source sends), each submitted on its own so that the group commit
 * folds them into one round, as concurrent sessions do. The stored form's SHA-256 and structure
 * columns are given, as the authentication worker computes them ahead. Per run: BENCH_ROUNDS
 * rounds (default 1,500) after BENCH_WARMUP (default 1,500) on a fresh store; CPU of the main
 * thread from /proc (so libuv's fsync thread and the checkpointer thread are not counted);
 * pages from the WAL's frame count (SQLite's `wal_autocheckpoint` is raised for the run, and
 * the checkpointer thread starts only with the store's first fsync, so frames are counted
 * between checkpoints: a run's pages are the WAL frames its rounds appended).
 *
 * Environment: BENCH_TREES (default "."), BENCH_RUNS (per tree, default 4), BENCH_BATCH,
 * BENCH_ROUNDS, BENCH_WARMUP. Output: Markdown on stdout.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const trees = (process.env.BENCH_TREES ?? '.').split(',').map((t) => resolve(t.trim()));
const runs = Number(process.env.BENCH_RUNS ?? 4);

interface RunResult {
  cpuMsPerRound: number;
  cpuMsPerMessage: number;
  pagesPerRound: number;
  wallMsPerRound: number;
}

const results = new Map<string, RunResult[]>(trees.map((t) => [t, []]));
for (let r = 0; r < runs; r++) {
  // Alternating, the order reversed every other round: a shared machine's load drifts.
  const order = r % 2 === 0 ? trees : [...trees].reverse();
  for (const tree of order) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', resolve(here, 'lib/accept-round-child.ts'), tree], {
      cwd: tree,
      env: process.env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`round child for ${tree} exited with ${child.status}`);
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as RunResult;
    results.get(tree)!.push(result);
    console.error(`  run ${r + 1} ${tree}: ${result.cpuMsPerRound.toFixed(3)} ms CPU/round, ${result.cpuMsPerMessage.toFixed(3)} ms/msg, ${result.pagesPerRound.toFixed(1)} pages/round, wall ${result.wallMsPerRound.toFixed(2)} ms/round`);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
console.log('# One accept round: main-thread CPU and WAL pages\n');
console.log(`batch ${process.env.BENCH_BATCH ?? 3} messages per round, ${process.env.BENCH_ROUNDS ?? 1500} rounds per run, median of ${runs} alternating run(s)\n`);
console.log('| tree | CPU ms/round | CPU ms/msg | WAL pages/round | wall ms/round | runs (CPU ms/round) |');
console.log('|---|---:|---:|---:|---:|---|');
for (const [tree, rs] of results) {
  const f = (k: keyof RunResult, d = 3) => median(rs.map((x) => x[k])).toFixed(d);
  console.log(`| ${tree} | ${f('cpuMsPerRound')} | ${f('cpuMsPerMessage')} | ${f('pagesPerRound', 1)} | ${f('wallMsPerRound', 2)} | ${rs.map((x) => x.cpuMsPerRound.toFixed(3)).join(', ')} |`);
}
