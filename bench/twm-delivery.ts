/**
 * Two-Way Mail delivery vs SMTP relay between the same two twoway servers,
 * the same messages, in one run (issue #4; docs/architecture.md "Performance targets": "a TWM delivery
 * (notice -> fetch -> stored -> receipt) no slower than an SMTP relay of the
 * same message between two of our servers").
 *
 *   npx tsx bench/twm-delivery.ts                 # about 1-2 minutes
 *   BENCH_QUICK=1 npx tsx bench/twm-delivery.ts   # smoke run
 *
 * Topology (both servers are child processes, bench/lib/twoway-server.ts,
 * fresh SQLite stores, [twm] on with a private CA and `lab = true`):
 *
 *   A (a.test, 127.0.0.2)  ann@a.test submits (STARTTLS + AUTH)
 *     --TWM: notice -> B fetches from A's SRV target -> stored -> receipt-->  bea@b.test       on B
 *     --SMTP: MX lookup, STARTTLS, DKIM signed and verified-------------->  bea@b-smtp.test  on B
 *   B (127.0.0.3) serves b.test AND b-smtp.test: b.test publishes the TWM
 *   SRV record, b-smtp.test only an MX pointing at the same server. So A's
 *   router picks TWM for one and SMTP for the other: the same two processes
 *   and stores on both paths, only the route differs. Both recipients are in
 *   `screen` mode with ann@a.test in their address book (allowed, so TWM
 *   fetches at once and both land in INBOX).
 *
 * A run: N messages of 10 KB submitted to A over `sessions` pooled
 * connections; timed from the first submission until B stored the last one
 * (throughput). Per-message latency: from A's 250 to the submission (the
 * driver's clock) until B's `received_at` for it (B's clock; same machine).
 * TWM runs also wait for every receipt to reach A ("delivered" in A's sent
 * status). One warm-up per path, then alternating runs, medians reported.
 *
 * fetch_jitter: B starts a fetch for an allowed sender after a random delay
 * of up to fetch_jitter (protocol 8.4, a privacy SHOULD: fetch timing must
 * not reveal when the user is online). The benchmark runs with "0s" (set
 * BENCH_FETCH_JITTER=1s to include it; it adds 0-1 s, mean 0.5 s, to each
 * TWM latency), and says so in its output. Rate limits are raised (bench/lib/twm-lab.ts): notices per
 * sending domain ([twm] notices_per_second, notice_burst) and requests per
 * client address (protocol 12.7's 20/s, burst 100; not in the config, set
 * at run time): with the defaults two servers exchange at most about 7-10
 * TWM messages/s (three requests each) and the rest are 429s and retries.
 *
 * Output: Markdown on stdout, bench/out/twm-delivery.json (`rows[]` with
 * system, sessions, messages, seconds, msgPerSec, ratio, latency, plus
 * `markdown` for bench/run.ts).
 *
 * Environment: BENCH_QUICK=1, BENCH_RUNS (3), BENCH_MESSAGES (1500; 500 until
 * session 16, when runs of about a second still rose run after run, 439 to 655 msg/s
 * in seven), BENCH_SESSIONS (20), BENCH_TIMEOUT (seconds per run, 120), BENCH_WARMUP
 * (messages per path before the measured runs, 4000, 1000 until session 16; the quick
 * run 100: both servers' JIT is still compiling the three requests' code after a
 * few thousand, and a mail server runs for days),
 * BENCH_LOG_LEVEL (both servers' log level, default warn; info logs each notice, fetch and
 * receipt with its time, on stderr: a message's timeline),
 * BENCH_CPU_PROF=1 (V8 profiles of A and B during the measured TWM and SMTP
 * runs together: bench/out/prof/twm-delivery-{sender,receiver}.cpuprofile;
 * BENCH_CPU_PROF=twm or smtp: during that path's runs only, one pair of
 * files per run, twm-delivery-{sender,receiver}-<path>-<run>.cpuprofile).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { describeMachine } from './lib/machine.ts';
import { cpuSeconds, writeCounters } from './lib/proc-cpu.ts';
import { BENCH_FETCH_JITTER, BENCH_NOTICE_RATE, BENCH_TWM_CLIENT_RATE, createTwmLab, twmRecords, twmSection } from './lib/twm-lab.ts';
import { BENCH_PASSWORD, startTwowayChild, type TwowayChild } from './lib/twoway-child.ts';
import { commonFreePort } from '../test/helpers/server.ts';

type Path = 'twm' | 'smtp';

interface RunResult {
  path: Path;
  messages: number;
  seconds: number;
  msgPerSec: number;
  submitSeconds: number;
  latencyMedianMs: number;
  latencyP95Ms: number;
  /** TWM: first submission until A recorded the last `delivered` receipt. */
  receiptsSeconds: number | null;
  cpuMsPerMsg: number | null;
  /** The same split per server: [A (sender), B (receiver)]. */
  cpuMsPerMsgEach: [number, number] | null;
  /** Write system calls (WAL pages and socket writes alike) and kilobytes written per message: [A, B]. */
  writesPerMsgEach: [number, number] | null;
  writeKbPerMsgEach: [number, number] | null;
}

