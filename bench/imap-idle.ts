/**
 * IMAP IDLE (issue #13), in one run:
 *
 * 1. Push latency: a client is in IDLE on INBOX; a message arrives over SMTP
 *    (port 25, a stranger to an `open` user, so it goes to INBOX). Measured:
 *    the time from the SMTP client reading the 250 after DATA to the IMAP
 *    client reading `* n EXISTS` (negative when EXISTS came first: the commit
 *    wakes the sessions before the reply is written). BENCH_IDLE_SAMPLES
 *    (default 50) messages, one at a time; the median and p95. Target: the
 *    median under 50 ms. twoway only (the private Dovecot has no SMTP).
 *
 * 2. Memory of idle sessions: BENCH_CONNECTIONS (10,000) IMAP connections over
 *    implicit TLS, each logged in, INBOX selected and in IDLE; the memory of
 *    the server's process tree (PSS, bench/lib/proc-memory.ts) before and with
 *    them, per connection. Next to a private Dovecot (test/helpers/dovecot.ts)
 *    with BENCH_DOVECOT_CONNECTIONS (10,000), in the modes of
 *    BENCH_DOVECOT_MODES, one Dovecot each:
 *    - `per-client`: Dovecot's defaults, one imap-login process (the TLS
 *      proxy, high-security mode) and one imap process per connection: 20,000
 *      processes for 10,000 sessions, so its process and descriptor limits are
 *      raised to fit (and `ulimit -n` of its master);
 *    - `client-limit`: the same, with `service imap { client_limit =
 *      BENCH_DOVECOT_CLIENT_LIMIT }` (1,000): one imap process serves that
 *      many sessions (Dovecot's multi-client mode; imap-login stays one per
 *      connection);
 *    - `high-performance`: both imap and imap-login serve that many sessions
 *      per process (imap-login's high-performance mode, `service_count = 0`).
 *    Opening stops early when the machine's MemAvailable falls under
 *    BENCH_MIN_AVAILABLE_MB (2,048; the machine is shared), or when a whole
 *    batch of 100 logins fails; the count reached and the reason are reported.
 *
 *   npx tsx bench/imap-idle.ts
 *   BENCH_QUICK=1 npx tsx bench/imap-idle.ts     # 1,000 and 200 connections, 20 samples
 *   BENCH_SYSTEMS=dovecot npx tsx bench/imap-idle.ts   # Dovecot only (no latency part)
 *
 * Needs `ulimit -n` above the connection count (each side holds one
 * descriptor per connection); Dovecot's own limit is raised for it (as root).
 * Output: a table on stdout and bench/out/imap-idle.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { startDovecot } from '../test/helpers/dovecot.ts';
import { treeMemory, type Memory } from './lib/proc-memory.ts';
import { BENCH_PASSWORD, startTwowayChild } from './lib/twoway-child.ts';

const quick = process.env.BENCH_QUICK === '1';
const N_TWOWAY = Number(process.env.BENCH_CONNECTIONS ?? (quick ? 1000 : 10_000));
const N_DOVECOT = Number(process.env.BENCH_DOVECOT_CONNECTIONS ?? (quick ? 200 : 10_000));
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? 'twoway,dovecot').split(',');
const DOVECOT_MODES = (process.env.BENCH_DOVECOT_MODES ?? 'per-client,client-limit,high-performance').split(',') as DovecotMode[];
type DovecotMode = 'per-client' | 'client-limit' | 'high-performance';
const DOVECOT_CLIENT_LIMIT = Number(process.env.BENCH_DOVECOT_CLIENT_LIMIT ?? 1000);
const MIN_AVAILABLE_KB = Number(process.env.BENCH_MIN_AVAILABLE_MB ?? 2048) * 1024;
const SAMPLES = Number(process.env.BENCH_IDLE_SAMPLES ?? (quick ? 20 : 50));
/** Source addresses to spread the connections over (ephemeral ports per address). */
const SOURCES = Array.from({ length: 20 }, (_, i) => `127.0.0.${i + 1}`);
const log = (m: string) => process.stderr.write(`imap-idle: ${m}\n`);

