/**
 * IMAP side by side with Dovecot (issue #13), in one run: the same mailbox
 * (N messages from CPython's email test corpus, Debian
 * libpython3.11-testsuite, cycled, each with its own Message-ID and padded
 * with a text part to about 10 KB) is APPENDed to twoway (a child process,
 * bench/lib/twoway-child.ts) and to a private Dovecot (test/helpers/dovecot.ts),
 * both over implicit TLS. Measured, the median of BENCH_REPEAT runs each:
 *
 * - FETCH 1:* (ENVELOPE FLAGS BODYSTRUCTURE) in one session, from the command
 *   to the tagged OK (a raw client that only counts octets). The first FETCH
 *   after the APPENDs is also reported on its own ("cold"): twoway reads the
 *   stored structures then and fills its wire cache, Dovecot parses the
 *   message files and fills its index cache; the later ones are "warm";
 * - mbsync's initial sync of the mailbox into an empty Maildir (one pipelined
 *   `UID FETCH n (BODY.PEEK[])` per message, over COMPRESS=DEFLATE where the
 *   server offers it: twoway does, Dovecot only with BENCH_DOVECOT_COMPRESS=1,
 *   which loads its imap_zlib plugin, so both do the same work), its wall
 *   time and the server's CPU seconds meanwhile (/proc: twoway's process and
 *   its workers, Dovecot's master with its imap-login and imap processes,
 *   counted once they exit). On a loaded machine the wall time follows the
 *   load; the CPU seconds much less so.
 *
 * The repeats alternate between the two systems. mbsync's own CPU seconds are reported too (the
 * client's work, the same against either server; with its default `FSync yes` it fsyncs each
 * message file and fdatasyncs its journal, 20,003 syncs for 10,000 messages, most of its wall
 * time on a loaded disk). BENCH_MBSYNC_NOFSYNC=1 adds a run with `FSync no` per repeat, a second
 * row that measures the servers without the client's fsyncs.
 *
 * The ratio is Dovecot's time over twoway's: ≥ 1.0 means twoway is as fast.
 *
 * For tracing by hand, BENCH_HOLD=1 loads the mailboxes, prints an mbsync command per server and
 * holds both up until SIGINT (BENCH_SYSTEMS=twoway or dovecot: only that one); BENCH_NODE_FLAGS
 * passes node flags to twoway's process (`--perf-basic-prof`, `--cpu-prof`), and
 * TWOWAY_IMAP_TRACE=<file> makes it log each command's timing (docs/imap.md "Performance").
 *
 *   npx tsx bench/imap-fetch.ts                  # 10,000 messages
 *   BENCH_QUICK=1 npx tsx bench/imap-fetch.ts    # 1,000
 *
 * Output: a table on stdout and bench/out/imap-fetch.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { startDovecot } from '../test/helpers/dovecot.ts';
import { BENCH_PASSWORD, startTwowayChild } from './lib/twoway-child.ts';
import { treeCpuSeconds } from './lib/proc-cpu.ts';

const quick = process.env.BENCH_QUICK === '1';
const N = Number(process.env.BENCH_IMAP_MESSAGES ?? (quick ? 1000 : 10_000));
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
/** Dovecot with COMPRESS=DEFLATE (its imap_zlib plugin), as twoway offers: mbsync then compresses with both. */
const DOVECOT_COMPRESS = process.env.BENCH_DOVECOT_COMPRESS === '1';
const CORPUS = '/usr/lib/python3.11/test/test_email/data';
const log = (m: string) => process.stderr.write(`imap-fetch: ${m}\n`);

interface Target {
  system: string;
  port: number;
  ca: string;
  user: string;
  pass: string;
  /** CPU seconds used so far by the server's processes. */
  cpu: () => number;
}

function corpus(): Buffer[] {
  const files = readdirSync(CORPUS).filter((f) => /^msg_.*\.txt$/.test(f)).sort();
  const pad = `${'The quick brown fox jumps over the lazy dog. '.repeat(20)}\r\n`.repeat(10);
  return Array.from({ length: N }, (_, i) => {
    const text = readFileSync(join(CORPUS, files[i % files.length]!), 'latin1').replace(/\r?\n/g, '\r\n');
    // A header of its own (so no two are the same) and about 10 KB in all (a trailing text after the body).
    return Buffer.from(`X-Bench-Seq: ${i}\r\n${text}\r\n${pad.slice(0, Math.max(0, 10_000 - text.length))}`, 'latin1');
  });
}

