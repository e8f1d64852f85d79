/**
 * SMTP relay throughput: two twoway servers vs two Postfix instances, the same
 * load in the same run.
 *
 *   npx tsx bench/smtp-relay.ts                 # about 2-3 minutes
 *   BENCH_QUICK=1 npx tsx bench/smtp-relay.ts   # smoke run
 *
 * Each system is a sender and a receiver on their own loopback addresses:
 *
 *   twoway  A (a.test, 127.0.0.2) --SMTP, MX lookup in the embedded DNS--> B (b.test, 127.0.0.3)
 *   Postfix A (127.0.0.4) --transport_maps smtp:[127.0.0.5]:PORT-->         B (pb.test, 127.0.0.5, Maildir)
 *
 * The load: N messages of 10 KB, submitted to the sender by one Node SMTP
 * driver (nodemailer, pooled: `sessions` parallel connections, STARTTLS on
 * both). One run measures from the first submission until the receiver has
 * stored all N: twoway B's message count for its user, Postfix B's Maildir
 * files. One warm-up per system, then alternating runs; the median is
 * reported, with the ratio twoway / Postfix.
 *
 * Asymmetries, on purpose (each system as it is configured out of the box):
 * - Submission: twoway requires AUTH (PLAIN, after STARTTLS); Postfix's smtpd
 *   relays for mynetworks (loopback) without AUTH (Debian's Postfix has no
 *   SASL without Dovecot or Cyrus). Both use STARTTLS.
 * - twoway signs every message twice (RSA and Ed25519 DKIM) and keeps a copy
 *   in the sender's Sent mailbox; its receiver checks SPF, both DKIM
 *   signatures and DMARC. Postfix does none of this.
 * - Stores: twoway's are SQLite (WAL, synchronous=FULL; fsync before 250),
 *   Postfix's are its queue files (fsync before 250) and the receiver's
 *   Maildir (fsync before the delivery counts).
 * - Outbound concurrency: twoway's defaults (20 calls per destination domain,
 *   as many connections per host, sessions reused) vs Postfix's (up to 20
 *   parallel deliveries per destination, slow start from 5; a connection per
 *   delivery unless a backlog makes its connection cache kick in).
 * - The twoway servers run as child processes; the driver (this process)
 *   also runs the embedded DNS server, which only twoway uses.
 *
 * Output: a Markdown table on stdout and bench/out/smtp-relay.json (`rows[]`:
 * system, sessions, messages, seconds, msgPerSec, ratio, plus the CPU seconds
 * per message of both servers of a system).
 *
 * Environment:
 *   BENCH_QUICK=1        smoke run (100 messages, one run)
 *   BENCH_RUNS           measured runs per system (default 3)
 *   BENCH_MESSAGES       messages per run (default 1000)
 *   BENCH_SESSIONS       parallel submission sessions (default 20)
 *   BENCH_SYSTEMS        default twoway,postfix
 *   BENCH_TIMEOUT        seconds one run may take before it counts as failed (default 120)
 *   BENCH_SENDER_TREE    another checkout whose sources run the twoway sender (the receiver is
 *                        this one's): the outbound path before/after a change, in one sitting
 *   BENCH_SENDER_NODE_FLAGS  node flags for the twoway sender, space-separated (e.g. "--perf-basic-prof"
 *                        for perf record -p, or "--trace-deopt"; its output comes with the child's)
 *   BENCH_RECEIVER_NODE_FLAGS  the same for the twoway receiver (its auth worker threads too, for perf record -p)
 *   BENCH_CPU_PROF=1     V8 CPU profiles of the twoway sender and receiver during the
 *                        measured runs, in bench/out/prof/relay-{sender,receiver}.cpuprofile
 *                        (summarise with npx tsx bench/lib/cpuprofile-summary.ts FILE)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { describeMachine } from './lib/machine.ts';
import { postfixVersion, startPostfixInstance, type PostfixInstance } from './lib/postfix.ts';
import { cpuSeconds, treeCpuSeconds } from './lib/proc-cpu.ts';
import { BENCH_PASSWORD, startTwowayChild } from './lib/twoway-child.ts';
import { freePort } from '../test/helpers/postfix.ts';

type SystemName = 'twoway' | 'postfix';

/** One system under test: a sender, a receiver, and how to read them. */
interface RelaySystem {
  name: SystemName;
  submit: { host: string; port: number; auth?: { user: string; pass: string } };
  from: string;
  to: string;
  /** Messages the receiver has stored for `to` so far. */
  stored(): Promise<number>;
  /** Waits until the sender has nothing left to deliver; throws with details if that takes too long. */
  settle(timeoutMs: number): Promise<void>;
  /** CPU seconds of each server so far (null if not measurable). */
  cpu(): { sender: number; receiver: number } | null;
  /** Checks at the end: everything sent was stored, nothing failed or deferred. */
  verify(sent: number): Promise<Record<string, unknown>>;
  describe(): string;
  /** twoway only: starts / stops (writing the files) the children's CPU profilers. */
  profile?: { start(): Promise<void>; stop(): Promise<string[]> };
}