/** A line-oriented client over one socket: waits for a regular expression on what came since the last wait. */
class Lines {
  private buf = '';
  private wait: { re: RegExp; resolve: (at: bigint) => void; reject: (e: Error) => void } | null = null;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      const at = process.hrtime.bigint();
      this.buf = (this.buf + d.toString('latin1')).slice(-8192);
      this.check(at);
    });
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error(`closed; last: ${this.buf.slice(-200)}`)));
  }
  private check(at: bigint): void {
    if (this.wait?.re.test(this.buf)) {
      const w = this.wait;
      this.wait = null;
      this.buf = '';
      w.resolve(at);
    }
  }
  private fail(e: Error): void {
    const w = this.wait;
    this.wait = null;
    w?.reject(e);
  }
  /** Resolves with the time the matching data arrived. */
  until(re: RegExp, ms = 60_000): Promise<bigint> {
    return new Promise<bigint>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; got ${this.buf.slice(-200)}`)), ms);
      this.wait = {
        re,
        resolve: (at) => {
          clearTimeout(t);
          resolve(at);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      };
      this.check(process.hrtime.bigint());
    });
  }
  send(s: string): void {
    this.sock.write(s);
  }
}

async function imapIdle(port: number, ca: string, user: string, pass: string, localAddress?: string): Promise<Lines> {
  const sock = tls.connect({ host: '127.0.0.1', port, ca, ...(localAddress ? { localAddress } : {}) });
  const c = new Lines(sock);
  await c.until(/\* OK[^\r\n]*\r\n/);
  c.send(`a LOGIN "${user}" "${pass}"\r\n`);
  await c.until(/a OK[^\r\n]*\r\n/);
  c.send('b SELECT INBOX\r\n');
  await c.until(/b OK[^\r\n]*\r\n/);
  c.send('c IDLE\r\n');
  await c.until(/\+ [^\r\n]*\r\n/);
  return c;
}

async function smtpSend(port: number, from: string, to: string, subject: string): Promise<bigint> {
  const sock = net.connect({ host: '127.0.0.1', port });
  const c = new Lines(sock);
  await c.until(/^220 [^\r\n]*\r\n/m);
  c.send('EHLO sender.bench.example\r\n');
  await c.until(/^250 [^\r\n]*\r\n/m);
  c.send(`MAIL FROM:<${from}>\r\n`);
  await c.until(/^250 [^\r\n]*\r\n/m);
  c.send(`RCPT TO:<${to}>\r\n`);
  await c.until(/^250 [^\r\n]*\r\n/m);
  c.send('DATA\r\n');
  await c.until(/^354 [^\r\n]*\r\n/m);
  const id = `${Date.now()}.${Math.random().toString(36).slice(2)}`;
  c.send(`From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${id}@sender.bench.example>\r\nDate: ${new Date().toUTCString()}\r\n\r\nIDLE latency probe.\r\n.\r\n`);
  const at = await c.until(/^250 [^\r\n]*\r\n/m);
  c.send('QUIT\r\n');
  sock.end();
  return at;
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

async function latency(smtpPort: number, imapsPort: number, ca: string): Promise<{ samples: number[]; median: number; p95: number }> {
  const idle = await imapIdle(imapsPort, ca, 'bench@bench.test', BENCH_PASSWORD);
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const exists = idle.until(/\* \d+ EXISTS\r\n/, 10_000);
    const ok = await smtpSend(smtpPort, `probe${i}@sender.bench.example`, 'bench@bench.test', `probe ${i}`);
    const seen = await exists;
    samples.push(Number(seen - ok) / 1e6);
    await new Promise((r) => setTimeout(r, 50));
  }
  idle.send('DONE\r\n');
  idle.sock.end();
  return { samples, median: quantile(samples, 0.5), p95: quantile(samples, 0.95) };
}

interface MemoryRow {
  system: string;
  connections: number;
  open: number;
  before: Memory;
  with: Memory;
  kbPerConnection: number;
  /** Why fewer than `connections` were opened (or null). */
  stopped: string | null;
}

const memAvailableKb = () => Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);

async function idleMemory(system: string, pid: number, port: number, ca: string, user: string, pass: string, n: number): Promise<MemoryRow> {
  await new Promise((r) => setTimeout(r, 1000));
  const before = treeMemory(pid);
  const began = Date.now();
  const clients: Lines[] = [];
  let failed = 0;
  let firstError = '';
  let stopped: string | null = null;
  for (let i = 0; i < n; i += 100) {
    // The machine is shared: stop before the kernel's OOM killer picks a process.
    const available = memAvailableKb();
    if (available < MIN_AVAILABLE_KB) {
      stopped = `stopped at ${clients.length} sessions: MemAvailable ${Math.round(available / 1024)} MB < ${Math.round(MIN_AVAILABLE_KB / 1024)} MB`;
      break;
    }
    const batch = await Promise.allSettled(Array.from({ length: Math.min(100, n - i) }, (_, k) => imapIdle(port, ca, user, pass, SOURCES[(i + k) % SOURCES.length])));
    let batchFailed = 0;
    for (const r of batch) {
      if (r.status === 'fulfilled') clients.push(r.value);
      else {
        failed++;
        batchFailed++;
        firstError ||= String(r.reason);
      }
    }
    if (batchFailed === batch.length) {
      stopped = `stopped at ${clients.length} sessions: a whole batch failed (${String((batch[0] as PromiseRejectedResult).reason).slice(0, 300)})`;
      break;
    }
    if ((i / 100) % 10 === 9) log(`${system}: ${clients.length} sessions, MemAvailable ${Math.round(memAvailableKb() / 1024)} MB`);
  }
  log(`${system}: ${clients.length} of ${n} sessions in IDLE after ${((Date.now() - began) / 1000).toFixed(1)} s${failed ? `; ${failed} failed, first: ${firstError}` : ''}${stopped ? `; ${stopped}` : ''}`);
  await new Promise((r) => setTimeout(r, 3000));
  const withThem = treeMemory(pid);
  const open = clients.filter((c) => !c.sock.destroyed).length;
  for (const c of clients) c.sock.destroy();
  const kbPerConnection = (withThem.pssKb - before.pssKb) / Math.max(1, open);
  log(`${system}: PSS ${Math.round(before.pssKb / 1024)} -> ${Math.round(withThem.pssKb / 1024)} MB over ${withThem.processes} processes; ${kbPerConnection.toFixed(1)} KB per connection`);
  return { system, connections: n, open, before, with: withThem, kbPerConnection, stopped: stopped ?? (failed ? `${failed} failed, first: ${firstError.slice(0, 300)}` : null) };
}

/** The hard limit on descriptors (`ulimit -Hn`): without CAP_SYS_RESOURCE nobody here can go above it. */
const hardNofile = () => Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 1024;

/**
 * Dovecot's configuration for `n` sessions of one user: every limit that
 * counts processes or their descriptors raised to what `n` needs (Dovecot
 * checks them at start and logs "lower than required under max. load"), but
 * no higher than the descriptor hard limit: the log and anvil services hold
 * one connection per process, so that limit caps the process count.
 */
function dovecotLimits(n: number, mode: DovecotMode): { extra: string; nofile: number } {
  const nofile = Math.min(hardNofile(), 2 * n + 2000);
  const fit = (x: number) => Math.min(x, nofile - 200);
  const multiLogin = mode === 'high-performance';
  const logins = multiLogin ? Math.ceil(n / DOVECOT_CLIENT_LIMIT) + 4 : n + 100;
  const imapProcesses = mode === 'per-client' ? n + 100 : Math.ceil(n / DOVECOT_CLIENT_LIMIT) + 2;
  const processes = logins + imapProcesses + 50;
  // service_count 0: a process keeps serving (the default 1 would give each process one session whatever client_limit says).
  const imap = mode === 'per-client' ? `  process_limit = ${imapProcesses}` : `  process_limit = ${imapProcesses}\n  client_limit = ${DOVECOT_CLIENT_LIMIT}\n  service_count = 0`;
  return {
    extra: [
      `default_process_limit = ${processes}`,
      `default_client_limit = ${fit(processes)}`,
      // Per process: a multi-client imap process holds a thousand sessions.
      'default_vsz_limit = 2G',
      multiLogin
        ? `service imap-login {\n  process_limit = ${logins}\n  client_limit = ${DOVECOT_CLIENT_LIMIT}\n  service_count = 0\n  process_min_avail = 2\n}`
        : `service imap-login {\n  process_limit = ${logins}\n}`,
      'service imap-urlauth-login {\n  process_limit = 1\n}',
      `service imap {\n${imap}\n}`,
      // Every process keeps a connection to the log, anvil and auth services.
      `service log {\n  client_limit = ${fit(processes)}\n}`,
      `service anvil {\n  client_limit = ${fit(processes)}\n}`,
      `service auth {\n  client_limit = ${fit(processes)}\n}`,
    ].join('\n'),
    nofile,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-imap-idle-'));
  mkdirSync(join(dir, 'twoway'));
  const dns = await startDnsServer({ records: [] });
  const out: { latency?: Awaited<ReturnType<typeof latency>>; memory: MemoryRow[] } = { memory: [] };
  try {
    if (SYSTEMS.includes('twoway')) {
      const child = await startTwowayChild({ dir: join(dir, 'twoway'), dns: dns.address, domain: 'bench.test', maxConnections: N_TWOWAY + 100 });
      try {
        const ca = readFileSync(join(dir, 'twoway', 'data', 'tls', 'cert.pem'), 'utf8');
        out.latency = await latency(child.smtpPort, child.imapsPort!, ca);
        log(`twoway: SMTP 250 -> EXISTS median ${out.latency.median.toFixed(1)} ms, p95 ${out.latency.p95.toFixed(1)} ms over ${SAMPLES} messages`);
        out.memory.push(await idleMemory('twoway', child.pid, child.imapsPort!, ca, 'bench@bench.test', BENCH_PASSWORD, N_TWOWAY));
      } finally {
        await child.stop().catch(() => child.kill());
      }
    }
    for (const mode of SYSTEMS.includes('dovecot') ? DOVECOT_MODES : []) {
      const dovecot = await startDovecot({ tls: true, ...dovecotLimits(N_DOVECOT, mode) });
      try {
        const master = Number(readFileSync(join(dovecot.dir, 'run', 'master.pid'), 'utf8').trim());
        const label =
          mode === 'per-client'
            ? 'dovecot'
            : mode === 'client-limit'
              ? `dovecot (imap client_limit ${DOVECOT_CLIENT_LIMIT})`
              : `dovecot (imap and imap-login client_limit ${DOVECOT_CLIENT_LIMIT}, high-performance login)`;
        const row = await idleMemory(label, master, dovecot.tlsPort!, dovecot.ca!, dovecot.user, dovecot.password, N_DOVECOT);
        const errors = readFileSync(join(dovecot.dir, 'dovecot.log'), 'utf8').split('\n').filter((l) => /error|fatal|warning/i.test(l));
        if (errors.length > 0) log(`${label}: ${errors.length} error/warning lines in its log, first: ${errors.slice(0, 3).join(' | ')}`);
        out.memory.push(row);
      } finally {
        await dovecot.close();
      }
    }
  } finally {
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  const tw = out.memory.find((r) => r.system === 'twoway');
  const lines = out.memory.map(
    (r) =>
      `| ${r.system} | ${r.connections.toLocaleString('en')} | ${r.open.toLocaleString('en')} | ${r.with.processes} | ${mb(r.before.pssKb)} | ${mb(r.with.pssKb)} | ${r.kbPerConnection.toFixed(1)} | ${tw && r !== tw ? (r.kbPerConnection / tw.kbPerConnection).toFixed(2) : ''} | ${r.stopped ?? ''} |`,
  );
  const lat = out.latency;
  const markdown =
    (lat ? `IDLE: SMTP 250 -> EXISTS, ${SAMPLES} messages: median ${lat.median.toFixed(1)} ms, p95 ${lat.p95.toFixed(1)} ms (target: median < 50 ms)\n\n` : '') +
    `| system | sessions | open at the reading | processes | PSS before (MB) | PSS with them (MB) | KB per session (PSS) | its KB over twoway's | stopped early |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n${lines.join('\n')}\n`;
  process.stdout.write(`\n${markdown}`);
  mkdirSync('bench/out', { recursive: true });
  const rows = [
    ...(lat ? [{ kind: 'latency', system: 'twoway', samples: lat.samples.length, median: lat.median, p95: lat.p95, all: lat.samples }] : []),
    ...out.memory.map((r) => ({ kind: 'memory', ...r })),
  ];
  writeFileSync('bench/out/imap-idle.json', JSON.stringify({ rows, markdown }, null, 2));
}

await main();