async function load(t: Target, messages: Buffer[]): Promise<void> {
  const c = new ImapFlow({ host: '127.0.0.1', port: t.port, secure: true, tls: { ca: [t.ca] }, auth: { user: t.user, pass: t.pass }, logger: false });
  await c.connect();
  // Several appends in flight, as a migrating client would (twoway commits them in groups).
  for (let i = 0; i < messages.length; i += 50) await Promise.all(messages.slice(i, i + 50).map((m) => c.append('INBOX', m, i % 3 === 0 ? ['\\Seen'] : [])));
  await c.logout();
}

/** One FETCH of every message's ENVELOPE, FLAGS and BODYSTRUCTURE; seconds from the command to the tagged OK. */
async function fetchAll(t: Target): Promise<{ seconds: number; octets: number }> {
  const sock = tls.connect({ host: '127.0.0.1', port: t.port, ca: t.ca });
  let buf = '';
  let wait: { re: RegExp; resolve: () => void } | null = null;
  let octets = 0;
  sock.on('data', (d: Buffer) => {
    octets += d.length;
    // Only the tail matters: the tagged line is at the end.
    buf = (buf + d.toString('latin1')).slice(-4096);
    if (wait?.re.test(buf)) {
      const w = wait;
      wait = null;
      w.resolve();
    }
  });
  const until = (re: RegExp) => new Promise<void>((resolve) => (wait = { re, resolve }));
  await until(/\* OK.*\r\n/);
  sock.write(`a LOGIN "${t.user}" "${t.pass}"\r\n`);
  await until(/a OK.*\r\n/);
  sock.write('b EXAMINE INBOX\r\n');
  await until(/b OK.*\r\n/);
  octets = 0;
  const start = process.hrtime.bigint();
  sock.write('c FETCH 1:* (ENVELOPE FLAGS BODYSTRUCTURE)\r\n');
  await until(/c OK.*\r\n/);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  sock.end('d LOGOUT\r\n');
  return { seconds, octets };
}

/** An mbsync configuration syncing `t`'s INBOX into the Maildir `local`; its path. */
function mbsyncRc(t: Target, dir: string, local: string, fsync = true): string {
  writeFileSync(join(dir, `ca-${t.system}.pem`), t.ca);
  const rc = join(dir, `mbsyncrc-${t.system}${fsync ? '' : '-nofsync'}`);
  writeFileSync(
    rc,
    // `FSync no` (a global option, so first): the servers' row without mbsync's fsync per message.
    [...(fsync ? [] : ['FSync no', '']), `IMAPAccount a`, 'Host 127.0.0.1', `Port ${t.port}`, `User ${t.user}`, `Pass ${t.pass}`, 'SSLType IMAPS', `CertificateFile ${join(dir, `ca-${t.system}.pem`)}`, '',
      'IMAPStore r', 'Account a', '', 'MaildirStore l', `Path ${local}/`, `Inbox ${local}/INBOX`, '',
      'Channel c', 'Far :r:INBOX', 'Near :l:INBOX', 'Create Near', 'SyncState *', ''].join('\n'),
  );
  return rc;
}

/**
 * mbsync's initial sync: its wall seconds, its own CPU seconds (bash's `times` after it: the
 * client's share, the same work against either server) and the server's CPU seconds meanwhile.
 */
async function mbsync(t: Target, dir: string, fsync = true): Promise<{ seconds: number; serverCpu: number; clientCpu: number }> {
  const local = mkdtempSync(join(dir, 'maildir-'));
  const rc = mbsyncRc(t, dir, local, fsync);
  const cpuBefore = t.cpu();
  const start = process.hrtime.bigint();
  let times = '';
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn('bash', ['-c', 'mbsync -q -c "$1" c; rc=$?; times >&3; exit $rc', 'bash', rc], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
    (p.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => (times += d.toString()));
    p.on('close', resolve);
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // `times`: the shell's user and system time, then its children's (mbsync's), as 0m1.234s.
  const [user, sys] = (times.trim().split('\n')[1] ?? '').split(' ').map((x) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(x);
    return m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN;
  });
  const clientCpu = (user ?? Number.NaN) + (sys ?? Number.NaN);
  // Dovecot's imap and imap-login processes are counted once its master has reaped them.
  await new Promise((r) => setTimeout(r, 500));
  const serverCpu = t.cpu() - cpuBefore;
  if (code !== 0) throw new Error(`mbsync exited ${code} against ${t.system}`);
  const got = readdirSync(join(local, 'INBOX', 'cur')).length + readdirSync(join(local, 'INBOX', 'new')).length;
  if (got !== N) throw new Error(`mbsync got ${got} of ${N} messages from ${t.system}`);
  rmSync(local, { recursive: true, force: true });
  return { seconds, serverCpu, clientCpu };
}