interface RunResult {
  system: SystemName;
  sessions: number;
  messages: number;
  /** First submission until the receiver stored the last message. */
  seconds: number;
  msgPerSec: number;
  /** First submission until the sender accepted the last one (250 to the driver). */
  submitSeconds: number;
  /** CPU seconds of sender and receiver together, per message, in milliseconds. */
  cpuMsPerMsg: number | null;
  /** The sender's part of it. */
  senderCpuMsPerMsg: number | null;
}

interface Row {
  system: SystemName;
  sessions: number;
  messages: number;
  seconds: number;
  msgPerSec: number;
  /** msg/s relative to Postfix (1 for Postfix). */
  ratio: number | null;
  submitSeconds: number;
  cpuMsPerMsg: number | null;
  senderCpuMsPerMsg: number | null;
  runs: Array<{ seconds: number; msgPerSec: number; submitSeconds: number; cpuMsPerMsg: number | null; senderCpuMsPerMsg: number | null }>;
}

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(here, 'out');
const SIZE = 10 * 1024;

const TW_A = { host: '127.0.0.2', domain: 'a.test' };
const TW_B = { host: '127.0.0.3', domain: 'b.test' };
const PF_A = { host: '127.0.0.4', domain: 'pa.test' };
const PF_B = { host: '127.0.0.5', domain: 'pb.test' };

const quick = process.env.BENCH_QUICK === '1';
const runs = Number(process.env.BENCH_RUNS ?? (quick ? 1 : 3));
const messages = Number(process.env.BENCH_MESSAGES ?? (quick ? 100 : 1000));
const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
const warmup = Math.max(sessions, Math.round(messages / 5));
const runTimeoutMs = Number(process.env.BENCH_TIMEOUT ?? 120) * 1000;
const cpuProf = process.env.BENCH_CPU_PROF === '1';
const senderTree = process.env.BENCH_SENDER_TREE;
const senderScript = senderTree ? { serverScript: join(senderTree, 'bench', 'lib', 'twoway-server.ts') } : {};
const senderFlags = process.env.BENCH_SENDER_NODE_FLAGS ? { nodeFlags: process.env.BENCH_SENDER_NODE_FLAGS.split(' ') } : {};
const receiverFlags = process.env.BENCH_RECEIVER_NODE_FLAGS ? { nodeFlags: process.env.BENCH_RECEIVER_NODE_FLAGS.split(' ') } : {};
const systems = new Set((process.env.BENCH_SYSTEMS ?? 'twoway,postfix').split(',').map((s) => s.trim()));

const log = (s = '') => process.stderr.write(s + '\n');
const out = (s = '') => process.stdout.write(s + '\n');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let interrupted = false;

