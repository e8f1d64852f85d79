/**
 * `[server] processes = 2` through the real CLI (`twoway start`), on SQLite
 * and on PostgreSQL: a supervisor process forks two workers that share the
 * SMTP port (each accepting from it). Checked: both workers serve sessions (their pids in the
 * "message decided" log lines, pino's `pid` field), a worker killed with
 * kill -9 is forked again while the port keeps answering, every message
 * acknowledged with 250 is stored exactly once, and SIGTERM stops the
 * supervisor and its workers cleanly.
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

/** One SMTP session per message; resolves true on 250, false on any failure (not acknowledged). */
async function deliver(port: number, subject: string): Promise<boolean> {
  try {
    const reply = await send({ port, from: 'someone@elsewhere.test', to: USER.address, raw: rawMessage('someone@elsewhere.test', USER.address, subject) });
    return reply.startsWith('250');
  } catch {
    return false;
  }
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`processes = 2 on ${backend}`, { timeout: 300_000 }, () => {
    let skip: string | false = false;
    let dns: EmbeddedDnsServer;
    let conf: ChildConfig;
    let schema: PgSchema | null = null;
    let child: ChildServer;
    let port: number;
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
      conf = writeChildConfig({
        domain: 'p.test',
        host: HOST,
        smtpPort: port,
        submissionPort,
        deliveryPort: 25,
        dns: [dns.address],
        edit: (toml) => `${schema ? `storage = "${schema.url}"\n` : ''}${toml}\n[server]\nprocesses = 2\n`,
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
