/**
 * `[server] processes = 2` through the real CLI (`twoway start`), on SQLite
 * and on PostgreSQL: a supervisor process forks two workers that share the
 * SMTP port (each accepting from it). Checked: both workers serve sessions (their pids in the
 * "message decided" log lines, pino's `pid` field), a worker killed with
 * kill -9 is forked again while the port keeps answering, every message
 * acknowledged with 250 is stored exactly once, IMAP IDLE on one worker
 * hears mail that the other stored, and SIGTERM stops the supervisor and its
 * workers cleanly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { ChildServer, runCli, type ChildReady, writeChildConfig, type ChildConfig } from './helpers/child-server.ts';
import { pgSchema, pgSkipReason, type PgSchema } from './helpers/pg-schema.ts';
import { commonFreePort, eventually, rawMessage, send } from './helpers/server.ts';
import { RawImap } from './helpers/raw-imap.ts';

const HOST = '127.0.0.1';
const USER = { address: 'pat@p.test', password: 'pat-password' };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The live child processes of `pid` (the supervisor's workers), from /proc. */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') found.push(Number(entry));
    } catch {
      // gone between readdir and read
    }
  }
  return found.sort((a, b) => a - b);
}

/** The [imap] section on `port` (plain, login allowed without TLS on loopback), one session per user and worker. */
function imapSection(toml: string, port: number): string {
  if (!toml.includes('[imap]\n') || !toml.includes('port = 0\ntls_port = 0\n')) throw new Error('unexpected [imap] section in the rendered configuration');
  return toml
    .replace('[imap]\n', '[imap]\nallow_plaintext_auth = true\nmax_connections_per_user = 1\n')
    .replace('port = 0\ntls_port = 0\n', `port = ${port}\ntls_port = 0\n`);
}

/** One SMTP session per message; resolves true on 250, false on any failure (not acknowledged). */
async function deliver(port: number, subject: string): Promise<boolean> {
  try {
    const reply = await send({ port, from: 'someone@elsewhere.test', to: USER.address, raw: rawMessage('someone@elsewhere.test', USER.address, subject) });
    return reply.startsWith('250');
  } catch {
    return false;
  }
}

/** A logged-in IMAP session, or null when the worker that took the connection refused the login. */
async function imapLogin(port: number): Promise<RawImap | null> {
  const c = await RawImap.connect(port);
  const reply = await c.cmd('l', `LOGIN ${USER.address} ${USER.password}`);
  if (/^l OK/m.test(reply)) return c;
  c.close();
  assert.match(reply, /^l NO \[LIMIT\]/m, 'refused only for the per-user limit');
  return null;
}

/**
 * Two IMAP sessions of one user on the two workers. With one connection per user
 * allowed, a limit each worker counts by itself (section 3.1 of docs/architecture.md),
 * a second login succeeds only on the other worker: connect until one does.
 */
