/**
 * Side-by-side runs of one bench script in several checkouts (BENCH_TREES):
 * each tree's copy of the script runs as a child (`--child`), one after the
 * other, the order reversed every other pair so that a machine's drift hits
 * both alike; the child prints its sample as the last line of stdout (JSON).
 * Used by the store and queue benches (smtp-sender-store.ts,
 * twm-sender-store.ts, queue-worker-cpu.ts).
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Each tree's samples, in BENCH_TREES order; `describe` logs each sample to stderr as it comes. */
export function runTreePairs<S>(script: string, pairs: number, describe: (s: S) => string): Map<string, S[]> {
  const trees = (process.env.BENCH_TREES ?? '.').split(',').map((t) => resolve(t));
  const samples = new Map<string, S[]>(trees.map((t) => [t, []]));
  for (let i = 0; i < pairs; i++) {
    for (const tree of i % 2 === 0 ? trees : [...trees].reverse()) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(tree, 'bench', script), '--child'], { cwd: tree, encoding: 'utf8', env: process.env });
      if (r.status !== 0) throw new Error(`${tree}: exit ${r.status}\n${r.stderr}`);
      const s = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as S;
      samples.get(tree)!.push(s);
      process.stderr.write(`  pair ${i + 1} ${tree}: ${describe(s)}\n`);
    }
  }
  return samples;
}

/** The script's entry: `child` with `--child`, else `parent` when the script itself was run. */
export function childOrParent(scriptUrl: string, child: () => Promise<void>, parent: () => void): void {
  if (process.argv.includes('--child')) {
    child().catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    });
  } else if (resolve(process.argv[1] ?? '') === fileURLToPath(scriptUrl)) {
    parent();
  }
}
