/**
 * CPU per accepted message: what one durable SMTP accept costs twoway, in CPU milliseconds,
 * the figure that stays put when other work loads the machine (the rate does not).
 *
 *   npx tsx bench/accept-cpu.ts
 *   BENCH_TREES=/tmp/base,. npx tsx bench/accept-cpu.ts     # two checkouts side by side
 *
 * Each target is a twoway child (bench/lib/twoway-server.ts of its checkout, so a second
 * checkout runs its own sources) on a fresh SQLite store, or PostgreSQL with BENCH_PG set and
 * `postgres` in BENCH_TARGETS. Load as in bench/smtp-accept.ts: `smtp-source -s SESSIONS -m
 * COUNT -l 10240`, one connection per message, with the embedded DNS server publishing SPF and
 * DMARC for the sender's domain. One warm-up per target, then BENCH_RUNS rounds alternating
 * the targets (the order reversed every other round). Per run: the CPU of the child's process
 * tree from /proc, split into main threads (event loops) and other threads (authentication
 * workers, libuv's pool, V8's GC and compiler threads), divided by the messages; the rate; the
 * load average. Checked: every acknowledged message is stored.
 *
 * Environment:
 *   BENCH_TREES      comma-separated checkouts (default: this one)
 *   BENCH_TARGETS    comma-separated `processes:storage[:sched]` (default `1:sqlite`), storage
 *                    sqlite|postgres; sched `rr` (node:cluster's default on Linux: the supervisor
 *                    accepts each connection and hands it to a worker) or `none` (the workers
 *                    accept from the shared socket themselves: NODE_CLUSTER_SCHED_POLICY=none)
 *   BENCH_EXPERIMENTS  `;`-separated experiment sets (bench/lib/experiments.ts) run as extra targets
 *   BENCH_NODE_FLAGS `;`-separated sets of node flags (space-separated within a set), each run as an
 *                    extra single-process target beside the plain one, e.g.
 *                    `--max-semi-space-size=64`: a V8 setting measured against the default
 *   BENCH_SESSIONS   (20), BENCH_MESSAGES (1000), BENCH_RUNS (3), BENCH_WARMUP (messages, default
 *                    3 per session, at least 300: the JIT compiler keeps working well past that)
 *   BENCH_PG         PostgreSQL URL (default postgres://postgres@127.0.0.1:5432/test)
 *   BENCH_PROFILE=1  V8 CPU profile of each (single-process) target over its measured runs, to
 *                    bench/out/prof/accept-cpu-<n>.cpuprofile (bench/lib/cpuprofile-summary.ts)
 *   BENCH_PERF=1     Linux `perf record -e cpu-clock -g` of each target's processes over its
 *                    measured runs (children started with --perf-basic-prof, so JavaScript frames
 *                    have names), to bench/out/prof/accept-cpu-<n>.perf.data (`perf report -i`).
 *                    Unlike V8's sampler, which charges the time a descheduled thread waits to the
 *                    call it was in, perf samples only threads on a CPU: the figure that holds on
 *                    a loaded machine.
 *
 *   BENCH_TRACE=1    per-stage latency of each run's messages (bench/lib/accept-trace.ts; a
 *                    checkout whose bench/lib has no accept-trace.ts answers nothing), on stderr
 *
 * Output: Markdown on stdout, bench/out/accept-cpu.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { describeMachine } from './lib/machine.ts';
import { threadCpuSeconds } from './lib/proc-cpu.ts';
import { runSmtpSource } from './lib/smtp-source.ts';
import { startTwowayChild, type TwowayChild } from './lib/twoway-child.ts';

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(here, 'out');
const DOMAIN = 'bench.test';
const USER = `bench@${DOMAIN}`;
const SIZE = 10 * 1024;
const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
const messages = Number(process.env.BENCH_MESSAGES ?? 1000);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const tracing = process.env.BENCH_TRACE === '1';
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const profile = process.env.BENCH_PROFILE === '1';
const perf = process.env.BENCH_PERF === '1';
const trees = (process.env.BENCH_TREES ?? resolve(here, '..')).split(',').map((t) => resolve(t.trim()));
const experiments = (process.env.BENCH_EXPERIMENTS ?? '').split(';').map((e) => e.trim()).filter(Boolean);
const flagSets = (process.env.BENCH_NODE_FLAGS ?? '').split(';').map((e) => e.trim()).filter(Boolean);
const targetSpecs = (process.env.BENCH_TARGETS ?? '1:sqlite').split(',').map((t) => {
  const [n, storage, sched] = t.trim().split(':');
  if (!n || !(storage === 'sqlite' || storage === 'postgres') || !(sched === undefined || sched === 'rr' || sched === 'none')) throw new Error(`BENCH_TARGETS: bad entry ${t}`);
  return { processes: Number(n), storage, sched };
});

const log = (s = '') => process.stderr.write(s + '\n');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const loadavg = () => describeMachine().loadavg[0]!;

interface Run {
  msgPerSec: number;
  /** CPU ms per message: main threads, other threads, total. */
  main: number;
  other: number;
  total: number;
  /** Of `total`, the root process (with several processes: the supervisor, which hands out the connections). */
  root: number;
  load: number;
}
interface Live {
  name: string;
  child: TwowayChild;
  processes: number;
  sent: number;
  runs: Run[];
}

