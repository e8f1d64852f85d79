/**
 * Durable inbound SMTP accept rate: twoway against Postfix, in the same run.
 *
 *   npx tsx bench/smtp-accept.ts                 (needs root and the postfix package)
 *   BENCH_QUICK=1 npx tsx bench/smtp-accept.ts   (smoke run)
 *
 * What is measured (docs/architecture.md "Performance targets"): Debian's smtp-source sends 10 KB
 * messages over loopback, one connection per message, with 100 (and 20)
 * sessions in parallel; the time from its start to its exit gives messages
 * per second. A 250 means durable on both sides: twoway answers after the
 * SQLite commit (WAL, synchronous=FULL); Postfix after cleanup fsyncs the
 * queue file (all transports `discard`, so the queue drains behind).
 *
 * - twoway runs in a child process (bench/lib/twoway-server.ts) with a fresh
 *   data directory, one user bench@bench.test (mode open), and the embedded
 *   DNS server (in this process) as its only DNS server, which publishes SPF
 *   and DMARC for the sender domain source.test, so every message gets a real
 *   SPF pass and DMARC evaluation, answered locally.
 * - Postfix is a private instance (bench/lib/postfix.ts) on a free port.
 * - Per session count: one warm-up run of each system, then RUNS rounds in
 *   which every system runs once, alternating (twoway, Postfix, twoway, ...);
 *   the median is reported. After a Postfix run the next run waits until
 *   Postfix has drained (discarded) its queue, so that its delivery work does
 *   not land in the next measurement.
 * - Checks: every smtp-source run exits 0 (any reply other than the expected
 *   2xx/3xx makes it fail); each twoway child stored exactly as many messages
 *   as were sent to it; Postfix discarded exactly as many as were sent to it.
 *
 * Output: a Markdown table on stdout (progress on stderr) and
 * bench/out/smtp-accept.json.
 *
 * Environment:
 *   BENCH_QUICK=1          small counts, one run each (smoke test)
 *   BENCH_RUNS=N           measured rounds per row (default 3)
 *   BENCH_SESSIONS=100,20  the rows
 *   BENCH_MESSAGES=N       messages per run (default 3,000). Runs of 1,000 (the default at 20
 *                          sessions until session 16) lasted half a second: Postfix's queue
 *                          manager then discarded most of a run's mail after the timed window
 *                          (the next run waits for it), and twoway's rate still rose run after
 *                          run (1,828 to 2,289 msg/s in five runs); at 3,000 both are steady
 *   BENCH_SYSTEMS=twoway,postfix   run only some systems
 *   BENCH_VARIANTS=a,b;c   profiling: also run one twoway child per `;`-separated set of
 *                          experiments (bench/lib/experiments.ts), in the same rounds;
 *                          results then go to bench/out/smtp-accept.variants.json
 *   BENCH_REUSE=1          smtp-source -d: several messages per connection
 *   BENCH_CPU_PROF=1       V8 CPU profile of each twoway child during the measured runs of
 *                          each row, to bench/out/prof/ (summarise with
 *                          npx tsx bench/lib/cpuprofile-summary.ts FILE)
 *   BENCH_COMMIT_STATS=1   report twoway's group-commit batch sizes per run
 *   BENCH_TRACE=1          per-stage latency of twoway's messages in each measured run
 *                          (bench/lib/accept-trace.ts: SMTP stages, authentication worker,
 *                          group commit, fsync, event-loop delay), on stderr and in the JSON
 *   BENCH_WARMUP=N         messages of each system's warm-up run per row (default 10,000, or 3
 *                          per session if more). twoway's JIT keeps compiling well past 300
 *                          messages: its CPU per message falls by about 45% over the next 5,000
 *                          (bench/results.md, session 7), while Postfix has nothing to warm. A
 *                          mail server runs for days, so the steady state is what a user gets;
 *                          both systems get the same warm-up
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { parseExperiments } from './lib/experiments.ts';
import { describeMachine } from './lib/machine.ts';
import { postfixVersion, startPostfix, type PostfixInstance } from './lib/postfix.ts';
import { treeCpuSeconds } from './lib/proc-cpu.ts';
import { runSmtpSource, smtpSourceArgs } from './lib/smtp-source.ts';
import { startTwowayChild, type TwowayChild } from './lib/twoway-child.ts';

type System = 'twoway' | 'postfix';

/** One server under test. */
interface Target {
  /** `twoway`, `postfix`, or `twoway[experiments]` for a profiling variant. */
  name: string;
  system: System;
  port: number;
  child?: TwowayChild;
  postfix?: PostfixInstance;
  sent: number;
}