interface Row {
  system: string;
  sessions: number;
  messages: number;
  seconds: number;
  msgPerSec: number;
  /** msg/s relative to the SMTP relay (1 for SMTP). */
  ratio: number | null;
  latencyMedianMs: number;
  latencyP95Ms: number;
  receiptsSeconds: number | null;
  cpuMsPerMsg: number | null;
  runs: Array<Omit<RunResult, 'path' | 'messages'>>;
}

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(here, 'out');
const SIZE = 10 * 1024;
const A = { host: '127.0.0.2', domain: 'a.test' };
const B = { host: '127.0.0.3', domain: 'b.test', smtpDomain: 'b-smtp.test' };
const SENDER = `ann@${A.domain}`;
const RCPT: Record<Path, string> = { twm: `bea@${B.domain}`, smtp: `bea@${B.smtpDomain}` };

const quick = process.env.BENCH_QUICK === '1';
const runs = Number(process.env.BENCH_RUNS ?? (quick ? 1 : 3));
const messages = Number(process.env.BENCH_MESSAGES ?? (quick ? 100 : 1500));
const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
const warmup = Number(process.env.BENCH_WARMUP ?? (quick ? Math.max(sessions, Math.round(messages / 5)) : 4000));
const runTimeoutMs = Number(process.env.BENCH_TIMEOUT ?? 120) * 1000;
const cpuProf = process.env.BENCH_CPU_PROF === '1';
const logLevel = process.env.BENCH_LOG_LEVEL ?? 'warn';
/** One path profiled alone (BENCH_CPU_PROF=twm|smtp), so that its profile holds nothing of the other. */
const cpuProfPath: Path | null = process.env.BENCH_CPU_PROF === 'twm' || process.env.BENCH_CPU_PROF === 'smtp' ? process.env.BENCH_CPU_PROF : null;

const log = (s = '') => process.stderr.write(s + '\n');
const out = (s = '') => process.stdout.write(s + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}
const median = (xs: number[]) => quantile(xs, 0.5);

/** A 10 KB message; the subject is its tag, which B's listing gives back. */
function message(to: string, tag: string): Buffer {
  const head =
    `From: <${SENDER}>\r\nTo: <${to}>\r\nSubject: ${tag}\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-ID: <${tag}.${process.pid}@bench.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`;
  const line = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 twm bench payload line\r\n';
  return Buffer.from(head + line.repeat(Math.ceil(SIZE / line.length)).slice(0, SIZE));
}

/** Submits n messages; resolves with the time (ms since the epoch) each got its 250 from A. */
async function submitAll(port: number, to: string, tags: string[]): Promise<Map<string, number>> {
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: sessions,
    maxMessages: Infinity,
    host: A.host,
    port,
    name: 'client.bench.test',
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: SENDER, pass: BENCH_PASSWORD },
  });
  const accepted = new Map<string, number>();
  try {
    await Promise.all(
      tags.map(async (tag) => {
        await transport.sendMail({ envelope: { from: SENDER, to: [to] }, raw: message(to, tag) });
        accepted.set(tag, Date.now());
      }),
    );
  } finally {
    transport.close();
  }
  return accepted;
}

interface Servers {
  a: TwowayChild;
  b: TwowayChild;
  /** TWM messages sent so far (what A's sent status must show as delivered). */
  twmSent: number;
}

