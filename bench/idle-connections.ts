/**
 * Resident memory with many idle SMTP connections (issue #6): twoway (one
 * Node process, a child as in smtp-accept.ts) against Postfix (a private
 * instance as in smtp-accept.ts: master + one smtpd process per connection)
 * in the same run. Each connection is opened, reads its 220 greeting, and
 * then stays idle while the server's memory is read from /proc.
 *
 * Memory: RSS and PSS (smaps_rollup; shared pages split between the
 * processes that map them, the fair sum for Postfix's many processes) of the
 * server's whole process tree, before and with the connections; the cost of
 * a connection is the difference divided by their number.
 *
 * Postfix gets fewer connections by default (BENCH_POSTFIX_CONNECTIONS,
 * 1,000): 10,000 smtpd processes would not fit this machine's memory, and
 * the cost per connection is what is compared.
 *
 *   npx tsx bench/idle-connections.ts           # needs root and postfix; about a minute
 *   BENCH_QUICK=1 npx tsx bench/idle-connections.ts
 *
 * Environment: BENCH_CONNECTIONS (10000), BENCH_POSTFIX_CONNECTIONS (1000),
 * BENCH_SYSTEMS=twoway,postfix. Output: a table on stdout and
 * bench/out/idle-connections.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { postfixVersion, startPostfix } from './lib/postfix.ts';
import { treeMemory, type Memory } from './lib/proc-memory.ts';
import { startTwowayChild } from './lib/twoway-child.ts';

const quick = process.env.BENCH_QUICK === '1';
const N_TWOWAY = Number(process.env.BENCH_CONNECTIONS ?? (quick ? 1000 : 10_000));
const N_POSTFIX = Number(process.env.BENCH_POSTFIX_CONNECTIONS ?? (quick ? 200 : 1000));
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? 'twoway,postfix').split(',');
/** Source addresses to spread the connections over (ephemeral ports per address). */
const SOURCES = Array.from({ length: 20 }, (_, i) => `127.0.0.${i + 1}`);
const log = (m: string) => process.stderr.write(`idle-connections: ${m}\n`);

interface Row {
  system: string;
  connections: number;
  open: number;
  before: Memory;
  with: Memory;
  kbPerConnection: number;
  ratio: number | null;
}

/** Opens `n` connections and resolves once each has read its greeting (or failed). */
async function openIdle(port: number, n: number): Promise<{ sockets: Socket[]; open: number }> {
  const sockets: Socket[] = [];
  let open = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const s = connect({ port, host: '127.0.0.1', localAddress: SOURCES[i % SOURCES.length] });
      sockets.push(s);
      s.setTimeout(30_000, () => {
        s.destroy();
        resolve();
      });
      s.on('error', () => resolve());
      s.once('data', (d: Buffer) => {
        if (d.toString('latin1').startsWith('220')) open++;
        s.setTimeout(0);
        resolve();
      });
    });
  for (let i = 0; i < n; i += 250) await Promise.all(Array.from({ length: Math.min(250, n - i) }, (_, k) => one(i + k)));
  return { sockets, open };
}

async function measure(system: string, pid: number, port: number, n: number): Promise<Row> {
  await new Promise((r) => setTimeout(r, 1000));
  const before = treeMemory(pid);
  const began = Date.now();
  const { sockets, open } = await openIdle(port, n);
  log(`${system}: ${open} of ${n} connections greeted in ${((Date.now() - began) / 1000).toFixed(1)} s`);
  await new Promise((r) => setTimeout(r, 2000));
  const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  const withConns = treeMemory(pid);
  for (const s of sockets) s.destroy();
  const kbPerConnection = (withConns.pssKb - before.pssKb) / Math.max(1, open);
  log(`${system}: PSS ${Math.round(before.pssKb / 1024)} -> ${Math.round(withConns.pssKb / 1024)} MB over ${withConns.processes} processes; ${kbPerConnection.toFixed(1)} KB per connection; ${stillOpen} still open`);
  return { system, connections: n, open: Math.min(open, stillOpen), before, with: withConns, kbPerConnection, ratio: null };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const dns = await startDnsServer();
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-idle-'));
  try {
    if (SYSTEMS.includes('twoway')) {
      const child = await startTwowayChild({ dir, dns: dns.address, domain: 'bench.test', logLevel: 'warn', maxConnections: N_TWOWAY + 100 });
      try {
        rows.push(await measure('twoway', child.pid, child.smtpPort, N_TWOWAY));
      } finally {
        await child.stop();
      }
    }
    if (SYSTEMS.includes('postfix')) {
      const pf = await startPostfix({ maxSessions: N_POSTFIX, domain: 'bench.test' });
      try {
        const master = pf.masterPid();
        if (master === null) throw new Error('the Postfix master is not running');
        rows.push(await measure(`Postfix ${await postfixVersion()}`.trim(), master, pf.port, N_POSTFIX));
      } finally {
        await pf.stop();
      }
    }
  } finally {
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const peer = rows.find((r) => r.system.startsWith('Postfix'));
  for (const r of rows) r.ratio = peer ? r.kbPerConnection / peer.kbPerConnection : null;
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  const lines = rows.map(
    (r) => `| ${r.system} | ${r.connections.toLocaleString('en')} | ${r.open.toLocaleString('en')} | ${r.with.processes} | ${mb(r.before.pssKb)} | ${mb(r.with.pssKb)} | ${mb(r.with.rssKb)} | ${r.kbPerConnection.toFixed(1)} | ${r.ratio === null ? '' : r.ratio.toFixed(3)} |`,
  );
  const markdown = `| system | connections | open at the reading | processes | PSS before (MB) | PSS with them (MB) | RSS sum with them (MB) | KB per connection (PSS) | ratio per connection to Postfix |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n${lines.join('\n')}\n`;
  process.stdout.write(`\n${markdown}`);
  mkdirSync('bench/out', { recursive: true });
  writeFileSync('bench/out/idle-connections.json', JSON.stringify({ rows, markdown }, null, 2));
}

await main();