/** A 10 KB message (body of printable lines, like smtp-source's payload). */
function message(from: string, to: string, tag: string): Buffer {
  const head =
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: relay bench ${tag}\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-ID: <${tag}.${process.pid}@bench.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n`;
  const line = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 relay bench payload line\r\n';
  return Buffer.from(head + line.repeat(Math.ceil(SIZE / line.length)).slice(0, SIZE));
}

/** Submits `n` messages over `sessions` pooled connections; resolves when every one got its 250. */
async function submitAll(sys: RelaySystem, n: number, tag: string): Promise<void> {
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: sessions,
    maxMessages: Infinity,
    host: sys.submit.host,
    port: sys.submit.port,
    name: 'client.bench.test',
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    ...(sys.submit.auth ? { auth: sys.submit.auth } : {}),
  });
  try {
    await Promise.all(
      Array.from({ length: n }, (_, i) => transport.sendMail({ envelope: { from: sys.from, to: [sys.to] }, raw: message(sys.from, sys.to, `${tag}-${i}`) })),
    );
  } finally {
    transport.close();
  }
}

async function runOnce(sys: RelaySystem, n: number, tag: string): Promise<RunResult> {
  const before = await sys.stored();
  const cpu0 = sys.cpu();
  const t0 = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
  let submitSeconds = NaN;
  let submitError: unknown = null;
  const submitting = submitAll(sys, n, tag).then(
    () => {
      submitSeconds = elapsed();
    },
    (err: unknown) => {
      submitError = err;
    },
  );
  let stored = before;
  for (;;) {
    if (submitError) throw new Error(`${sys.name}: submission failed: ${String(submitError)}`);
    stored = await sys.stored();
    if (stored - before >= n) break;
    if (elapsed() * 1000 > runTimeoutMs) throw new Error(`${sys.name}: only ${stored - before} of ${n} messages stored after ${runTimeoutMs / 1000} s\n${sys.describe()}`);
    await sleep(20);
  }
  const seconds = elapsed();
  await submitting;
  if (submitError) throw new Error(`${sys.name}: submission failed: ${String(submitError)}`);
  if (stored - before !== n) throw new Error(`${sys.name}: ${stored - before} messages stored for ${n} sent`);
  await sys.settle(60_000);
  const cpu1 = sys.cpu();
  await sleep(300);
  return {
    system: sys.name,
    sessions,
    messages: n,
    seconds,
    msgPerSec: n / seconds,
    submitSeconds,
    cpuMsPerMsg: cpu0 !== null && cpu1 !== null ? ((cpu1.sender + cpu1.receiver - cpu0.sender - cpu0.receiver) * 1000) / n : null,
    senderCpuMsPerMsg: cpu0 !== null && cpu1 !== null ? ((cpu1.sender - cpu0.sender) * 1000) / n : null,
  };
}

async function startTwoway(dns: EmbeddedDnsServer, cleanups: Array<() => Promise<unknown>>): Promise<RelaySystem> {
  const dirs = [mkdtempSync(join(tmpdir(), 'twoway-bench-relay-a-')), mkdtempSync(join(tmpdir(), 'twoway-bench-relay-b-'))];
  cleanups.push(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const port = await freePort(TW_B.host);
  const start = async (dir: string, side: { host: string; domain: string }, options: { smtpPort?: number; deliveryPort?: number; serverScript?: string; nodeFlags?: string[] }) => {
    const child = await startTwowayChild({ dir, dns: dns.address, domain: side.domain, user: `bench@${side.domain}`, host: side.host, logLevel: 'warn', ...options });
    cleanups.push(async () => {
      const code = await child.stop();
      if (code !== 0) log(`twoway ${side.domain} child exited with code ${code}`);
    });
    return child;
  };
  const [b, a] = await Promise.all([start(dirs[1]!, TW_B, { smtpPort: port, ...receiverFlags }), start(dirs[0]!, TW_A, { deliveryPort: port, ...senderScript, ...senderFlags })]);
  if (a.submissionPort === null) throw new Error('the twoway sender has no submission listener');
  dns.add([
    { name: TW_B.domain, type: 'MX', data: { preference: 10, exchange: `mx.${TW_B.domain}` } },
    { name: `mx.${TW_B.domain}`, type: 'A', data: TW_B.host },
    { name: `mx.${TW_A.domain}`, type: 'A', data: TW_A.host },
    { name: TW_A.domain, type: 'TXT', data: `v=spf1 ip4:${TW_A.host} -all` },
    { name: `_dmarc.${TW_A.domain}`, type: 'TXT', data: 'v=DMARC1; p=reject' },
    ...a.dkimRecords,
  ]);
  log(`twoway: sender ${TW_A.domain} submission ${TW_A.host}:${a.submissionPort} (pid ${a.pid}) -> receiver ${TW_B.domain} MX ${TW_B.host}:${b.smtpPort} (pid ${b.pid})`);
  const pending = (states: Record<string, number>) => Object.entries(states).filter(([s]) => s !== 'delivered').reduce((n, [, c]) => n + c, 0);
  let lastQueue: Record<string, number> = {};
  return {
    name: 'twoway',
    submit: { host: TW_A.host, port: a.submissionPort, auth: { user: `bench@${TW_A.domain}`, pass: BENCH_PASSWORD } },
    from: `bench@${TW_A.domain}`,
    to: `bench@${TW_B.domain}`,
    stored: () => b.count(),
    async settle(timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        lastQueue = await a.queue();
        if (pending(lastQueue) === 0) return;
        if (Date.now() > end) throw new Error(`twoway sender queue not drained: ${JSON.stringify(lastQueue)}`);
        await sleep(50);
      }
    },
    cpu: () => {
      const x = cpuSeconds(a.pid);
      const y = cpuSeconds(b.pid);
      return x === null || y === null ? null : { sender: x, receiver: y };
    },
    async verify(sent) {
      const queue = await a.queue();
      const stored = await b.count();
      if (stored !== sent || (queue.delivered ?? 0) !== sent || pending(queue) !== 0) {
        throw new Error(`twoway: sent ${sent}, receiver stored ${stored}, sender queue ${JSON.stringify(queue)}`);
      }
      return { sent, stored, senderQueue: queue };
    },
    describe: () => `sender queue (last read): ${JSON.stringify(lastQueue)}`,
    profile: {
      async start() {
        await Promise.all([a.profileStart(), b.profileStart()]);
      },
      async stop() {
        const files = [join(OUT_DIR, 'prof', 'relay-sender.cpuprofile'), join(OUT_DIR, 'prof', 'relay-receiver.cpuprofile')];
        mkdirSync(dirname(files[0]!), { recursive: true });
        await Promise.all([a.profileStop(files[0]!), b.profileStop(files[1]!)]);
        return files;
      },
    },
  };
}

async function startPostfixPair(cleanups: Array<() => Promise<unknown>>): Promise<RelaySystem> {
  const bPort = await freePort(PF_B.host);
  const to = `bench@${PF_B.domain}`;
  const started = await Promise.allSettled([
    startPostfixInstance({
      name: 'twoway-bench-relay-postfix-a',
      host: PF_A.host,
      hostname: `mx.${PF_A.domain}`,
      bindAddress: PF_A.host,
      transports: { [PF_B.domain]: `smtp:[${PF_B.host}]:${bPort}` },
      maxSessions: Math.max(100, sessions),
    }),
    startPostfixInstance({
      name: 'twoway-bench-relay-postfix-b',
      host: PF_B.host,
      port: bPort,
      hostname: `mx.${PF_B.domain}`,
      mailboxes: { [PF_B.domain]: ['bench'] },
      maxSessions: 100,
    }),
  ]);
  // Whichever started is stopped at the end, even if the other failed.
  for (const s of started) if (s.status === 'fulfilled') cleanups.push(() => s.value.stop());
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  const [a, b] = started.map((s) => (s as PromiseFulfilledResult<PostfixInstance>).value) as [PostfixInstance, PostfixInstance];
  log(`postfix: sender ${PF_A.host}:${a.port} (${a.dir}) -> receiver ${PF_B.domain} ${PF_B.host}:${b.port} (${b.dir})`);
  const cpuOf = (p: PostfixInstance) => {
    const pid = p.masterPid();
    return pid === null ? null : treeCpuSeconds(pid);
  };
  const system: RelaySystem = {
    name: 'postfix',
    submit: { host: PF_A.host, port: a.port },
    from: `bench@${PF_A.domain}`,
    to,
    stored: async () => b.maildirCount(to),
    async settle(timeoutMs) {
      const left = (await a.waitQueueEmpty(timeoutMs)) + (await b.waitQueueEmpty(timeoutMs));
      if (left > 0) throw new Error(`Postfix queues not empty: sender ${a.queued()}, receiver ${b.queued()}`);
    },
    cpu: () => {
      const x = cpuOf(a);
      const y = cpuOf(b);
      return x === null || y === null ? null : { sender: x, receiver: y };
    },
    async verify(sent) {
      await system.settle(60_000);
      // The log daemon writes asynchronously; give it a moment to catch up.
      for (let i = 0; i < 50 && (a.delivered('smtp') < sent || b.delivered('virtual') < sent); i++) await sleep(100);
      const result = { sent, stored: b.maildirCount(to), relayed: a.delivered('smtp'), deliveredToMaildir: b.delivered('virtual') };
      if (result.stored !== sent || result.relayed !== sent || result.deliveredToMaildir !== sent) {
        throw new Error(`postfix: ${JSON.stringify(result)}`);
      }
      return result;
    },
    describe: () => `sender queue ${a.queued()}, receiver queue ${b.queued()}; sender log:\n${a.log().slice(-5).join('\n')}\nreceiver log:\n${b.log().slice(-5).join('\n')}`,
  };
  return system;
}

async function main(): Promise<void> {
  for (const [name, v] of [['BENCH_RUNS', runs], ['BENCH_MESSAGES', messages], ['BENCH_SESSIONS', sessions]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  }
  const machine = describeMachine();
  const postfixVer = await postfixVersion();
  out(`# SMTP relay between two servers: twoway vs Postfix${quick ? ' (BENCH_QUICK)' : ''}`);
  out();
  out(`machine: ${machine.nproc} CPUs, ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.kernel}; node ${machine.node}; postfix ${postfixVer}; load average at start ${machine.loadavg.join(' ')}`);
  out(`load: ${messages} messages of 10 KB per run submitted over ${sessions} pooled STARTTLS sessions (twoway with AUTH, Postfix from mynetworks); timed until the receiving server stored the last one; median of ${runs} alternating run(s) after one warm-up of ${warmup}`);
  out();

  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  };
  const onSignal = (sig: NodeJS.Signals) => {
    log(`\n${sig}: stopping servers…`);
    interrupted = true;
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: RunResult[] = [];
  const targets: RelaySystem[] = [];
  const verification: Record<string, unknown> = {};
  const sent = new Map<RelaySystem, number>();
  try {
    const dns = await startDnsServer();
    cleanups.push(() => dns.close());
    if (systems.has('twoway')) targets.push(await startTwoway(dns, cleanups));
    if (systems.has('postfix')) targets.push(await startPostfixPair(cleanups));
    if (targets.length === 0) throw new Error('nothing to run: BENCH_SYSTEMS names neither twoway nor postfix');

    const describeRun = (r: RunResult) =>
      `${r.system.padEnd(8)} ${r.messages} msgs in ${r.seconds.toFixed(2)} s = ${r.msgPerSec.toFixed(0)} msg/s (all submitted after ${r.submitSeconds.toFixed(2)} s)` +
      (r.cpuMsPerMsg !== null ? `, servers' CPU ${r.cpuMsPerMsg.toFixed(2)} ms/msg (sender ${r.senderCpuMsPerMsg?.toFixed(2)})` : '');
    for (const t of targets) {
      const r = await runOnce(t, warmup, `warmup-${t.name}`);
      sent.set(t, (sent.get(t) ?? 0) + warmup);
      log(`  warm-up ${describeRun(r)}`);
    }
    if (cpuProf) for (const t of targets) await t.profile?.start();
    for (let i = 0; i < runs; i++) {
      for (const t of targets) {
        const r = await runOnce(t, messages, `run${i + 1}-${t.name}`);
        sent.set(t, (sent.get(t) ?? 0) + messages);
        results.push(r);
        log(`  run ${i + 1}   ${describeRun(r)}`);
      }
    }
    if (cpuProf) for (const t of targets) if (t.profile) log(`  CPU profiles of ${t.name} during the measured runs: ${(await t.profile.stop()).join(', ')}`);
    for (const t of targets) verification[t.name] = await t.verify(sent.get(t) ?? 0);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const rows: Row[] = [];
  for (const t of targets) {
    const rs = results.filter((r) => r.system === t.name);
    const cpu = rs.map((r) => r.cpuMsPerMsg).filter((x): x is number => x !== null);
    const senderCpu = rs.map((r) => r.senderCpuMsPerMsg).filter((x): x is number => x !== null);
    rows.push({
      system: t.name,
      sessions,
      messages,
      seconds: round(median(rs.map((r) => r.seconds)), 3),
      msgPerSec: round(median(rs.map((r) => r.msgPerSec)), 1),
      ratio: null,
      submitSeconds: round(median(rs.map((r) => r.submitSeconds)), 3),
      cpuMsPerMsg: cpu.length ? round(median(cpu), 2) : null,
      senderCpuMsPerMsg: senderCpu.length ? round(median(senderCpu), 2) : null,
      runs: rs.map((r) => ({
        seconds: round(r.seconds, 3),
        msgPerSec: round(r.msgPerSec, 1),
        submitSeconds: round(r.submitSeconds, 3),
        cpuMsPerMsg: r.cpuMsPerMsg === null ? null : round(r.cpuMsPerMsg, 2),
        senderCpuMsPerMsg: r.senderCpuMsPerMsg === null ? null : round(r.senderCpuMsPerMsg, 2),
      })),
    });
  }
  const base = rows.find((r) => r.system === 'postfix');
  for (const row of rows) row.ratio = base ? round(row.msgPerSec / base.msgPerSec) : null;

  out('| system | sessions | messages | seconds | msg/s | ratio (to Postfix) | all submitted after (s) | servers\' CPU ms/msg |');
  out('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    out(
      `| ${r.system === 'postfix' ? `Postfix ${postfixVer}` : 'twoway'} | ${r.sessions} | ${r.messages} | ${r.seconds.toFixed(2)} | ${r.msgPerSec.toFixed(0)} | ${r.ratio === null ? '-' : r.ratio.toFixed(2)} | ${r.submitSeconds.toFixed(2)} | ${r.cpuMsPerMsg === null ? '-' : r.cpuMsPerMsg.toFixed(2)} |`,
    );
  }
  out();
  out(`runs (msg/s, in order): ${rows.map((r) => `${r.system}: ${r.runs.map((x) => x.msgPerSec.toFixed(0)).join(', ')}`).join('; ')}`);
  out(`verified (sent = stored by the receiver, sender queue drained): ${JSON.stringify(verification)}`);
  const machineAfter = describeMachine();
  out(`load average at end: ${machineAfter.loadavg.join(' ')}`);

  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, 'smtp-relay.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        bench: 'smtp-relay',
        date: new Date().toISOString(),
        quick,
        profiled: cpuProf,
        machine: { ...machine, postfix: postfixVer, loadavgEnd: machineAfter.loadavg },
        load: {
          tool: 'nodemailer pooled SMTP (submission with STARTTLS; AUTH for twoway, mynetworks for Postfix)',
          messageBytes: SIZE,
          sessions,
          messages,
          warmup,
          runs,
          statistic: 'median',
          measured: 'first submission until the receiving server stored the last message',
        },
        topology: {
          twoway: `${TW_A.domain}@${TW_A.host} -> MX ${TW_B.domain}@${TW_B.host} (SQLite stores, DKIM signed and verified)`,
          postfix: `${PF_A.host} -> transport_maps smtp:[${PF_B.host}] -> virtual Maildir (${PF_B.domain})`,
        },
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

main().catch((err: unknown) => {
  if (interrupted) return;
  process.stderr.write(`smtp-relay: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
