/**
 * The SMTP wire alone: the event loop's CPU per message of protocols/smtp (smtp-server and our
 * adaptations: greeting, commands, DATA collection, QUIT), without storage or authentication,
 * which bench/accept-cpu.ts cannot separate from the rest of an accepted message and which a
 * loaded machine blurs there. Each run is a child (bench/lib/smtp-wire-child.ts) importing the
 * given checkout's src/protocols/smtp/server.ts, loaded by `smtp-source` with one connection per
 * 10 KB message, as bench/smtp-accept.ts does.
 *
 *   npx tsx bench/smtp-wire-cpu.ts
 *   BENCH_TREES=/tmp/base,. BENCH_RUNS=8 npx tsx bench/smtp-wire-cpu.ts   # side by side, alternating
 *
 * Environment: BENCH_TREES (default "."), BENCH_RUNS (per tree, default 6), BENCH_SESSIONS (20),
 * BENCH_MESSAGES (3,000 measured per run), BENCH_WARMUP (3,000 before them). Output: Markdown on
 * stdout (medians, and the per-pair ratio to the first tree).
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const trees = (process.env.BENCH_TREES ?? '.').split(',').map((t) => resolve(t.trim()));
const runs = Number(process.env.BENCH_RUNS ?? 6);

interface RunResult {
  mainUsPerMessage: number;
  msgPerSec: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const results = new Map<string, RunResult[]>(trees.map((t) => [t, []]));
for (let r = 0; r < runs; r++) {
  // Alternating, the order reversed every other round: a shared machine's load drifts.
  for (const tree of r % 2 === 0 ? trees : [...trees].reverse()) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', resolve(here, 'lib/smtp-wire-child.ts'), tree], {
      env: process.env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`wire child for ${tree} exited with ${child.status}`);
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as RunResult;
    results.get(tree)!.push(result);
    console.error(`  run ${r + 1} ${tree}: ${result.mainUsPerMessage.toFixed(1)} µs main-thread CPU/msg, ${result.msgPerSec.toFixed(0)} msg/s`);
  }
}

const first = results.get(trees[0]!)!;
console.log('# SMTP wire: main-thread CPU per message\n');
console.log(`smtp-source -s ${process.env.BENCH_SESSIONS ?? 20} -l 10240, one connection per message; ${process.env.BENCH_MESSAGES ?? 3000} messages per run after ${process.env.BENCH_WARMUP ?? 3000}; median of ${runs} alternating run(s)\n`);
console.log('| tree | µs/msg | msg/s | per-pair ratio to the first (median) | runs (µs/msg) |');
console.log('|---|---:|---:|---:|---|');
for (const [tree, rs] of results) {
  const ratio = median(rs.map((x, i) => x.mainUsPerMessage / first[i]!.mainUsPerMessage));
  console.log(`| ${tree} | ${median(rs.map((x) => x.mainUsPerMessage)).toFixed(1)} | ${median(rs.map((x) => x.msgPerSec)).toFixed(0)} | ${ratio.toFixed(3)} | ${rs.map((x) => x.mainUsPerMessage.toFixed(1)).join(', ')} |`);
}
