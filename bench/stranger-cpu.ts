/**
 * CPU per stranger's notice at the recipient, two checkouts side by side: the
 * figure of bench/twm-stranger-cost.ts (its TWM side), measured so that a
 * loaded machine hits both alike. On a shared machine one run of that
 * benchmark after another varied by a third from run to run, far more than a
 * change of a few percent.
 *
 *   BENCH_TREES=/tmp/base,. npx tsx bench/stranger-cpu.ts
 *
 * Each checkout's recipient server runs at the same time (bench/lib/
 * twoway-server.ts of that checkout, its own fresh SQLite store, [twm] on,
 * bea@b.test in `screen` mode), and one driver sends them signed notices as
 * twm-stranger-cost.ts does (50 KB announced, an intro, 100 stranger
 * addresses at s.test, keep-alive, CONCURRENCY in flight), in chunks that
 * alternate between the servers (the order reversed every other round). Per
 * chunk: the server process's CPU from /proc, divided by the notices. Every
 * answer must be 200 with `pending`. A warm-up chunk of 300 first.
 *
 * Environment: BENCH_TREES (comma-separated checkouts; default this one),
 * BENCH_ROUNDS (12), BENCH_CHUNK (400 notices; /proc counts in 10 ms ticks, so
 * a chunk should cost well over a second), BENCH_CONCURRENCY (20), BENCH_IDS
 * (comma-separated per checkout, `ordered` or `random`: how the notice ids are
 * made, lib/stranger-notice.ts; default `ordered` for each), BENCH_CPU_PROF
 * (a directory: a V8 CPU profile of each server over the measured rounds,
 * `<n>.cpuprofile` by the checkout's position; its overhead inflates the CPU).
 * Output: Markdown on stdout.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { keyRecordValue, rawPublicKey } from '../src/core/twm-key-record.ts';
import { TWM_PATHS } from '../src/core/twm-types.ts';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { cpuSeconds } from './lib/proc-cpu.ts';
import { STRANGER_KEYID, strangerNotice, type StrangerIds } from './lib/stranger-notice.ts';
import { createTwmLab, twmSection, type TwmLab } from './lib/twm-lab.ts';
import type { TwowayChild, TwowayChildOptions } from './lib/twoway-child.ts';

const here = dirname(fileURLToPath(import.meta.url));
const trees = (process.env.BENCH_TREES ?? resolve(here, '..')).split(',').map((t) => resolve(t.trim()));
const rounds = Number(process.env.BENCH_ROUNDS ?? 12);
const chunkSize = Number(process.env.BENCH_CHUNK ?? 400);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
const HOST = '127.0.0.3';
const idModes = (process.env.BENCH_IDS ?? '').split(',').map((m) => m.trim());
const cpuProfDir = process.env.BENCH_CPU_PROF;

interface Target {
  tree: string;
  child: TwowayChild;
  dir: string;
  authority: string;
  url: string;
  agent: Agent;
  sent: number;
  ids: StrangerIds;
}

async function startTarget(tree: string, dns: string, lab: TwmLab, ids: StrangerIds): Promise<Target> {
  // The checkout's own child launcher, so that its server runs its own sources.
  const { startTwowayChild } = (await import(join(tree, 'bench/lib/twoway-child.ts'))) as { startTwowayChild: (o: TwowayChildOptions) => Promise<TwowayChild> };
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-stranger-cpu-'));
  const child = await startTwowayChild({ dir, dns, domain: 'b.test', users: [{ address: 'bea@b.test', mode: 'screen' }], host: HOST, extraToml: twmSection(lab, 'b.test', HOST) });
  if (child.twmPort === null) throw new Error(`${tree}: no TWM endpoint`);
  const authority = `twm.b.test:${child.twmPort}`;
  const agent = new Agent({ connect: { ca: lab.ca.cert, servername: 'twm.b.test' }, connections: concurrency, pipelining: 1 });
  return { tree, child, dir, authority, url: `https://${HOST}:${child.twmPort}${TWM_PATHS.notice}`, agent, sent: 0, ids };
}

/** Sends `count` notices to one target; its CPU per notice in microseconds. Signing happens before the clock starts. */
async function chunk(t: Target, count: number, privateKey: KeyObject): Promise<number> {
  const notices = Array.from({ length: count }, () => strangerNotice(t.sent++, t.authority, privateKey, t.ids));
  const cpu0 = cpuSeconds(t.child.pid);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const n = notices[next++]!;
        const res = await request(t.url, { method: 'POST', dispatcher: t.agent, headers: n.headers, body: n.body });
        const text = await res.body.text();
        if (res.statusCode !== 200 || !text.includes('"pending"')) throw new Error(`${t.tree}: HTTP ${res.statusCode} ${text.slice(0, 300)}`);
      }
    }),
  );
  const cpu1 = cpuSeconds(t.child.pid);
  if (cpu0 === null || cpu1 === null) throw new Error(`cannot read the CPU time of ${t.tree}'s server`);
  return ((cpu1 - cpu0) * 1e6) / count;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function main(): Promise<void> {
  const dns = await startDnsServer();
  const lab = createTwmLab();
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  dns.add([{ name: STRANGER_KEYID, type: 'TXT', data: keyRecordValue(rawPublicKey(publicKey)) }]);
  const targets: Target[] = [];
  try {
    for (const [i, tree] of trees.entries()) {
      const ids = idModes[i] || 'ordered';
      if (ids !== 'ordered' && ids !== 'random') throw new Error(`BENCH_IDS: "${ids}" is neither ordered nor random`);
      targets.push(await startTarget(tree, dns.address, lab, ids));
    }
    for (const t of targets) await chunk(t, 300, privateKey);
    if (cpuProfDir) for (const t of targets) await t.child.profileStart();
    const per: number[][] = targets.map(() => []);
    for (let r = 0; r < rounds; r++) {
      const order = targets.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) per[i]!.push(await chunk(targets[i]!, chunkSize, privateKey));
    }
    if (cpuProfDir) for (const [i, t] of targets.entries()) await t.child.profileStop(join(cpuProfDir, `${i}.cpuprofile`));
    process.stdout.write(`# CPU per stranger's notice, side by side (${rounds} rounds of ${chunkSize}, ${concurrency} in flight; load average at end ${loadavg()[0]!.toFixed(2)})\n\n`);
    process.stdout.write('| checkout | median µs/notice | mean µs/notice | vs the first (sums) | vs the first (median of rounds) |\n|---|---:|---:|---:|---:|\n');
    targets.forEach((t, i) => {
      const mine = per[i]!;
      const first = per[0]!;
      const ratios = mine.map((x, k) => x / first[k]!);
      process.stdout.write(`| ${t.tree}${t.ids === 'ordered' ? '' : ` (${t.ids} ids)`} | ${median(mine).toFixed(0)} | ${(sum(mine) / mine.length).toFixed(0)} | ${(sum(mine) / sum(first)).toFixed(3)} | ${median(ratios).toFixed(3)} |\n`);
    });
  } finally {
    for (const t of targets) {
      await t.agent.close();
      await t.child.stop();
      rmSync(t.dir, { recursive: true, force: true });
    }
    lab.close();
    await dns.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`stranger-cpu: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
