/**
 * What strangers cost the recipient: N Two-Way Mail notices vs accepting the
 * same N messages (50 KB each) over SMTP (issue #4; docs/architecture.md "Performance targets": "a
 * stranger's attempt costs the recipient >= 20x fewer stored bytes and >= 5x
 * less CPU than accepting the same message over SMTP").
 *
 *   npx tsx bench/twm-stranger-cost.ts                 # about 2 minutes
 *   BENCH_QUICK=1 npx tsx bench/twm-stranger-cost.ts   # smoke run (1,000 attempts)
 *
 * The recipient: a fresh twoway server B (child process, bench/lib/
 * twoway-server.ts, SQLite WAL synchronous=FULL) for b.test on 127.0.0.3 with
 * [twm] on, and one user bea@b.test in `screen` mode, so strangers go to the
 * Screener as contact requests. One fresh B per side, both started (and
 * warmed up) before the measurement, which alternates between them in
 * BENCH_ROUNDS rounds (default 10): each round sends its share of the
 * attempts to one side, then the other (the order reversed every other
 * round), so that the host's speed, which moves within minutes on these
 * machines, weighs on both sides alike. Only one side is loaded at a time,
 * so the two never share the CPU; they never share a store.
 *
 * - TWM side: N notices from STRANGERS addresses at s.test (a sender domain
 *   whose Ed25519 key is published in the embedded DNS), each announcing a
 *   50 KB message with a short introduction, signed with the real code
 *   (core/twm-signature.ts `signRequest`, core/twm-schema.ts `noticeToJson`)
 *   and POSTed by this driver straight to B's TWM endpoint over HTTPS
 *   (keep-alive, CONCURRENCY in flight). No sending server: this measures
 *   the recipient's cost only, which is the point. Every answer must be 200
 *   with `pending` for bea@b.test.
 * - SMTP side: the same N attempts as 50 KB messages (smtp-source -l 51200,
 *   one connection per message, no TLS) from the same stranger addresses,
 *   one smtp-source run per stranger address, CONCURRENCY / 2 runs at a time
 *   with 2 sessions each, SPF pass for s.test.
 *   Every message must be stored (held in the Screener).
 *
 * Measured at B, per side: stored bytes = growth of the SQLite database file
 * after a WAL checkpoint (TRUNCATE), before and after the load (plus dbstat's
 * per-table payload growth, to show where the bytes went); CPU = utime +
 * stime of B's process from /proc (its threads included) from just before
 * the first attempt of each round until its last answer, summed over the
 * rounds. Reported per attempt, with the ratios SMTP / TWM.
 *
 * Rate limits raised for this benchmark (N notices from one domain and one
 * driver address are the load, not an attack to refuse; a refusal would be
 * cheaper than a recorded notice, so this measures the expensive case): the
 * per-sending-domain notice limit ([twm] notices_per_second, notice_burst;
 * defaults 10/s, burst 200) and the endpoint's per-client-address limit
 * (protocol 12.7, 20/s, burst 100; not in the config, set at run time,
 * bench/lib/twm-lab.ts), both to 1,000,000.
 *
 * Warm-up (BENCH_WARMUP, default 1,000 attempts per side): before each side's
 * measurement starts, the same kind of attempts go to a second `screen` user
 * (wes@b.test), unmeasured, so that both sides are measured as a server that
 * has been running: a freshly started process spends its first few thousand
 * requests compiling its code (V8's optimising compiler runs on threads of
 * its own, counted in B's CPU), which on the TWM side was about a fifth of
 * the CPU of the first 5,000 notices and fell to a twentieth after that
 * (bench/stranger-threads.ts, BENCH_CHUNKS). Both sides get the same number
 * of warm-up attempts; BENCH_WARMUP=0 measures from a cold start, as before.
 * The checks below count bea@b.test only, so the warm-up's rows are not in them.
 *
 * Output: Markdown on stdout, bench/out/twm-stranger-cost.json (`rows[]`
 * with bytesPerAttempt, cpuMsPerAttempt; `markdown` for bench/run.ts).
 *
 * Environment: BENCH_QUICK=1, BENCH_ATTEMPTS (10000), BENCH_WARMUP (1000), BENCH_ROUNDS (10;
 * 1 measures each side in one go, TWM first), BENCH_CONCURRENCY (20), BENCH_STRANGERS (100), BENCH_SIDE=twm or smtp (one side only, for
 * profiling: no ratios, nothing written), BENCH_CPU_PROF=1 (V8 profile of B per side in
 * bench/out/prof/stranger-{twm,smtp}.cpuprofile; its overhead inflates the CPU figures),
 * BENCH_RANDOM_IDS=1 (notice ids of 128 random bits alone, as before session 12, instead of
 * twoway's own: delivery/twm-transport.ts `noticeId`, the time then 128 random bits; B's rows
 * are keyed by the id, and random ids put each notice's rows on B-tree pages of their own).
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { keyRecordValue, rawPublicKey } from '../src/core/twm-key-record.ts';
import { noticeId } from '../src/delivery/twm-transport.ts';
import { noticeToJson, parseNoticeResult } from '../src/core/twm-schema.ts';
import { signRequest } from '../src/core/twm-signature.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS } from '../src/core/twm-types.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { describeMachine } from './lib/machine.ts';
import { cpuSeconds } from './lib/proc-cpu.ts';
import { runSmtpSource } from './lib/smtp-source.ts';
import { BENCH_NOTICE_RATE, createTwmLab, twmSection, type TwmLab } from './lib/twm-lab.ts';
import { startTwowayChild, type ChildDbReport, type TwowayChild } from './lib/twoway-child.ts';

type Side = 'twm' | 'smtp';

interface SideResult {
  side: Side;
  attempts: number;
  seconds: number;
  storedBytes: number;
  cpuSeconds: number;
  bytesPerAttempt: number;
  cpuMsPerAttempt: number;
  /** Growth of dbstat payload (row bytes) per table, largest first. */
  payloadGrowth: Record<string, number>;
  rowsAfter: Record<string, number>;
  check: Record<string, unknown>;
}

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(here, 'out');
const SIZE = 50 * 1024;
const B = { host: '127.0.0.3', domain: 'b.test' };
const RCPT = `bea@${B.domain}`;
/** The warm-up's recipient: its rows stay out of the checks of RCPT's. */
const WARM_RCPT = `wes@${B.domain}`;
const S_DOMAIN = 's.test';
const SELECTOR = 'twm1';

