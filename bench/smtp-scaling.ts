/**
 * Scaling: the durable SMTP accept rate of twoway with 1 and with 2 processes
 * (`[server] processes`), on SQLite and on PostgreSQL, in one sitting.
 *
 *   npx tsx bench/smtp-scaling.ts                 # about 3 minutes
 *   BENCH_QUICK=1 npx tsx bench/smtp-scaling.ts   # smoke run
 *
 * Four twoway children (bench/lib/twoway-server.ts: with 2 processes the child
 * is the supervisor of src/supervisor.ts and its two workers share the port),
 * each on a fresh store: SQLite in a temporary directory, or a fresh schema in
 * the PostgreSQL at BENCH_PG (default postgres://postgres@127.0.0.1:5432/test).
 * Load as in smtp-accept: `smtp-source -s SESSIONS -m COUNT -l 10240`, one
 * connection per message, one warm-up each, then BENCH_RUNS alternating
 * rounds, median. CPU = the child's process tree (supervisor + workers) per
 * wall second. Checked: every acknowledged message is stored.
 *
 * Output: Markdown on stdout and bench/out/smtp-scaling.json (`rows[]`:
 * `system`, `processes`, `storage`, `sessions`, `messages`, `seconds`,
 * `msgPerSec`, `ratio` (to 1 process on the same storage), `serverCpu`; `markdown`).
 *
 * Environment: BENCH_RUNS (3), BENCH_SESSIONS (100), BENCH_MESSAGES (2000),
 * BENCH_PG, BENCH_TARGETS (default `1:sqlite,2:sqlite,1:postgres,2:postgres`).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { describeMachine } from './lib/machine.ts';
import { treeCpuSeconds } from './lib/proc-cpu.ts';
import { runSmtpSource } from './lib/smtp-source.ts';
import { startTwowayChild, type TwowayChild } from './lib/twoway-child.ts';

const here = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(here, 'out');
const DOMAIN = 'bench.test';
const USER = `bench@${DOMAIN}`;
const SIZE = 10 * 1024;
const quick = process.env.BENCH_QUICK === '1';
const runs = Number(process.env.BENCH_RUNS ?? (quick ? 1 : 3));
const sessions = Number(process.env.BENCH_SESSIONS ?? 100);
const messages = Number(process.env.BENCH_MESSAGES ?? (quick ? 200 : 2000));
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const targets = (process.env.BENCH_TARGETS ?? '1:sqlite,2:sqlite,1:postgres,2:postgres').split(',').map((t) => {
  const [n, storage] = t.trim().split(':');
  if (!n || !(storage === 'sqlite' || storage === 'postgres')) throw new Error(`BENCH_TARGETS: bad entry ${t}`);
  return { processes: Number(n), storage };
});

const log = (s = '') => process.stderr.write(s + '\n');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function pgQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

interface Live {
  name: string;
  processes: number;
  storage: string;
  child: TwowayChild;
  sent: number;
  results: Array<{ msgPerSec: number; seconds: number; serverCpu: number | null }>;
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
    for (const t of targets) {
      const dir = mkdtempSync(join(tmpdir(), 'twoway-scaling-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      let storage: string | undefined;
      if (t.storage === 'postgres') {
        const schema = `bench_scaling_${randomBytes(4).toString('hex')}`;
        storage = `${PG}${PG.includes('?') ? '&' : '?'}schema=${schema}`;
        cleanups.push(() => pgQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
      }
      const child = await startTwowayChild({ dir, dns: dns.address, domain: DOMAIN, user: USER, processes: t.processes, ...(storage ? { storage } : {}), startTimeoutMs: 180_000 });
      cleanups.push(() => child.stop());
      const name = `twoway, ${t.processes} process${t.processes > 1 ? 'es' : ''}, ${t.storage === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`;
      lives.push({ name, processes: t.processes, storage: t.storage, child, sent: 0, results: [] });
      log(`${name}: port ${child.smtpPort}, pid ${child.pid}`);
    }
    const once = async (l: Live, count: number) => {
      const cpu0 = treeCpuSeconds(l.child.pid);
      const r = await runSmtpSource({ host: '127.0.0.1', port: l.child.smtpPort, sessions, messages: count, size: SIZE, from: 'sender@source.test', to: USER, helo: 'client.source.test' });
      const cpu1 = treeCpuSeconds(l.child.pid);
      if (r.exitCode !== 0) throw new Error(`smtp-source against ${l.name} exited ${r.exitCode}\n${r.stderr}`);
      l.sent += count;
      await new Promise((res) => setTimeout(res, 300));
      return { seconds: r.seconds, msgPerSec: count / r.seconds, serverCpu: cpu0 !== null && cpu1 !== null ? (cpu1 - cpu0) / r.seconds : null };
    };
    for (const l of lives) log(`  warm-up ${l.name}: ${(await once(l, Math.max(sessions * 3, 300))).msgPerSec.toFixed(0)} msg/s`);
    for (let i = 0; i < runs; i++) {
      // Alternate the order each round so that no target always runs first.
      for (const l of i % 2 ? [...lives].reverse() : lives) {
        const r = await once(l, messages);
        l.results.push(r);
        log(`  run ${i + 1} ${l.name}: ${r.msgPerSec.toFixed(0)} msg/s, CPU ${r.serverCpu?.toFixed(2)}`);
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
    system: l.name,
    processes: l.processes,
    storage: l.storage,
    sessions,
    messages,
    seconds: median(l.results.map((r) => r.seconds)),
    msgPerSec: median(l.results.map((r) => r.msgPerSec)),
    serverCpu: median(l.results.map((r) => r.serverCpu ?? 0)),
    ratio: null as number | null,
    runs: l.results.map((r) => Math.round(r.msgPerSec)),
  }));
  for (const r of rows) {
    const base = rows.find((x) => x.storage === r.storage && x.processes === 1);
    r.ratio = base ? Math.round((r.msgPerSec / base.msgPerSec) * 100) / 100 : null;
  }
  const after = describeMachine();
  const markdown = [
    `machine: ${machine.nproc} CPUs, ${machine.cpu}; load average ${machine.loadavg.join(' ')} at start, ${after.loadavg.join(' ')} at end`,
    `load: smtp-source -s ${sessions} -m ${messages} -l ${SIZE}, one connection per message; median of ${runs} alternating run(s) after one warm-up`,
    '',
    '| twoway | storage | processes | msg/s | vs 1 process | server CPU (cores) | runs (msg/s) |',
    '|---|---|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.system} | ${r.storage} | ${r.processes} | ${r.msgPerSec.toFixed(0)} | ${r.ratio?.toFixed(2) ?? '-'} | ${r.serverCpu.toFixed(2)} | ${r.runs.join(', ')} |`),
  ].join('\n');
  process.stdout.write(`# Scaling: accept rate with 1 and 2 processes\n\n${markdown}\n`);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'smtp-scaling.json'), JSON.stringify({ bench: 'smtp-scaling', date: new Date().toISOString(), quick, machine, rows, markdown }, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`smtp-scaling: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
