/**
 * spam-accept: the durable SMTP accept rate with rspamd in the path, twoway
 * against Postfix, in one sitting. Four targets, one shared private rspamd
 * (test/helpers/rspamd.ts: network checks off, one normal worker unless
 * BENCH_RSPAMD_WORKERS):
 *
 * - twoway without [spam];
 * - twoway with [spam] (every message is from a stranger, so each is sent
 *   once to rspamd's /checkv2 before the 250);
 * - Postfix (bench/lib/postfix.ts's accept configuration, all transports
 *   `discard`), no milter;
 * - the same Postfix configuration with `smtpd_milters` on rspamd's proxy
 *   worker in milter mode (which scans through the same normal worker).
 *
 * smtp-source sends 10 KB messages, one connection per message; one warm-up
 * per target, then RUNS alternating rounds; the median is reported, and the
 * ratios are within the one sitting (the machine is shared: absolute figures
 * move with its load). Checks: every smtp-source run exits 0; each twoway
 * child stored what was sent to it.
 *
 *   npx tsx bench/spam-accept.ts      (root, postfix and rspamd packages, Redis at 127.0.0.1:6379)
 *   BENCH_QUICK=1 npx tsx bench/spam-accept.ts
 *   BENCH_SESSIONS=20 BENCH_MESSAGES=500 BENCH_RUNS=3
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { startRspamd } from '../test/helpers/rspamd.ts';
import { describeMachine } from './lib/machine.ts';
import { postfixVersion, startPostfixInstance, type PostfixInstance } from './lib/postfix.ts';
import { runSmtpSource } from './lib/smtp-source.ts';
import { startTwowayChild, type TwowayChild } from './lib/twoway-child.ts';

const DOMAIN = 'bench.test';
const USER = `bench@${DOMAIN}`;
const SENDER = 'sender@source.test';
const HELO = 'client.source.test';
const SIZE = 10 * 1024;
const quick = process.env.BENCH_QUICK === '1';
const runs = Number(process.env.BENCH_RUNS ?? (quick ? 1 : 3));
const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
const messages = Number(process.env.BENCH_MESSAGES ?? (quick ? 100 : 500));
const log = (s: string) => process.stderr.write(`${s}\n`);

interface Target {
  name: string;
  port: number;
  child?: TwowayChild;
  postfix?: PostfixInstance;
  sent: number;
  rates: number[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const machine = describeMachine();
  const postfixVer = await postfixVersion();
  const cleanups: Array<() => Promise<unknown>> = [];
  const targets: Target[] = [];
  try {
    const rspamd = await startRspamd({ redisDb: 10, milter: true, normalWorkers: Number(process.env.BENCH_RSPAMD_WORKERS ?? 1) });
    cleanups.push(() => rspamd.close());
    const dns = await startDnsServer({
      records: [
        { name: HELO, type: 'A', data: '127.0.0.1' },
        { name: 'source.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
        { name: '_dmarc.source.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
      ],
    });
    cleanups.push(() => dns.close());
    for (const [name, extraToml] of [['twoway', ''], ['twoway+rspamd', rspamd.toml()]] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const child = await startTwowayChild({ dir, dns: dns.address, domain: DOMAIN, user: USER, logLevel: 'warn', extraToml });
      cleanups.push(() => child.stop());
      targets.push({ name, port: child.smtpPort, child, sent: 0, rates: [] });
    }
    for (const [name, main] of [
      ['postfix', {}],
      ['postfix+rspamd milter', { smtpd_milters: `inet:127.0.0.1:${rspamd.milterPort}`, milter_default_action: 'tempfail', milter_protocol: 6, milter_mail_macros: 'i {mail_addr} {client_addr} {client_name} {auth_authen}' }],
    ] as const) {
      const instance = await startPostfixInstance({
        name: 'twoway-bench-postfix', host: '127.0.0.1', hostname: `postfix.${DOMAIN}`, relayDomains: [DOMAIN], defaultTransport: 'discard', maxSessions: 100, tls: false, main,
      });
      cleanups.push(() => instance.stop());
      targets.push({ name, port: instance.port, postfix: instance, sent: 0, rates: [] });
    }
    const once = async (t: Target, n: number) => {
      const r = await runSmtpSource({ host: '127.0.0.1', port: t.port, sessions, messages: n, size: SIZE, from: SENDER, to: USER, helo: HELO, reuseConnections: false });
      if (r.exitCode !== 0) throw new Error(`smtp-source against ${t.name} exited ${r.exitCode}: ${r.stderr.slice(0, 500)}`);
      t.sent += n;
      if (t.postfix) await t.postfix.waitQueueEmpty(120_000);
      return n / r.seconds;
    };
    for (const t of targets) log(`warm-up ${t.name}: ${(await once(t, Math.ceil(messages / 5))).toFixed(0)} msg/s`);
    for (let i = 0; i < runs; i++) {
      for (const t of targets) {
        const rate = await once(t, messages);
        t.rates.push(rate);
        log(`run ${i + 1} ${t.name}: ${rate.toFixed(0)} msg/s`);
      }
    }
    for (const t of targets) {
      if (t.child) {
        const stored = await t.child.count();
        if (stored !== t.sent) throw new Error(`${t.name} acknowledged ${t.sent} but stored ${stored}`);
      }
    }
    const milterLog = targets[3]!.postfix!.log().filter((l) => /milter/i.test(l) && /warning|error/i.test(l));
    const after = describeMachine();
    const rate = (name: string) => median(targets.find((t) => t.name === name)!.rates);
    const lines = [
      `# Durable SMTP accept with rspamd: twoway vs Postfix + rspamd milter${quick ? ' (BENCH_QUICK)' : ''}`,
      '',
      `machine: ${machine.nproc} CPUs, ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.kernel}; node ${machine.node}; postfix ${postfixVer}; load average ${machine.loadavg.join(' ')} at start, ${after.loadavg.join(' ')} at end (shared with other agents' work: absolute figures are depressed and noisy, compare the ratios)`,
      `load: smtp-source -l ${SIZE}, one connection per message, ${sessions} sessions, ${messages} messages per run; median of ${runs} alternating run(s) after one warm-up each; one rspamd normal worker shared by both`,
      '',
      '| target | msg/s (median) | runs | vs same system without rspamd |',
      '| --- | ---: | --- | ---: |',
      ...targets.map((t) => {
        const base = t.name.startsWith('twoway') ? rate('twoway') : rate('postfix');
        return `| ${t.name} | ${median(t.rates).toFixed(1)} | ${t.rates.map((r) => r.toFixed(0)).join(', ')} | ${(median(t.rates) / base).toFixed(2)} |`;
      }),
      '',
      `twoway+rspamd / postfix+rspamd milter: **${(rate('twoway+rspamd') / rate('postfix+rspamd milter')).toFixed(2)}**; twoway / postfix without rspamd: ${(rate('twoway') / rate('postfix')).toFixed(2)}`,
      milterLog.length ? `Postfix milter warnings: ${milterLog.length} (first: ${milterLog[0]})` : 'Postfix logged no milter warning.',
    ];
    console.log(lines.join('\n'));
    mkdirSync('bench/out', { recursive: true });
    // bench/run.ts reads `rows` (its summary line) and `markdown` (this section, without the title).
    const rows = targets.map((t) => ({ system: t.name, sessions, messages, runs: t.rates, msgPerSec: median(t.rates), sent: t.sent }));
    writeFileSync('bench/out/spam-accept.json', JSON.stringify({ machine, after, sessions, messages, runs, rows, markdown: lines.slice(2).join('\n') }, null, 2));
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  }
}

await main();