async function runOnce(s: Servers, path: Path, n: number, label: string): Promise<RunResult> {
  const rcpt = RCPT[path];
  const tags = Array.from({ length: n }, (_, i) => `${label}-${path}-${i}`);
  const before = await s.b.countOf(rcpt);
  const cpu0 = [cpuSeconds(s.a.pid), cpuSeconds(s.b.pid)];
  const io0 = [writeCounters(s.a.pid), writeCounters(s.b.pid)];
  const t0 = Date.now();
  const elapsed = () => (Date.now() - t0) / 1000;
  let submitSeconds = NaN;
  let accepted: Map<string, number> | null = null;
  let submitError: unknown = null;
  const submitting = submitAll(s.a.submissionPort!, rcpt, tags).then(
    (m) => {
      accepted = m;
      submitSeconds = elapsed();
    },
    (err: unknown) => {
      submitError = err;
    },
  );
  let stored = before;
  for (;;) {
    if (submitError) throw new Error(`${path}: submission failed: ${String(submitError)}`);
    stored = await s.b.countOf(rcpt);
    if (stored - before >= n) break;
    if (elapsed() * 1000 > runTimeoutMs) throw new Error(`${path}: only ${stored - before} of ${n} messages stored at B after ${runTimeoutMs / 1000} s; A's queue ${JSON.stringify(await s.a.queue())}, A's TWM states ${JSON.stringify(await s.a.sent(SENDER))}`);
    await sleep(20);
  }
  const seconds = elapsed();
  await submitting;
  if (submitError || !accepted) throw new Error(`${path}: submission failed: ${String(submitError)}`);
  const acceptedAt: Map<string, number> = accepted;
  if (stored - before !== n) throw new Error(`${path}: B stored ${stored - before} messages for ${n} sent`);

  // Every message of this run at B exactly once, in INBOX, with its latency.
  const mine = new Set(tags);
  const seen = new Map<string, { at: number; mailbox: string }>();
  for (const [subject, at, mailbox] of await s.b.received(rcpt)) {
    if (subject === null || !mine.has(subject)) continue;
    if (seen.has(subject)) throw new Error(`${path}: ${subject} stored twice at B`);
    seen.set(subject, { at, mailbox });
  }
  const latencies: number[] = [];
  for (const tag of tags) {
    const got = seen.get(tag);
    if (!got) throw new Error(`${path}: ${tag} missing at B`);
    if (got.mailbox !== 'INBOX') throw new Error(`${path}: ${tag} landed in ${got.mailbox}, not INBOX`);
    latencies.push(got.at - acceptedAt.get(tag)!);
  }

  let receiptsSeconds: number | null = null;
  if (path === 'twm') {
    s.twmSent += n;
    // Receipts: every TWM recipient A ever notified is `delivered` (none pending, fetched or failed).
    for (;;) {
      const states = await s.a.sent(SENDER);
      if ((states.delivered ?? 0) === s.twmSent && Object.keys(states).every((k) => k === 'delivered')) break;
      if (elapsed() * 1000 > runTimeoutMs) throw new Error(`twm: receipts not all delivered: ${JSON.stringify(states)} for ${s.twmSent} sent`);
      await sleep(50);
    }
    receiptsSeconds = elapsed();
  }
  // A's queue drained (SMTP: delivered; TWM: "delivered to the TWM outbox").
  for (;;) {
    const q = await s.a.queue();
    if (Object.entries(q).every(([state]) => state === 'delivered')) break;
    if (elapsed() * 1000 > runTimeoutMs + 60_000) throw new Error(`${path}: A's queue not drained: ${JSON.stringify(q)}`);
    await sleep(50);
  }
  const cpu1 = [cpuSeconds(s.a.pid), cpuSeconds(s.b.pid)];
  const io1 = [writeCounters(s.a.pid), writeCounters(s.b.pid)];
  const cpu = cpu0.every((x) => x !== null) && cpu1.every((x) => x !== null) ? cpu1[0]! + cpu1[1]! - cpu0[0]! - cpu0[1]! : null;
  const io = [...io0, ...io1].every((x) => x !== null) ? { a0: io0[0]!, b0: io0[1]!, a1: io1[0]!, b1: io1[1]! } : null;
  await sleep(300);
  return {
    path,
    messages: n,
    seconds,
    msgPerSec: n / seconds,
    submitSeconds,
    latencyMedianMs: median(latencies),
    latencyP95Ms: quantile(latencies, 0.95),
    receiptsSeconds,
    cpuMsPerMsg: cpu === null ? null : (cpu * 1000) / n,
    cpuMsPerMsgEach: cpu === null ? null : [((cpu1[0]! - cpu0[0]!) * 1000) / n, ((cpu1[1]! - cpu0[1]!) * 1000) / n],
    writesPerMsgEach: io === null ? null : [(io.a1.calls - io.a0.calls) / n, (io.b1.calls - io.b0.calls) / n],
    writeKbPerMsgEach: io === null ? null : [(io.a1.bytes - io.a0.bytes) / 1024 / n, (io.b1.bytes - io.b0.bytes) / 1024 / n],
  };
}