interface RunResult {
  target: string;
  system: System;
  sessions: number;
  messages: number;
  seconds: number;
  msgPerSec: number;
  /** twoway only: the child's CPU seconds during the run per wall second (1.0 = one core busy). */
  serverCpu?: number;
  commits?: Record<string, unknown>;
  trace?: Record<string, unknown>;
}

interface Row {
  target: string;
  system: System;
  sessions: number;
  messages: number;
  /** Median of the measured runs. */
  seconds: number;
  msgPerSec: number;
  /** msg/s relative to Postfix at the same session count (1 for Postfix). */
  ratio: number | null;
  runs: Array<{ seconds: number; msgPerSec: number; serverCpu?: number }>;
}

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(here, 'out');
const DOMAIN = 'bench.test';
const USER = `bench@${DOMAIN}`;
const SENDER = 'sender@source.test';
const HELO = 'client.source.test';
const SIZE = 10 * 1024;

const quick = process.env.BENCH_QUICK === '1';
const runs = Number(process.env.BENCH_RUNS ?? (quick ? 1 : 3));
const sessionRows = (process.env.BENCH_SESSIONS ?? '100,20').split(',').map((s) => Number(s.trim())).filter((n) => n > 0);
const systems = new Set((process.env.BENCH_SYSTEMS ?? 'twoway,postfix').split(',').map((s) => s.trim()));
const variants = (process.env.BENCH_VARIANTS ?? '').split(';').map((v) => v.trim()).filter(Boolean);
const reuse = process.env.BENCH_REUSE === '1';
const cpuProf = process.env.BENCH_CPU_PROF === '1';
const commitStats = process.env.BENCH_COMMIT_STATS === '1';
const trace = process.env.BENCH_TRACE === '1';
const messagesFor = (sessions: number) =>
  Number(process.env.BENCH_MESSAGES ?? (quick ? Math.max(sessions * 2, 100) : 3000));
const warmupFor = (sessions: number) => Number(process.env.BENCH_WARMUP ?? (quick ? sessions : Math.max(sessions * 3, 10_000)));

const log = (s = '') => process.stderr.write(s + '\n');
const out = (s = '') => process.stdout.write(s + '\n');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Set on SIGINT/SIGTERM: the signal handler cleans up and exits 130. */
let interrupted = false;