const quick = process.env.BENCH_QUICK === '1';
const attempts = Number(process.env.BENCH_ATTEMPTS ?? (quick ? 1000 : 10_000));
const warmup = Number(process.env.BENCH_WARMUP ?? 1000);
const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 2 : 10));
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
/** 100 notices per stranger at 10,000: protocol 12.7's cap of pending notices per (user, sender). */
const strangers = Number(process.env.BENCH_STRANGERS ?? 100);
const cpuProf = process.env.BENCH_CPU_PROF === '1';
const randomIds = process.env.BENCH_RANDOM_IDS === '1';
const onlySide = process.env.BENCH_SIDE;

const log = (s = '') => process.stderr.write(s + '\n');
const out = (s = '') => process.stdout.write(s + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const stranger = (i: number) => `stranger${i % strangers}@${S_DOMAIN}`;

async function startRecipient(dns: EmbeddedDnsServer, lab: TwmLab, cleanups: Array<() => Promise<unknown>>): Promise<TwowayChild> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-stranger-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const b = await startTwowayChild({
    dir,
    dns: dns.address,
    domain: B.domain,
    users: [
      { address: RCPT, mode: 'screen' },
      { address: WARM_RCPT, mode: 'screen' },
    ],
    host: B.host,
    extraToml: twmSection(lab, B.domain, B.host),
  });
  cleanups.push(async () => {
    const code = await b.stop();
    if (code !== 0) log(`twoway B child exited with code ${code}`);
  });
  return b;
}

