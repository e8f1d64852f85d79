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
 *    them, per connection. Next to a private Dovecot (test/helpers/dovecot.ts,
 *    its defaults: one imap-login process (the TLS proxy) and one imap process
 *    per connection), with BENCH_DOVECOT_CONNECTIONS (1,000: 2,000 processes;
 *    10,000 would be 20,000), the cost per connection compared.
 *
 *   npx tsx bench/imap-idle.ts
 *   BENCH_QUICK=1 npx tsx bench/imap-idle.ts     # 1,000 and 200 connections, 20 samples
 *
 * Needs `ulimit -n` above the connection count (each side holds one
 * descriptor per connection). Output: a table on stdout and
 * bench/out/imap-idle.json.
 */
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
const N_DOVECOT = Number(process.env.BENCH_DOVECOT_CONNECTIONS ?? (quick ? 200 : 1000));
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
}

async function idleMemory(system: string, pid: number, port: number, ca: string, user: string, pass: string, n: number): Promise<MemoryRow> {
  await new Promise((r) => setTimeout(r, 1000));
  const before = treeMemory(pid);
  const began = Date.now();
  const clients: Lines[] = [];
  let failed = 0;
  let firstError = '';
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(100, n - i) }, (_, k) => imapIdle(port, ca, user, pass, SOURCES[(i + k) % SOURCES.length])));
    for (const r of batch) {
      if (r.status === 'fulfilled') clients.push(r.value);
      else {
        failed++;
        firstError ||= String(r.reason);
      }
    }
  }
  log(`${system}: ${clients.length} of ${n} sessions in IDLE after ${((Date.now() - began) / 1000).toFixed(1)} s${failed ? `; ${failed} failed, first: ${firstError}` : ''}`);
  await new Promise((r) => setTimeout(r, 3000));
  const withThem = treeMemory(pid);
  const open = clients.filter((c) => !c.sock.destroyed).length;
  for (const c of clients) c.sock.destroy();
  const kbPerConnection = (withThem.pssKb - before.pssKb) / Math.max(1, open);
  log(`${system}: PSS ${Math.round(before.pssKb / 1024)} -> ${Math.round(withThem.pssKb / 1024)} MB over ${withThem.processes} processes; ${kbPerConnection.toFixed(1)} KB per connection`);
  return { system, connections: n, open, before, with: withThem, kbPerConnection };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-imap-idle-'));
  mkdirSync(join(dir, 'twoway'));
  const dns = await startDnsServer({ records: [] });
  const out: { latency?: Awaited<ReturnType<typeof latency>>; memory: MemoryRow[] } = { memory: [] };
  try {
    const child = await startTwowayChild({ dir: join(dir, 'twoway'), dns: dns.address, domain: 'bench.test', maxConnections: N_TWOWAY + 100 });
    try {
      const ca = readFileSync(join(dir, 'twoway', 'data', 'tls', 'cert.pem'), 'utf8');
      out.latency = await latency(child.smtpPort, child.imapsPort!, ca);
      log(`twoway: SMTP 250 -> EXISTS median ${out.latency.median.toFixed(1)} ms, p95 ${out.latency.p95.toFixed(1)} ms over ${SAMPLES} messages`);
      out.memory.push(await idleMemory('twoway', child.pid, child.imapsPort!, ca, 'bench@bench.test', BENCH_PASSWORD, N_TWOWAY));
    } finally {
      await child.stop().catch(() => child.kill());
    }
    const limit = N_DOVECOT * 2 + 100;
    const dovecot = await startDovecot({
      tls: true,
      extra: [`default_process_limit = ${limit}`, `default_client_limit = ${limit * 2}`, `service imap-login {\n  process_limit = ${limit}\n}`, `service imap {\n  process_limit = ${limit}\n}`].join('\n'),
    });
    try {
      const master = Number(readFileSync(join(dovecot.dir, 'run', 'master.pid'), 'utf8').trim());
      out.memory.push(await idleMemory('dovecot', master, dovecot.tlsPort!, dovecot.ca!, dovecot.user, dovecot.password, N_DOVECOT));
    } finally {
      await dovecot.close();
    }
  } finally {
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  const tw = out.memory.find((r) => r.system === 'twoway');
  const dc = out.memory.find((r) => r.system === 'dovecot');
  const lines = out.memory.map(
    (r) => `| ${r.system} | ${r.connections.toLocaleString('en')} | ${r.open.toLocaleString('en')} | ${r.with.processes} | ${mb(r.before.pssKb)} | ${mb(r.with.pssKb)} | ${r.kbPerConnection.toFixed(1)} | ${tw && dc && r === tw ? (dc.kbPerConnection / tw.kbPerConnection).toFixed(2) : ''} |`,
  );
  const markdown =
    `IDLE: SMTP 250 -> EXISTS, ${SAMPLES} messages: median ${out.latency!.median.toFixed(1)} ms, p95 ${out.latency!.p95.toFixed(1)} ms (target: median < 50 ms)\n\n` +
    `| system | sessions | open at the reading | processes | PSS before (MB) | PSS with them (MB) | KB per session (PSS) | Dovecot's KB over twoway's |\n|---|---:|---:|---:|---:|---:|---:|---:|\n${lines.join('\n')}\n`;
  process.stdout.write(`\n${markdown}`);
  mkdirSync('bench/out', { recursive: true });
  const lat = out.latency!;
  const rows = [{ kind: 'latency', system: 'twoway', samples: lat.samples.length, median: lat.median, p95: lat.p95, all: lat.samples }, ...out.memory.map((r) => ({ kind: 'memory', ...r }))];
  writeFileSync('bench/out/imap-idle.json', JSON.stringify({ rows, markdown }, null, 2));
}

await main();