async function sessionsOnBothWorkers(port: number): Promise<[RawImap, RawImap]> {
  const first = await imapLogin(port);
  assert.ok(first, 'the first login succeeds');
  for (let i = 0; i < 200; i++) {
    const second = await imapLogin(port);
    if (second) return [first, second];
    await sleep(50);
  }
  first.close();
  assert.fail('no login reached the second worker in 200 connections');
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`processes = 2 on ${backend}`, { timeout: 300_000 }, () => {
    let skip: string | false = false;
    let dns: EmbeddedDnsServer;
    let conf: ChildConfig;
    let schema: PgSchema | null = null;
    let child: ChildServer;
    let port: number;
    let imapPort: number;
    const sessionPids = new Set<number>();

    before(async () => {
      if (backend === 'postgres') {
        skip = await pgSkipReason();
        if (skip) return;
        schema = pgSchema('twoway_processes');
      }
      dns = await startDnsServer();
      port = await commonFreePort([HOST]);
      let submissionPort: number;
      do submissionPort = await commonFreePort([HOST]);
      while (submissionPort === port);
      do imapPort = await commonFreePort([HOST]);
      while (imapPort === port || imapPort === submissionPort);
      conf = writeChildConfig({
        domain: 'p.test',
        host: HOST,
        smtpPort: port,
        submissionPort,
        deliveryPort: 25,
        dns: [dns.address],
        // IMAP on a known port (the ready line names only SMTP and the API), one session per user and worker.
        edit: (toml) =>
          `${schema ? `storage = "${schema.url}"\n` : ''}${imapSection(toml, imapPort)}\n[server]\nprocesses = 2\n`,
      });
      const added = await runCli(['user', 'add', USER.address, '--config', conf.file], `${USER.password}\n`);
      assert.equal(added.code, 0, added.stderr);
      child = new ChildServer(conf.file);
      child.onLine((line) => {
        if (!line.includes('"message decided"')) return;
        const pid = /"pid":(\d+)/.exec(line);
        if (pid) sessionPids.add(Number(pid[1]));
      });
    });

    after(async () => {
      if (skip) return;
      await child?.kill();
      await dns?.close();
      await schema?.drop();
      conf?.cleanup();
    });

    let ready: ChildReady;
    let workers: number[];
    const acked: string[] = [];
    const batch = async (prefix: string, n: number) => {
      const subjects = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
      const results = await Promise.all(subjects.map((s) => deliver(port, s)));
      for (const [i, s] of subjects.entries()) if (results[i]) acked.push(s);
      return results.filter(Boolean).length;
    };

    it('starts a supervisor with two workers that both accept on the one port', async (t) => {
      if (skip) return t.skip(skip);
      // Two workers compile the sources through tsx at once: slow on a loaded 2-core machine.
      ready = await child.start(150_000);
      workers = await eventually(async () => {
        const pids = childrenOf(ready.pid);
        return pids.length === 2 ? pids : undefined;
      }, 10_000, 'two worker processes');
      // Each worker accepts from the shared socket (supervisor.ts, SCHED_NONE): the kernel picks
      // which, and one worker may take a whole burst, so sessions go on until both have served.
      for (let i = 0; i < 40 && sessionPids.size < 2; i++) {
        assert.equal(await batch(`before-${i}`, 6), 6, 'every session is acknowledged');
        await sleep(100);
      }
      await eventually(async () => (sessionPids.size >= 2 ? true : undefined), 5_000, 'log lines from both workers');
      assert.deepEqual([...sessionPids].sort((a, b) => a - b), workers, 'the sessions were served by the two workers');
    });

    it('IMAP IDLE on one worker hears mail that the other worker stored', async (t) => {
      if (skip || !workers) return t.skip(skip || 'no workers');
      const sessions = await sessionsOnBothWorkers(imapPort);
      try {
        for (const [i, c] of sessions.entries()) {
          assert.match(await c.cmd(`s${i}`, 'SELECT INBOX'), new RegExp(`^s${i} OK`, 'm'));
          c.write(`i${i} IDLE\r\n`);
          await c.waitFor(/\+ idling\r\n/);
        }
        // The SMTP session lands on one worker: the session on the other hears of the mail only across processes.
        assert.equal(await deliver(port, 'idle-1'), true);
        acked.push('idle-1');
        for (const [i, c] of sessions.entries()) await c.waitFor(/\* \d+ EXISTS\r\n/, 10_000).catch((err: Error) => assert.fail(`session ${i}: ${err.message}`));
      } finally {
        for (const c of sessions) c.close();
      }
    });

    it('forks a worker killed with kill -9 again; the port keeps answering', async (t) => {
      if (skip || !workers) return t.skip(skip || 'no workers');
      const [survivor, victim] = workers as [number, number];
      const during = batch('during', 8);
      process.kill(victim, 'SIGKILL');
      const duringAcked = await during;
      const replaced = await eventually(async () => {
        const pids = childrenOf(ready.pid);
        return pids.length === 2 && !pids.includes(victim) ? pids : undefined;
      }, 20_000, 'the killed worker forked again');
      assert.ok(replaced.includes(survivor), 'the other worker kept running');
      assert.ok(duringAcked >= 1, 'the surviving worker answered while its sibling died');
      const fresh = replaced.find((p) => p !== survivor)!;
      // The new worker needs a while to start (tsx compiles); the survivor answers every session meanwhile.
      sessionPids.clear();
      for (let i = 0; i < 160 && !sessionPids.has(fresh); i++) {
        assert.equal(await batch(`after-${i}`, 2), 2, 'every session after the kill is acknowledged');
        await sleep(250);
      }
      assert.ok(sessionPids.has(fresh), 'the new worker serves sessions');
    });

    it('stored every acknowledged message exactly once', async (t) => {
      if (skip || acked.length === 0) return t.skip(skip || 'nothing sent');
      const config = loadConfig(conf.file);
      const app = await createApp({ ...config, log: { level: 'silent' } });
      try {
        const user = await app.store.users.findByAddress(USER.address);
        assert.ok(user);
        const stored = (await app.services.mail.list(user.id, undefined, { limit: 100_000 })).map((m) => m.subject ?? '');
        const counts = new Map<string, number>();
        for (const s of stored) counts.set(s, (counts.get(s) ?? 0) + 1);
        for (const s of acked) assert.equal(counts.get(s), 1, `acknowledged "${s}" stored ${counts.get(s) ?? 0} times`);
      } finally {
        await app.close();
      }
    });

    it('stops the supervisor and its workers on SIGTERM', async (t) => {
      if (skip || !ready) return t.skip(skip || 'not started');
      const exit = await child.stop(15_000);
      assert.deepEqual(exit, { code: 0, signal: null }, child.logTail());
      assert.deepEqual(childrenOf(ready.pid), [], 'no worker outlives the supervisor');
    });
  });
}