/** A side ready to measure: its server warmed up, the attempts sent in shares. */
interface PreparedSide {
  side: Side;
  /** Sends the next `count` attempts to RCPT and returns when the last is answered. */
  load: (count: number) => Promise<void>;
  /** Checks what B stored for the whole load and measures the store's growth. */
  finish: () => Promise<Omit<SideResult, 'seconds' | 'cpuSeconds' | 'cpuMsPerAttempt'>>;
  b: TwowayChild;
  /** Summed over the rounds. */
  seconds: number;
  cpuSeconds: number;
}

/** Warms B up, records the store before the load; the load itself runs in `measureRound`s. */
async function prepare(b: TwowayChild, side: Side, warm: () => Promise<void>, load: (count: number) => Promise<void>, check: () => Promise<Record<string, unknown>>): Promise<PreparedSide> {
  if (warmup > 0) {
    const t = Date.now();
    await warm();
    log(`  ${side}: warm-up of ${warmup} attempts to ${WARM_RCPT} in ${((Date.now() - t) / 1000).toFixed(1)} s (not measured)`);
  }
  const before = await b.db();
  const finish = async () => {
    const checked = await check();
    const after = await b.db();
    const bytes = (r: ChildDbReport) => r.files.db + r.files.wal;
    if (after.files.wal !== 0) log(`  note: the WAL is not empty after the checkpoint (${after.files.wal} bytes); counted`);
    const payloadGrowth: Record<string, number> = {};
    for (const [name, t] of Object.entries(after.tables)) {
      const grown = t.payload - (before.tables[name]?.payload ?? 0);
      if (grown !== 0) payloadGrowth[name] = grown;
    }
    const storedBytes = bytes(after) - bytes(before);
    return {
      side,
      attempts,
      storedBytes,
      bytesPerAttempt: storedBytes / attempts,
      payloadGrowth: Object.fromEntries(Object.entries(payloadGrowth).sort((x, y) => y[1] - x[1])),
      rowsAfter: after.rows,
      check: checked,
    };
  };
  return { side, load, finish, b, seconds: 0, cpuSeconds: 0 };
}

/** One round's share of a side's attempts: B's CPU from just before the first to the last answer. */
async function measureRound(p: PreparedSide, count: number): Promise<void> {
  await sleep(200);
  const cpu0 = cpuSeconds(p.b.pid);
  const t0 = process.hrtime.bigint();
  await p.load(count);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = cpuSeconds(p.b.pid);
  if (cpu0 === null || cpu1 === null) throw new Error('cannot read the CPU time of B from /proc');
  p.seconds += seconds;
  p.cpuSeconds += cpu1 - cpu0;
}

/** Every side's attempts in `rounds` shares, alternating the order; the profiler (BENCH_CPU_PROF) over the whole load. */
async function measureAll(sides: PreparedSide[]): Promise<SideResult[]> {
  // The profiler's own overhead lands in the CPU figure: profiled runs are for finding hot spots only.
  if (cpuProf) for (const p of sides) await p.b.profileStart();
  for (let r = 0; r < rounds; r++) {
    const share = Math.floor(attempts / rounds) + (r < attempts % rounds ? 1 : 0);
    for (const p of r % 2 === 0 ? sides : [...sides].reverse()) await measureRound(p, share);
  }
  if (cpuProf) {
    for (const p of sides) {
      const file = join(OUT_DIR, 'prof', `stranger-${p.side}.cpuprofile`);
      mkdirSync(dirname(file), { recursive: true });
      await p.b.profileStop(file);
      log(`  CPU profile of B (${p.side}): ${file}`);
    }
  }
  const results: SideResult[] = [];
  for (const p of sides) {
    results.push({ ...(await p.finish()), seconds: p.seconds, cpuSeconds: p.cpuSeconds, cpuMsPerAttempt: (p.cpuSeconds * 1000) / attempts });
  }
  return results;
}