async function main(): Promise<void> {
  if (!Number.isInteger(runs) || runs < 1) throw new Error('BENCH_RUNS must be a positive integer');
  for (const v of variants) parseExperiments(v); // fail before starting anything
  const machine = describeMachine();
  const postfixVer = await postfixVersion();
  out(`# Durable SMTP accept: twoway vs Postfix${quick ? ' (BENCH_QUICK)' : ''}${cpuProf ? ' (twoway profiled)' : ''}`);
  out();
  out(`machine: ${machine.nproc} CPUs, ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.kernel}; node ${machine.node}; postfix ${postfixVer}; load average at start ${machine.loadavg.join(' ')}`);
  out(`load: smtp-source ${reuse ? '-d ' : ''}-l ${SIZE} (10 KB payload), ${reuse ? 'several messages per connection' : 'one connection per message'}, loopback; median of ${runs} alternating run(s) per system after one warm-up each`);
  out();

  const abort = new AbortController();
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  };
  const onSignal = (sig: NodeJS.Signals) => {
    log(`\n${sig}: stopping servers…`);
    interrupted = true;
    abort.abort();
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: RunResult[] = [];
  const targets: Target[] = [];
  const verification: Record<string, unknown> = {};
  try {
    const dns = await startDnsServer({
      records: [
        { name: DOMAIN, type: 'MX', data: { preference: 10, exchange: `mx.${DOMAIN}` } },
        { name: `mx.${DOMAIN}`, type: 'A', data: '127.0.0.1' },
        { name: HELO, type: 'A', data: '127.0.0.1' },
        { name: 'source.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
        { name: '_dmarc.source.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
      ],
    });
    cleanups.push(() => dns.close());

    const twowayExperiments = [...(systems.has('twoway') ? [''] : []), ...variants];
    for (const experiment of twowayExperiments) {
      const name = experiment ? `twoway[${experiment}]` : 'twoway';
      const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const child = await startTwowayChild({ dir, dns: dns.address, domain: DOMAIN, user: USER, logLevel: 'warn', commitStats, experiment });
      cleanups.push(async () => {
        const code = await child.stop();
        if (code !== 0) log(`${name} child exited with code ${code}`);
      });
      targets.push({ name, system: 'twoway', port: child.smtpPort, child, sent: 0 });
      log(`${name}: SMTP on 127.0.0.1:${child.smtpPort} (child pid ${child.pid}), DNS ${dns.address}, data ${dir}`);
    }
    if (systems.has('postfix')) {
      const instance = await startPostfix({ maxSessions: Math.max(...sessionRows), domain: DOMAIN });
      cleanups.push(() => instance.stop());
      targets.push({ name: 'postfix', system: 'postfix', port: instance.port, postfix: instance, sent: 0 });
      log(`postfix: SMTP on 127.0.0.1:${instance.port}, instance ${instance.dir}`);
    }
    if (targets.length === 0) throw new Error('nothing to run: BENCH_SYSTEMS names neither twoway nor postfix and BENCH_VARIANTS is empty');

    const once = async (t: Target, sessions: number, messages: number): Promise<RunResult> => {
      const cpu0 = t.child ? treeCpuSeconds(t.child.pid) : null;
      const r = await runSmtpSource({
        host: '127.0.0.1', port: t.port, sessions, messages, size: SIZE, from: SENDER, to: USER, helo: HELO, reuseConnections: reuse, signal: abort.signal,
      });
      const cpu1 = t.child ? treeCpuSeconds(t.child.pid) : null;
      if (r.exitCode !== 0) throw new Error(`smtp-source against ${t.name} exited ${r.exitCode}: smtp-source ${r.args.join(' ')}\n${r.stderr}`);
      t.sent += messages;
      const result: RunResult = { target: t.name, system: t.system, sessions, messages, seconds: r.seconds, msgPerSec: messages / r.seconds };
      if (cpu0 !== null && cpu1 !== null) result.serverCpu = (cpu1 - cpu0) / r.seconds;
      if (t.child && commitStats) result.commits = await t.child.stats();
      if (t.child && trace) result.trace = (await t.child.trace()) ?? undefined;
      if (t.postfix) {
        // Let Postfix discard what it queued, so that its delivery work does not run during the next measurement.
        const left = await t.postfix.waitQueueEmpty(120_000);
        if (left > 0) throw new Error(`Postfix still has ${left} queued messages two minutes after the run`);
      }
      await sleep(300);
      return result;
    };
    const describe = (r: RunResult) =>
      `${r.target.padEnd(10)} ${String(r.sessions).padStart(3)} sessions: ${r.messages} msgs in ${r.seconds.toFixed(2)} s = ${r.msgPerSec.toFixed(0)} msg/s` +
      (r.serverCpu !== undefined ? `, server CPU ${(r.serverCpu * 100).toFixed(0)}%` : '') +
      (r.commits ? `, commits ${JSON.stringify(r.commits)}` : '') +
      (r.trace ? `\n    trace (ms, mean/p50/p90): ${describeTrace(r.trace)}` : '');

    for (const sessions of sessionRows) {
      const messages = messagesFor(sessions);
      for (const t of targets) log(`  warm-up ${describe(await once(t, sessions, warmupFor(sessions)))}`);
      for (const t of targets) if (t.child && commitStats) await t.child.stats(); // reset after the warm-up
      const profiles = new Map<Target, string>();
      if (cpuProf) {
        for (const t of targets) {
          if (!t.child) continue;
          const file = join(OUT_DIR, 'prof', `${t.name.replace(/[^A-Za-z0-9,-]+/g, '-')}-${sessions}s.cpuprofile`);
          mkdirSync(dirname(file), { recursive: true });
          await t.child.profileStart();
          profiles.set(t, file);
        }
      }
      for (let i = 0; i < runs; i++) {
        for (const t of targets) {
          const r = await once(t, sessions, messages);
          results.push(r);
          log(`  run ${i + 1}   ${describe(r)}`);
        }
      }
      for (const [t, file] of profiles) {
        await t.child!.profileStop(file);
        log(`  CPU profile of ${t.name} during the measured runs: ${file}`);
      }
    }

    // Correctness: nothing acknowledged is missing.
    for (const t of targets) {
      if (t.child) {
        const stored = await t.child.count();
        verification[t.name] = { sent: t.sent, stored };
        if (stored !== t.sent) throw new Error(`${t.name} acknowledged ${t.sent} messages but stored ${stored}`);
      } else if (t.postfix) {
        await t.postfix.waitQueueEmpty(60_000);
        // The log daemon writes asynchronously; give it a moment to catch up.
        let delivered = t.postfix.delivered();
        for (let i = 0; i < 50 && delivered < t.sent; i++) {
          await sleep(100);
          delivered = t.postfix.delivered();
        }
        verification[t.name] = { sent: t.sent, discarded: delivered };
        if (delivered !== t.sent) throw new Error(`Postfix acknowledged ${t.sent} messages but discarded ${delivered}`);
      }
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  // Rows: median per (target, sessions), ratio against Postfix at the same session count.
  const rows: Row[] = [];
  for (const sessions of sessionRows) {
    const group: Row[] = [];
    for (const t of targets) {
      const rs = results.filter((r) => r.target === t.name && r.sessions === sessions);
      if (rs.length === 0) continue;
      group.push({
        target: t.name,
        system: t.system,
        sessions,
        messages: rs[0]!.messages,
        seconds: round(median(rs.map((r) => r.seconds)), 3),
        msgPerSec: round(median(rs.map((r) => r.msgPerSec)), 1),
        ratio: null,
        runs: rs.map((r) => ({ seconds: round(r.seconds, 3), msgPerSec: round(r.msgPerSec, 1), ...(r.serverCpu !== undefined ? { serverCpu: round(r.serverCpu) } : {}) })),
      });
    }
    const base = group.find((r) => r.system === 'postfix');
    for (const row of group) row.ratio = base ? round(row.msgPerSec / base.msgPerSec) : null;
    rows.push(...group);
  }

  out('| system | sessions | messages | seconds | msg/s | ratio (to Postfix) |');
  out('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    out(`| ${r.system === 'postfix' ? `Postfix ${postfixVer}` : r.target} | ${r.sessions} | ${r.messages} | ${r.seconds.toFixed(2)} | ${r.msgPerSec.toFixed(0)} | ${r.ratio === null ? '-' : r.ratio.toFixed(2)} |`);
  }
  out();
  out(`runs (msg/s, in order): ${rows.map((r) => `${r.target}@${r.sessions}: ${r.runs.map((x) => x.msgPerSec.toFixed(0)).join(', ')}`).join('; ')}`);
  const cpu = rows.filter((r) => r.runs.some((x) => x.serverCpu !== undefined));
  if (cpu.length) out(`twoway child CPU per wall second (1.00 = one core): ${cpu.map((r) => `${r.target}@${r.sessions}: ${r.runs.map((x) => x.serverCpu?.toFixed(2)).join(', ')}`).join('; ')}`);
  out(`verified (acknowledged = stored/discarded): ${JSON.stringify(verification)}`);
  const machineAfter = describeMachine();
  out(`load average at end: ${machineAfter.loadavg.join(' ')}`);
  out('target (docs/architecture.md, performance targets): twoway >= 1.5x Postfix');

  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, variants.length ? 'smtp-accept.variants.json' : 'smtp-accept.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        bench: 'smtp-accept',
        date: new Date().toISOString(),
        quick,
        profiled: cpuProf,
        machine: { ...machine, postfix: postfixVer, loadavgEnd: machineAfter.loadavg },
        load: {
          tool: 'smtp-source',
          args: smtpSourceArgs({ host: '127.0.0.1', port: 0, sessions: 0, messages: 0, size: SIZE, from: SENDER, to: USER, helo: HELO, reuseConnections: reuse }).join(' '),
          messageBytes: SIZE,
          runs,
          statistic: 'median',
        },
        target: { metric: 'msgPerSec', ratioAtLeast: 1.5, against: 'postfix' },
        verification,
        rows,
        results,
      },
      null,
      2,
    ) + '\n',
  );
  log(`wrote ${file}`);
}

/** One line per trace: each stage's mean/p50/p90 (bench/lib/accept-trace.ts). */
function describeTrace(t: Record<string, unknown>): string {
  return Object.entries(t)
    .map(([k, v]) => {
      if (typeof v !== 'object' || v === null) return `${k} ${String(v)}`;
      const o = v as Record<string, number>;
      if ('count' in o) return `${k} ${o.count}`;
      if ('mean' in o && 'p50' in o && 'p90' in o) return `${k} ${o.mean}/${o.p50}/${o.p90}${k.startsWith('round') || k === 'fsync' ? ` max ${o.max} sum ${o.sum}` : ''}`;
      return `${k} ${JSON.stringify(o)}`;
    })
    .join('; ');
}

main().catch((err: unknown) => {
  if (interrupted) return; // the signal handler is cleaning up and will exit
  process.stderr.write(`smtp-accept: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