/** The direct children of a process (a supervisor's workers). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function pgQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const machine = describeMachine();
  const cleanups: Array<() => Promise<unknown>> = [];
  const lives: Live[] = [];
  try {
    const dns = await startDnsServer({
      records: [
        { name: 'client.source.test', type: 'A', data: '127.0.0.1' },
        { name: 'source.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
        { name: '_dmarc.source.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
      ],
    });
    cleanups.push(() => dns.close());
    const specs = trees.flatMap((tree) =>
      targetSpecs.flatMap((t) => [
        ...['', ...(t.processes === 1 ? experiments : [])].map((experiment) => ({ tree, experiment, flags: '', ...t })),
        ...(t.processes === 1 ? flagSets : []).map((flags) => ({ tree, experiment: '', flags, ...t })),
      ]),
    );
    for (const spec of specs) {
      const dir = mkdtempSync(join(tmpdir(), 'twoway-accept-cpu-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      let storage: string | undefined;
      if (spec.storage === 'postgres') {
        const schema = `bench_cpu_${randomBytes(4).toString('hex')}`;
        storage = `${PG}${PG.includes('?') ? '&' : '?'}schema=${schema}`;
        cleanups.push(() => pgQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
      }
      const child = await startTwowayChild({
        dir,
        dns: dns.address,
        domain: DOMAIN,
        user: USER,
        processes: spec.processes,
        experiment: spec.experiment,
        serverScript: join(spec.tree, 'bench', 'lib', 'twoway-server.ts'),
        nodeFlags: [...(perf ? ['--perf-basic-prof'] : []), ...spec.flags.split(' ').filter(Boolean)],
        ...(spec.sched ? { env: { NODE_CLUSTER_SCHED_POLICY: spec.sched } } : {}),
        startTimeoutMs: 180_000,
        ...(storage ? { storage } : {}),
      });
      cleanups.push(() => child.stop());
      const name = `${trees.length > 1 ? `${spec.tree} ` : ''}${spec.processes}p ${spec.storage}${spec.sched ? ` sched=${spec.sched}` : ''}${spec.experiment ? ` [${spec.experiment}]` : ''}${spec.flags ? ` (${spec.flags})` : ''}`;
      lives.push({ name, child, processes: spec.processes, sent: 0, runs: [] });
      log(`${name}: port ${child.smtpPort}, pid ${child.pid}`);
    }
    const once = async (l: Live, count: number): Promise<Run> => {
      const c0 = threadCpuSeconds(l.child.pid);
      const r = await runSmtpSource({ host: '127.0.0.1', port: l.child.smtpPort, sessions, messages: count, size: SIZE, from: 'sender@source.test', to: USER, helo: 'client.source.test' });
      // Let the last commits and the authentication workers settle before reading the CPU.
      await new Promise((res) => setTimeout(res, 300));
      const c1 = threadCpuSeconds(l.child.pid);
      if (r.exitCode !== 0) throw new Error(`smtp-source against ${l.name} exited ${r.exitCode}\n${r.stderr}`);
      l.sent += count;
      if (!c0 || !c1) throw new Error('no /proc');
      const main = ((c1.main - c0.main) * 1000) / count;
      const other = ((c1.other - c0.other) * 1000) / count;
      const root = ((c1.root - c0.root) * 1000) / count;
      return { msgPerSec: count / r.seconds, main, other, total: main + other, root, load: loadavg() };
    };
    const warmup = Number(process.env.BENCH_WARMUP ?? Math.max(sessions * 3, 300));
    for (const l of lives) log(`  warm-up ${l.name}: ${(await once(l, warmup)).msgPerSec.toFixed(0)} msg/s`);
    const traceOf = async (l: Live) => (tracing ? await l.child.trace().catch(() => null) : null);
    for (const l of lives) await traceOf(l); // reset after the warm-up
    if (profile) for (const l of lives) if (l.processes === 1) await l.child.profileStart();
    const perfs: ChildProcess[] = [];
    if (perf) {
      mkdirSync(join(OUT_DIR, 'prof'), { recursive: true });
      for (const [n, l] of lives.entries()) {
        const pids = [l.child.pid, ...childPids(l.child.pid)].join(',');
        const file = join(OUT_DIR, 'prof', `accept-cpu-${n}.perf.data`);
        perfs.push(spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '499', '-g', '-p', pids, '-o', file], { stdio: 'ignore' }));
        log(`  perf of ${l.name} (pids ${pids}): ${file}`);
      }
    }
    for (let i = 0; i < runs; i++) {
      for (const l of i % 2 ? [...lives].reverse() : lives) {
        const r = await once(l, messages);
        l.runs.push(r);
        log(`  run ${i + 1} ${l.name}: ${r.msgPerSec.toFixed(0)} msg/s, CPU/msg ${r.total.toFixed(2)} ms (main ${r.main.toFixed(2)}, other ${r.other.toFixed(2)}), load ${r.load.toFixed(1)}`);
        const t = await traceOf(l);
        if (t) log(`    trace: ${traceLine(t)}`);
      }
    }
    for (const p of perfs) {
      const done = new Promise((res) => p.once('exit', res));
      p.kill('SIGINT');
      await done;
    }
    if (profile) {
      mkdirSync(join(OUT_DIR, 'prof'), { recursive: true });
      for (const [n, l] of lives.entries()) {
        if (l.processes !== 1) continue;
        const file = join(OUT_DIR, 'prof', `accept-cpu-${n}.cpuprofile`);
        await l.child.profileStop(file);
        log(`  profile of ${l.name}: ${file}`);
      }
    }
    for (const l of lives) {
      const stored = await l.child.count();
      if (stored !== l.sent) throw new Error(`${l.name} acknowledged ${l.sent} but stored ${stored}`);
    }
  } finally {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  }
  const rows = lives.map((l) => ({
    target: l.name,
    msgPerSec: median(l.runs.map((r) => r.msgPerSec)),
    main: median(l.runs.map((r) => r.main)),
    other: median(l.runs.map((r) => r.other)),
    total: median(l.runs.map((r) => r.total)),
    supervisor: l.processes > 1 ? median(l.runs.map((r) => r.root)) : null,
    runs: l.runs,
  }));
  const after = describeMachine();
  const markdown = [
    `machine: ${machine.nproc} CPUs, ${machine.cpu}; node ${machine.node}; load average ${machine.loadavg.join(' ')} at start, ${after.loadavg.join(' ')} at end`,
    `load: smtp-source -s ${sessions} -m ${messages} -l ${SIZE}, one connection per message; median of ${runs} alternating run(s) after one warm-up`,
    '',
    '| target | CPU ms/msg | main threads | other threads | of which the supervisor | msg/s | runs (total ms/msg) |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.target} | ${r.total.toFixed(2)} | ${r.main.toFixed(2)} | ${r.other.toFixed(2)} | ${r.supervisor === null ? '-' : r.supervisor.toFixed(2)} | ${r.msgPerSec.toFixed(0)} | ${r.runs.map((x) => x.total.toFixed(2)).join(', ')} |`,
    ),
  ].join('\n');
  process.stdout.write(`# CPU per accepted message\n\n${markdown}\n`);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'accept-cpu.json'), JSON.stringify({ bench: 'accept-cpu', date: new Date().toISOString(), machine, sessions, messages, rows, markdown }, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`accept-cpu: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

/** The stages that add up to a message's time, mean ms (p90 for some), from bench/lib/accept-trace.ts's summary. */
function traceLine(t: Record<string, unknown>): string {
  const m = (k: string) => (t[k] as { mean?: number } | undefined)?.mean ?? 0;
  const f = (k: string, extra?: 'p90' | 'max') => {
    const v = t[k] as Record<string, number> | undefined;
    return v ? `${k} ${v.mean}${extra ? ` (${extra} ${v[extra]})` : ''}` : `${k} -`;
  };
  const waits = ['ehlo-wait', 'mail-wait', 'rcpt-wait', 'data-wait', 'quit-wait'].reduce((a, k) => a + m(k), 0);
  const loop = t.loopDelay as { mean: number; p99: number; max: number } | undefined;
  return [
    f('total', 'p90'),
    `client waits ${Math.round(waits * 100) / 100}`,
    f('body'),
    f('accept', 'p90'),
    f('auth'),
    f('commit'),
    f('commit.round-wait'),
    f('round.tx', 'max'),
    f('fsync', 'max'),
    f('round.items'),
    f('close'),
    loop ? `loop delay ${loop.mean} (p99 ${loop.p99}, max ${loop.max})` : '',
  ].join('; ');
}