async function twmSide(dns: EmbeddedDnsServer, lab: TwmLab, cleanups: Array<() => Promise<unknown>>): Promise<PreparedSide> {
  const b = await startRecipient(dns, lab, cleanups);
  if (b.twmPort === null) throw new Error('B has no TWM endpoint');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  dns.add([{ name: `${SELECTOR}._twoway.${S_DOMAIN}`, type: 'TXT', data: keyRecordValue(rawPublicKey(publicKey)) }]);
  const authority = `twm.${B.domain}:${b.twmPort}`;
  const url = `https://${B.host}:${b.twmPort}${TWM_PATHS.notice}`;
  const agent = new Agent({ connect: { ca: lab.ca.cert, servername: `twm.${B.domain}` }, connections: concurrency, pipelining: 1 });
  cleanups.push(() => agent.close());
  log(`TWM side: B (pid ${b.pid}) TWM endpoint ${B.host}:${b.twmPort}; ${attempts} notices from ${strangers} addresses at ${S_DOMAIN}, ${concurrency} in flight`);
  const statuses = new Map<string, number>();
  const post = async (i: number, rcpt = RCPT) => {
    // What a sending server would send: the size and digest of a 50 KB message it keeps for a fetch.
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    const body = noticeToJson({
      id: randomIds ? randomBytes(16).toString('base64url') : noticeId(new Date()),
      from: stranger(i),
      to: [rcpt],
      size: SIZE,
      sha256: createHash('sha256').update(`message ${i}`).digest('hex'),
      created,
      expires: new Date(created.getTime() + 7 * 86_400_000),
      intro: `Hello Bea, this is stranger ${i % strangers}; may I write to you about the conference?`,
    });
    const headers = signRequest({
      method: 'POST',
      targetUri: `https://${authority}${TWM_PATHS.notice}`,
      authority,
      contentType: TWM_MEDIA_TYPES.notice,
      body,
      keyid: `${SELECTOR}._twoway.${S_DOMAIN}`,
      privateKey,
      created,
    });
    const res = await request(url, { method: 'POST', dispatcher: agent, headers: { host: authority, 'content-type': TWM_MEDIA_TYPES.notice, ...headers }, body });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`notice ${i}: HTTP ${res.statusCode} ${text.slice(0, 300)}`);
    const result = parseNoticeResult(JSON.parse(text));
    const status = result.results.find((r) => r.rcpt.toLowerCase() === rcpt)?.status ?? 'missing';
    if (rcpt === RCPT) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    else if (status !== 'pending') throw new Error(`warm-up notice ${i}: ${status}`);
  };
  // The attempts' numbers run on across the rounds (they pick the stranger).
  let sent = 0;
  const send = async (count: number, rcpt: string) => {
    const end = sent + count;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (sent < end) await post(sent++, rcpt);
      }),
    );
  };
  const load = (count: number) => send(count, RCPT);
  const warm = async () => {
    await send(warmup, WARM_RCPT);
    sent = 0;
  };
  const check = async () => {
    const requests = await b.requests(RCPT);
    const stored = await b.countOf(RCPT);
    const answers = Object.fromEntries(statuses);
    if (answers.pending !== attempts || statuses.size !== 1 || stored !== 0 || requests.attempts !== attempts || requests.requests !== Math.min(strangers, attempts)) {
      throw new Error(`TWM side: answers ${JSON.stringify(answers)}, messages stored ${stored}, contact requests ${JSON.stringify(requests)} for ${attempts} notices`);
    }
    return { answers, messagesStored: stored, contactRequests: requests };
  };
  return prepare(b, 'twm', warm, load, check);
}