async function main(): Promise<void> {
  for (const [name, v] of [['BENCH_RUNS', runs], ['BENCH_MESSAGES', messages], ['BENCH_SESSIONS', sessions], ['BENCH_WARMUP', warmup]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  }
  const machine = describeMachine();
  out(`# Two-Way Mail delivery vs SMTP relay between the same two twoway servers${quick ? ' (BENCH_QUICK)' : ''}`);
  out();
  out(`machine: ${machine.nproc} CPUs, ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.kernel}; node ${machine.node}; load average at start ${machine.loadavg.join(' ')}`);
  out(`load: ${messages} messages of 10 KB per run, submitted to A over ${sessions} pooled STARTTLS+AUTH sessions; timed until B stored the last one; median of ${runs} alternating run(s) after one warm-up of ${warmup} per path; fetch_jitter = "${BENCH_FETCH_JITTER}" (BENCH_FETCH_JITTER); rate limits raised: notices_per_second = notice_burst = ${BENCH_NOTICE_RATE}, per client address ${BENCH_TWM_CLIENT_RATE.perSecond}/s`);
  out();

  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    log(`\n${sig}: stopping servers…`);
    interrupted = true;
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: RunResult[] = [];
  let verification: Record<string, unknown> = {};
  try {
    const dns = await startDnsServer();
    cleanups.push(() => dns.close());
    const lab = createTwmLab();
    cleanups.push(async () => lab.close());
    const dirs = [mkdtempSync(join(tmpdir(), 'twoway-bench-twm-a-')), mkdtempSync(join(tmpdir(), 'twoway-bench-twm-b-'))];
    cleanups.push(async () => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });
    // MX hosts all listen on one port (A delivers to that port on any MX).
    const smtpPort = await commonFreePort([A.host, B.host]);
    const stop = (name: string, child: TwowayChild) => async () => {
      const code = await child.stop();
      if (code !== 0) log(`twoway ${name} child exited with code ${code}`);
    };
    const [b, a] = await Promise.all([
      startTwowayChild({
        dir: dirs[1]!,
        dns: dns.address,
        domain: B.domain,
        domains: [B.smtpDomain],
        users: [{ address: RCPT.twm, mode: 'screen' }, { address: RCPT.smtp, mode: 'screen' }],
        host: B.host,
        smtpPort,
        extraToml: twmSection(lab, B.domain, B.host),
        logLevel,
      }),
      startTwowayChild({
        dir: dirs[0]!,
        dns: dns.address,
        domain: A.domain,
        user: SENDER,
        host: A.host,
        deliveryPort: smtpPort,
        extraToml: twmSection(lab, A.domain, A.host),
        logLevel,
      }),
    ]);
    cleanups.push(stop('B', b), stop('A', a));
    if (a.submissionPort === null || a.twmPort === null || b.twmPort === null) throw new Error('a child lacks submission or its TWM endpoint');
    dns.add([
      { name: A.domain, type: 'MX', data: { preference: 10, exchange: `mx.${A.domain}` } },
      { name: `mx.${A.domain}`, type: 'A', data: A.host },
      { name: A.domain, type: 'TXT', data: `v=spf1 ip4:${A.host} -all` },
      { name: `_dmarc.${A.domain}`, type: 'TXT', data: 'v=DMARC1; p=reject' },
      ...a.dkimRecords,
      ...twmRecords(A.domain, A.host, a.twmPort, a.twmKeyRecords),
      { name: B.domain, type: 'MX', data: { preference: 10, exchange: `mx.${B.domain}` } },
      { name: `mx.${B.domain}`, type: 'A', data: B.host },
      ...twmRecords(B.domain, B.host, b.twmPort, b.twmKeyRecords),
      // The SMTP-only domain of the same server: an MX, no _twoway._tcp SRV record.
      { name: B.smtpDomain, type: 'MX', data: { preference: 10, exchange: `mx.${B.domain}` } },
    ]);
    for (const r of Object.values(RCPT)) await b.allow(r, SENDER);
    log(`A ${A.domain} (pid ${a.pid}): submission ${A.host}:${a.submissionPort}, TWM ${A.host}:${a.twmPort}; B ${B.domain} + ${B.smtpDomain} (pid ${b.pid}): SMTP ${B.host}:${smtpPort}, TWM ${B.host}:${b.twmPort}`);

    const servers: Servers = { a, b, twmSent: 0 };
    const paths: Path[] = ['twm', 'smtp'];
    const describe = (r: RunResult) =>
      `${r.path.padEnd(4)} ${r.messages} msgs in ${r.seconds.toFixed(2)} s = ${r.msgPerSec.toFixed(0)} msg/s, latency median ${r.latencyMedianMs.toFixed(0)} ms p95 ${r.latencyP95Ms.toFixed(0)} ms` +
      (r.receiptsSeconds !== null ? `, all receipts after ${r.receiptsSeconds.toFixed(2)} s` : '') +
      (r.cpuMsPerMsg !== null ? `, servers' CPU ${r.cpuMsPerMsg.toFixed(2)} ms/msg` : '') +
      (r.cpuMsPerMsgEach !== null ? ` (A ${r.cpuMsPerMsgEach[0].toFixed(2)}, B ${r.cpuMsPerMsgEach[1].toFixed(2)})` : '') +
      (r.writesPerMsgEach !== null && r.writeKbPerMsgEach !== null
        ? `, writes/msg A ${r.writesPerMsgEach[0].toFixed(1)} (${r.writeKbPerMsgEach[0].toFixed(0)} KB), B ${r.writesPerMsgEach[1].toFixed(1)} (${r.writeKbPerMsgEach[1].toFixed(0)} KB)`
        : '');
    for (const p of paths) log(`  warm-up ${describe(await runOnce(servers, p, warmup, 'warmup'))}`);
    if (cpuProf) await Promise.all([a.profileStart(), b.profileStart()]);
    for (let i = 0; i < runs; i++) {
      // Alternate which path goes first, so neither always runs on a warmer machine.
      for (const p of i % 2 === 0 ? paths : [...paths].reverse()) {
        if (cpuProfPath === p) await Promise.all([a.profileStart(), b.profileStart()]);
        const r = await runOnce(servers, p, messages, `run${i + 1}`);
        if (cpuProfPath === p) {
          mkdirSync(join(OUT_DIR, 'prof'), { recursive: true });
          const base = join(OUT_DIR, 'prof', 'twm-delivery');
          await a.profileStop(`${base}-sender-${p}-${i + 1}.cpuprofile`);
          await b.profileStop(`${base}-receiver-${p}-${i + 1}.cpuprofile`);
        }
        results.push(r);
        log(`  run ${i + 1}   ${describe(r)}`);
      }
    }
    if (cpuProf) {
      mkdirSync(join(OUT_DIR, 'prof'), { recursive: true });
      const files = [join(OUT_DIR, 'prof', 'twm-delivery-sender.cpuprofile'), join(OUT_DIR, 'prof', 'twm-delivery-receiver.cpuprofile')];
      await a.profileStop(files[0]!);
      await b.profileStop(files[1]!);
      log(`  CPU profiles: ${files.join(', ')}`);
    }
    // End of run: everything accounted for.
    const total = warmup + runs * messages;
    const [twmStored, smtpStored, sent, queue] = [await b.countOf(RCPT.twm), await b.countOf(RCPT.smtp), await a.sent(SENDER), await a.queue()];
    verification = { sentPerPath: total, storedAtB: { twm: twmStored, smtp: smtpStored }, twmReceipts: sent, senderQueue: queue };
    if (twmStored !== total || smtpStored !== total || sent.delivered !== total || Object.keys(sent).length !== 1 || queue.delivered !== 2 * total || Object.keys(queue).length !== 1) {
      throw new Error(`verification failed: ${JSON.stringify(verification)}`);
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interrupted) return;

  const rows: Row[] = (['twm', 'smtp'] as const).map((p) => {
    const rs = results.filter((r) => r.path === p);
    const cpu = rs.map((r) => r.cpuMsPerMsg).filter((x): x is number => x !== null);
    const receipts = rs.map((r) => r.receiptsSeconds).filter((x): x is number => x !== null);
    return {
      system: p === 'twm' ? 'twoway TWM (notice, fetch, receipt)' : 'twoway SMTP relay',
      sessions,
      messages,
      seconds: round(median(rs.map((r) => r.seconds)), 3),
      msgPerSec: round(median(rs.map((r) => r.msgPerSec)), 1),
      ratio: null,
      latencyMedianMs: Math.round(median(rs.map((r) => r.latencyMedianMs))),
      latencyP95Ms: Math.round(median(rs.map((r) => r.latencyP95Ms))),
      receiptsSeconds: receipts.length ? round(median(receipts), 3) : null,
      cpuMsPerMsg: cpu.length ? round(median(cpu)) : null,
      runs: rs.map(({ path: _p, messages: _m, ...r }) => ({
        ...r,
        seconds: round(r.seconds, 3),
        msgPerSec: round(r.msgPerSec, 1),
        submitSeconds: round(r.submitSeconds, 3),
        latencyMedianMs: Math.round(r.latencyMedianMs),
        latencyP95Ms: Math.round(r.latencyP95Ms),
        receiptsSeconds: r.receiptsSeconds === null ? null : round(r.receiptsSeconds, 3),
        cpuMsPerMsg: r.cpuMsPerMsg === null ? null : round(r.cpuMsPerMsg),
      })),
    };
  });
  const smtpRow = rows[1]!;
  for (const r of rows) r.ratio = round(r.msgPerSec / smtpRow.msgPerSec);

  const table = [
    '| path | sessions | messages | seconds | msg/s | ratio to SMTP | latency median (ms) | latency p95 (ms) | all receipts after (s) | servers\' CPU ms/msg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.system} | ${r.sessions} | ${r.messages} | ${r.seconds.toFixed(2)} | ${r.msgPerSec.toFixed(0)} | ${r.ratio!.toFixed(2)} | ${r.latencyMedianMs} | ${r.latencyP95Ms} | ${r.receiptsSeconds === null ? '-' : r.receiptsSeconds.toFixed(2)} | ${r.cpuMsPerMsg === null ? '-' : r.cpuMsPerMsg.toFixed(2)} |`,
    ),
  ];
  const twmRow = rows[0]!;
  const notes = [
    `Target (docs/architecture.md, performance targets): TWM no slower than the SMTP relay. Throughput ratio TWM/SMTP ${twmRow.ratio!.toFixed(2)}; median latency TWM/SMTP ${(twmRow.latencyMedianMs / smtpRow.latencyMedianMs).toFixed(2)}.`,
    `fetch_jitter = "${BENCH_FETCH_JITTER}" (a privacy delay, protocol 8.4, default 10 s; each TWM delivery waits a random time up to it).`,
    `runs (msg/s, in order): ${rows.map((r) => `${r.system}: ${r.runs.map((x) => x.msgPerSec.toFixed(0)).join(', ')}`).join('; ')}`,
  ];
  for (const l of table) out(l);
  out();
  for (const l of notes) out(l);
  out(`verified: ${JSON.stringify(verification)}`);
  const machineAfter = describeMachine();
  out(`load average at end: ${machineAfter.loadavg.join(' ')}`);

  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, 'twm-delivery.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        bench: 'twm-delivery',
        date: new Date().toISOString(),
        quick,
        profiled: cpuProfPath ?? cpuProf,
        machine: { ...machine, loadavgEnd: machineAfter.loadavg },
        load: { messageBytes: SIZE, sessions, messages, warmup, runs, statistic: 'median', fetchJitter: BENCH_FETCH_JITTER, noticeRate: BENCH_NOTICE_RATE },
        topology: `${A.domain}@${A.host} -> ${B.domain} (TWM) and ${B.smtpDomain} (SMTP, MX only), both served by one server @${B.host}`,
        verification,
        rows,
        results,
        markdown: [...table, '', ...notes.map((n) => `${n}\n`)].join('\n'),
      },
      null,
      2,
    ) + '\n',
  );
  log(`wrote ${file}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`twm-delivery: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