/** BENCH_MBSYNC_NOFSYNC=1: a second mbsync run per repeat with `FSync no`, the servers' share without the client's fsyncs. */
const NOFSYNC = process.env.BENCH_MBSYNC_NOFSYNC === '1';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-imap-'));
  mkdirSync(join(dir, 'twoway'));
  const dns = await startDnsServer({ records: [] });
  // BENCH_NODE_FLAGS: node flags for twoway's process, e.g. `--cpu-prof --cpu-prof-dir=bench/out/prof` or `--perf-basic-prof`.
  const nodeFlags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  const child = await startTwowayChild({ dir: join(dir, 'twoway'), dns: dns.address, nodeFlags });
  const dovecot = await startDovecot({ tls: true, extra: DOVECOT_COMPRESS ? 'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}' : '' });
  log(`Dovecot ${DOVECOT_COMPRESS ? 'with' : 'without'} COMPRESS=DEFLATE (BENCH_DOVECOT_COMPRESS); twoway offers it`);
  const dovecotPid = Number(readFileSync(join(dovecot.dir, 'run', 'master.pid'), 'utf8'));
  try {
    const targets: Target[] = [
      { system: 'twoway', port: child.imapsPort!, ca: readFileSync(join(dir, 'twoway', 'data', 'tls', 'cert.pem'), 'utf8'), user: 'bench@bench.test', pass: BENCH_PASSWORD, cpu: () => treeCpuSeconds(child.pid) ?? Number.NaN },
      { system: 'dovecot', port: dovecot.tlsPort!, ca: dovecot.ca!, user: dovecot.user, pass: dovecot.password, cpu: () => treeCpuSeconds(dovecotPid) ?? Number.NaN },
    ];
    const messages = corpus();
    // BENCH_HOLD with BENCH_SYSTEMS=twoway (or dovecot): load and hold only that one.
    const only = process.env.BENCH_HOLD === '1' ? process.env.BENCH_SYSTEMS : undefined;
    if (only) targets.splice(0, targets.length, ...targets.filter((t) => t.system === only));
    for (const t of targets) {
      const start = Date.now();
      await load(t, messages);
      log(`${t.system}: ${N} messages appended in ${((Date.now() - start) / 1000).toFixed(1)} s`);
    }
    if (process.env.BENCH_HOLD === '1') {
      // Both servers stay up with their mailboxes, for tracing mbsync by hand (strace, perf), until SIGINT or SIGTERM.
      for (const t of targets) log(`${t.system}: mbsync -c ${mbsyncRc(t, dir, join(dir, `maildir-${t.system}`))} c  (server pid ${t.system === 'twoway' ? child.pid : dovecotPid})`);
      log('holding (BENCH_HOLD=1); SIGINT or SIGTERM ends');
      await new Promise((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      return;
    }
    const rows = [];
    // The repeats alternate between the systems, so that both see the same moments of the machine's load.
    const acc = targets.map(() => ({ fetches: [] as number[], syncs: [] as number[], syncCpus: [] as number[], clientCpus: [] as number[], noFsyncs: [] as number[], noFsyncCpus: [] as number[], octets: 0 }));
    const loadNow = () => loadavg().map((x) => x.toFixed(2)).join(' ');
    for (let i = 0; i < REPEAT; i++) {
      for (const [k, t] of targets.entries()) {
        const a = acc[k]!;
        const f = await fetchAll(t);
        a.fetches.push(f.seconds);
        a.octets = f.octets;
        // Logged as measured: a later step failing (mbsync) must not lose the figure.
        log(`${t.system}: FETCH ${i === 0 ? '(first after APPEND) ' : ''}${f.seconds.toFixed(3)} s, ${f.octets} octets; load average ${loadNow()}`);
        const sync = await mbsync(t, dir);
        a.syncs.push(sync.seconds);
        a.syncCpus.push(sync.serverCpu);
        a.clientCpus.push(sync.clientCpu);
        log(`${t.system}: mbsync ${sync.seconds.toFixed(2)} s, server CPU ${sync.serverCpu.toFixed(2)} s, mbsync CPU ${sync.clientCpu.toFixed(2)} s; load average ${loadNow()}`);
        if (NOFSYNC) {
          const nf = await mbsync(t, dir, false);
          a.noFsyncs.push(nf.seconds);
          a.noFsyncCpus.push(nf.serverCpu);
          log(`${t.system}: mbsync (FSync no) ${nf.seconds.toFixed(2)} s, server CPU ${nf.serverCpu.toFixed(2)} s, mbsync CPU ${nf.clientCpu.toFixed(2)} s; load average ${loadNow()}`);
        }
      }
    }
    for (const [k, t] of targets.entries()) {
      const a = acc[k]!;
      rows.push({
        system: t.system, messages: N, fetchSeconds: median(a.fetches), fetchFirstSeconds: a.fetches[0]!, fetchOctets: a.octets, mbsyncSeconds: median(a.syncs), mbsyncServerCpu: median(a.syncCpus),
        mbsyncClientCpu: median(a.clientCpus), mbsyncNoFsyncSeconds: NOFSYNC ? median(a.noFsyncs) : null, mbsyncNoFsyncServerCpu: NOFSYNC ? median(a.noFsyncCpus) : null,
        fetches: a.fetches, syncs: a.syncs, syncCpus: a.syncCpus, clientCpus: a.clientCpus, noFsyncs: a.noFsyncs, noFsyncCpus: a.noFsyncCpus,
      });
    }
    const [tw, dc] = rows as [(typeof rows)[0], (typeof rows)[0]];
    const out = rows.map((r) => ({
      ...r,
      fetchRatio: r === tw ? dc.fetchSeconds / tw.fetchSeconds : null,
      fetchFirstRatio: r === tw ? dc.fetchFirstSeconds / tw.fetchFirstSeconds : null,
      mbsyncRatio: r === tw ? dc.mbsyncSeconds / tw.mbsyncSeconds : null,
      mbsyncCpuRatio: r === tw ? dc.mbsyncServerCpu / tw.mbsyncServerCpu : null,
    }));
    for (const r of out) {
      const ratios = r.fetchRatio ? `  ratios: FETCH ${r.fetchRatio.toFixed(2)}x (first ${r.fetchFirstRatio!.toFixed(2)}x), mbsync ${r.mbsyncRatio!.toFixed(2)}x (server CPU ${r.mbsyncCpuRatio!.toFixed(2)}x)` : '';
      const noFsync = r.mbsyncNoFsyncSeconds === null ? '' : `; FSync no ${r.mbsyncNoFsyncSeconds.toFixed(2)} s (server CPU ${r.mbsyncNoFsyncServerCpu!.toFixed(2)} s)`;
      console.log(`${r.system.padEnd(8)} FETCH ${r.fetchSeconds.toFixed(3)} s, first ${r.fetchFirstSeconds.toFixed(3)} s (${r.fetchOctets} octets)  mbsync ${r.mbsyncSeconds.toFixed(2)} s (server CPU ${r.mbsyncServerCpu.toFixed(2)} s, mbsync CPU ${r.mbsyncClientCpu.toFixed(2)} s${noFsync})${ratios}`);
    }
    mkdirSync('bench/out', { recursive: true });
    const markdown = `| system | messages | FETCH 1:* (s, median of ${REPEAT}) | first FETCH after APPEND (s) | mbsync initial sync (s) | server CPU during mbsync (s) | FETCH ratio | first FETCH ratio | mbsync ratio | mbsync server CPU ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n${out
      .map((r) => `| ${r.system} | ${r.messages} | ${r.fetchSeconds.toFixed(3)} | ${r.fetchFirstSeconds.toFixed(3)} | ${r.mbsyncSeconds.toFixed(2)} | ${r.mbsyncServerCpu.toFixed(2)} | ${r.fetchRatio?.toFixed(2) ?? '1.00'} | ${r.fetchFirstRatio?.toFixed(2) ?? '1.00'} | ${r.mbsyncRatio?.toFixed(2) ?? '1.00'} | ${r.mbsyncCpuRatio?.toFixed(2) ?? '1.00'} |`)
      .join('\n')}\n\nRatios are Dovecot's time over twoway's (≥ 1 means twoway is as fast).\n${
      NOFSYNC
        ? `\nmbsync with \`FSync no\` (the servers without the client's fsyncs), median of ${REPEAT}:\n\n| system | mbsync (s) | server CPU (s) |\n|---|---:|---:|\n${out.map((r) => `| ${r.system} | ${r.mbsyncNoFsyncSeconds!.toFixed(2)} | ${r.mbsyncNoFsyncServerCpu!.toFixed(2)} |`).join('\n')}\n`
        : ''
    }`;
    writeFileSync('bench/out/imap-fetch.json', JSON.stringify({ rows: out, markdown }, null, 2));
  } finally {
    await child.stop().catch(() => child.kill());
    await dovecot.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