async function smtpSide(dns: EmbeddedDnsServer, lab: TwmLab, cleanups: Array<() => Promise<unknown>>): Promise<PreparedSide> {
  const b = await startRecipient(dns, lab, cleanups);
  const perSenderOf = (n: number) => Array.from({ length: strangers }, (_, k) => Math.floor(n / strangers) + (k < n % strangers ? 1 : 0));
  const parallel = Math.max(1, Math.floor(concurrency / 2));
  log(`SMTP side: B (pid ${b.pid}) SMTP ${B.host}:${b.smtpPort}; ${attempts} messages of 50 KB from ${strangers} addresses at ${S_DOMAIN}, ${parallel} smtp-source runs of 2 sessions at a time`);
  const send = async (count: number, rcpt: string) => {
    const perSender = perSenderOf(count);
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < strangers) {
          const k = next++;
          if (perSender[k] === 0) continue;
          const r = await runSmtpSource({ host: B.host, port: b.smtpPort, sessions: 2, messages: perSender[k]!, size: SIZE, from: stranger(k), to: rcpt, helo: `mx.${S_DOMAIN}`, timeoutMs: 600_000 });
          if (r.exitCode !== 0) throw new Error(`smtp-source ${r.args.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
        }
      }),
    );
  };
  const load = (count: number) => send(count, RCPT);
  const warm = () => send(warmup, WARM_RCPT);
  const check = async () => {
    const stored = await b.countOf(RCPT);
    const requests = await b.requests(RCPT);
    if (stored !== attempts || requests.held !== attempts) {
      throw new Error(`SMTP side: ${stored} messages stored, contact requests ${JSON.stringify(requests)} for ${attempts} sent`);
    }
    return { messagesStored: stored, contactRequests: requests };
  };
  return prepare(b, 'smtp', warm, load, check);
}

async function main(): Promise<void> {
  if (onlySide !== undefined && onlySide !== 'twm' && onlySide !== 'smtp') throw new Error('BENCH_SIDE must be twm or smtp');
  for (const [name, v] of [['BENCH_ATTEMPTS', attempts], ['BENCH_ROUNDS', rounds], ['BENCH_CONCURRENCY', concurrency], ['BENCH_STRANGERS', strangers]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error('BENCH_WARMUP must be a non-negative integer');
  const machine = describeMachine();
  out(`# What strangers cost the recipient: TWM notices vs SMTP messages${quick ? ' (BENCH_QUICK)' : ''}`);
  out();
  out(`machine: ${machine.nproc} CPUs, ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.kernel}; node ${machine.node}; load average at start ${machine.loadavg.join(' ')}`);
  out(`load: ${attempts} attempts from ${strangers} stranger addresses to one \`screen\` user; TWM: signed notices (50 KB announced, with an intro) POSTed by the driver, ${randomIds ? 'random notice ids' : 'time-ordered notice ids'}, ${concurrency} in flight; SMTP: 50 KB messages from smtp-source, ${concurrency} sessions; notices_per_second = notice_burst = ${BENCH_NOTICE_RATE}; ${warmup > 0 ? `each side measured after a warm-up of ${warmup} attempts to another user` : 'measured from a cold start (no warm-up)'}; the sides alternate in ${rounds} round(s)`);
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

  const results: SideResult[] = [];
  try {
    const dns = await startDnsServer();
    cleanups.push(() => dns.close());
    dns.add([
      // smtp-source connects from the loopback network; SPF passes, so the stranger is authenticated.
      { name: S_DOMAIN, type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
      { name: `mx.${S_DOMAIN}`, type: 'A', data: '127.0.0.1' },
    ]);
    const lab = createTwmLab();
    cleanups.push(async () => lab.close());
    // Both servers run from here to the end; only one is loaded at a time (measureAll).
    const sides: PreparedSide[] = [];
    for (const side of ['twm', 'smtp'] as const) {
      if (onlySide !== undefined && onlySide !== side) continue;
      sides.push(side === 'twm' ? await twmSide(dns, lab, cleanups) : await smtpSide(dns, lab, cleanups));
    }
    log(`measuring: ${attempts} attempts per side in ${rounds} round(s), alternating`);
    for (const r of await measureAll(sides)) {
      results.push(r);
      log(`  ${r.side}: ${r.attempts} in ${r.seconds.toFixed(1)} s; stored ${r.storedBytes} bytes (${r.bytesPerAttempt.toFixed(0)}/attempt), B's CPU ${r.cpuSeconds.toFixed(2)} s (${r.cpuMsPerAttempt.toFixed(3)} ms/attempt); payload growth ${JSON.stringify(r.payloadGrowth)}`);
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interrupted || onlySide !== undefined) return;

  const [twm, smtp] = [results[0]!, results[1]!];
  const bytesRatio = smtp.bytesPerAttempt / Math.max(1, twm.bytesPerAttempt);
  const cpuRatio = smtp.cpuMsPerAttempt / Math.max(1e-9, twm.cpuMsPerAttempt);
  const rows = [twm, smtp].map((r) => ({
    system: r.side === 'twm' ? 'TWM notice (no body)' : 'SMTP message (50 KB)',
    messages: r.attempts,
    seconds: round(r.seconds, 2),
    attemptsPerSec: round(r.attempts / r.seconds, 1),
    storedBytes: r.storedBytes,
    bytesPerAttempt: Math.round(r.bytesPerAttempt),
    cpuMsPerAttempt: round(r.cpuMsPerAttempt, 3),
    bytesRatio: r.side === 'twm' ? round(bytesRatio, 1) : 1,
    cpuRatio: r.side === 'twm' ? round(cpuRatio, 1) : 1,
  }));
  const table = [
    '| attempt | attempts | seconds | attempts/s | stored bytes at B | bytes/attempt | B CPU ms/attempt | SMTP/TWM bytes | SMTP/TWM CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.system} | ${r.messages} | ${r.seconds.toFixed(1)} | ${r.attemptsPerSec.toFixed(0)} | ${r.storedBytes} | ${r.bytesPerAttempt} | ${r.cpuMsPerAttempt.toFixed(3)} | ${r.system.startsWith('TWM') ? `${r.bytesRatio.toFixed(1)}x` : ''} | ${r.system.startsWith('TWM') ? `${r.cpuRatio.toFixed(1)}x` : ''} |`,
    ),
  ];
  const notes = [
    `Targets (docs/architecture.md, performance targets): >= 20x fewer stored bytes (${bytesRatio.toFixed(1)}x: ${bytesRatio >= 20 ? 'met' : 'NOT met'}) and >= 5x less CPU (${cpuRatio.toFixed(1)}x: ${cpuRatio >= 5 ? 'met' : 'NOT met'}).`,
    `Where the bytes went (dbstat payload growth): TWM ${JSON.stringify(twm.payloadGrowth)}; SMTP ${JSON.stringify(smtp.payloadGrowth)}.`,
  ];
  for (const l of table) out(l);
  out();
  for (const l of notes) out(l);
  out(`verified: ${JSON.stringify({ twm: twm.check, smtp: smtp.check })}`);
  const machineAfter = describeMachine();
  out(`load average at end: ${machineAfter.loadavg.join(' ')}`);

  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, 'twm-stranger-cost.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        bench: 'twm-stranger-cost',
        date: new Date().toISOString(),
        quick,
        machine: { ...machine, loadavgEnd: machineAfter.loadavg },
        load: { attempts, warmup, rounds, concurrency, strangers, messageBytes: SIZE, noticeRate: BENCH_NOTICE_RATE, noticeIds: randomIds ? 'random' : 'ordered' },
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
  process.stderr.write(`twm-stranger-cost: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
