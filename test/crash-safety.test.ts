/**
 * Crash safety: a message acknowledged at submission survives kill -9 at any
 * moment; after a restart the queue resumes, with at-least-once delivery and
 * no duplicates beyond the deliveries that were in flight at a kill.
 *
 * Sender A (a.test) runs as a child process through the real CLI
 * (`twoway start`) on 127.0.0.2, with its data directory (SQLite) kept across
 * restarts. Destination B (b.test) is an in-process server on 127.0.0.3, the
 * same port, found through MX records in the shared embedded DNS server.
 * Several submission clients send continuously to B's user, each message
 * with a unique id in its subject, and record which ones got a 250 (and the
 * queue id in it). At seeded random moments (100-600 ms into load) the child
 * gets SIGKILL; a copy of its database files, taken before it is started
 * again, must hold every message acknowledged so far. At the end every acknowledged
 * message must have reached B; copies of one id are counted as duplicates,
 * which at-least-once allows only for the deliveries in flight at a kill
 * (at most per_domain_concurrency transport calls to b.test per kill).
 *
 * Reproduce a run with TWOWAY_TEST_SEED=<seed printed in the diagnostics>.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import nodemailer from 'nodemailer';
import { loadConfig, type Config } from '../src/config/load.ts';
import { dkimRecordValue, ensureMaterials } from '../src/config/materials.ts';
import type { QueueEntry } from '../src/core/types.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { openStore, parseStoreUrl } from '../src/store/open.ts';
import { ChildServer, runCli, withDelivery, writeChildConfig, type ChildConfig } from './helpers/child-server.ts';
import { commonFreePort, eventually, startTestServer, type TestServer } from './helpers/server.ts';

const A_HOST = '127.0.0.2';
const B_HOST = '127.0.0.3';
/** Kills per run: 3 in `npm test`; `npm run soak` sets TWOWAY_CRASH_TRIALS higher. */
const TRIALS = Number(process.env.TWOWAY_CRASH_TRIALS) || 3;
const CLIENTS = 4;
const KILL_AFTER_MS = [100, 600] as const;
const SENDER = { user: 'ann@a.test', pass: 'ann-password' };
const RECIPIENT = 'bea@b.test';

/** mulberry32: a small seeded PRNG, so that a failing run can be repeated. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One pooled submission connection (STARTTLS, AUTH), reused until it fails. */
function submissionPool(port: number) {
  return nodemailer.createTransport({
    host: A_HOST,
    port,
    auth: SENDER,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    pool: true,
    maxConnections: 1,
    maxMessages: Infinity,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 10_000,
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Ack {
  queueId: string;
  /** The server life (1 = first start) that acknowledged it. */
  life: number;
}

describe('crash safety of the outbound queue', { timeout: 90_000 + TRIALS * 20_000 }, () => {
  let dns: EmbeddedDnsServer;
  let b: TestServer;
  let conf: ChildConfig;
  let aConfig: Config;
  let child: ChildServer;
  let submissionPort: number;

  before(async () => {
    dns = await startDnsServer();
    const port = await commonFreePort([A_HOST, B_HOST]);
    do submissionPort = await commonFreePort([A_HOST]);
    while (submissionPort === port);

    b = await startTestServer({ domain: 'b.test', dns, host: B_HOST, smtpPort: port, deliveryPort: port });
    await b.server.services.accounts.add(RECIPIENT, 'bea-password', 'open');

    conf = writeChildConfig({
      domain: 'a.test',
      host: A_HOST,
      smtpPort: port,
      submissionPort,
      deliveryPort: port,
      dns: [dns.address],
      // The child logs at the default level (info) to stderr; ChildServer keeps the tail for failure messages.
      edit: (toml) => withDelivery(toml, { min_backoff: '"1s"', max_backoff: '"2s"' }),
    });
    aConfig = loadConfig(conf.file);
    // Key material now, so that its DKIM record can be published before the child starts (which then reuses it).
    const { dkim } = ensureMaterials(aConfig);
    for (const [domain, ip] of [['a.test', A_HOST], ['b.test', B_HOST]] as const) {
      dns.add([
        { name: domain, type: 'MX', data: { preference: 10, exchange: `mx.${domain}` } },
        { name: `mx.${domain}`, type: 'A', data: ip },
        { name: domain, type: 'TXT', data: `v=spf1 ip4:${ip} -all` },
      ]);
    }
    dns.add([
      { name: `${dkim.rsa.selector}._domainkey.a.test`, type: 'TXT', data: dkimRecordValue(dkim.rsa.publicKeyBase64, 'rsa') },
      { name: `${dkim.ed25519.selector}._domainkey.a.test`, type: 'TXT', data: dkimRecordValue(dkim.ed25519.publicKeyBase64, 'ed25519') },
    ]);

    // The account is created by the CLI, as an administrator would, before the server runs.
    const added = await runCli(['user', 'add', SENDER.user, '--config', conf.file], `${SENDER.pass}\n`);
    assert.equal(added.code, 0, `twoway user add failed: ${added.stderr}`);
    child = new ChildServer(conf.file);
  });

  after(async () => {
    await child?.kill('SIGKILL');
    await b?.close();
    await dns?.close();
    conf?.cleanup();
  });

  /** Reads A's queue from its store (the child is running: SQLite WAL allows a second process). */
  async function queueOfA(url = aConfig.storage): Promise<QueueEntry[]> {
    const store = await openStore(url);
    try {
      return await store.queue.list();
    } finally {
      await store.close();
    }
  }

  /**
   * Reads A's queue as the kill left it, from a copy of the database files:
   * opening the original would recover (and checkpoint) its WAL here, and the
   * restarted child must be the one that recovers from the crash.
   */
  async function queueOfDeadA(n: number): Promise<QueueEntry[]> {
    const db = parseStoreUrl(aConfig.storage);
    assert.equal(db.kind, 'sqlite');
    const copy = join(conf.dir, `snapshot-${n}`);
    mkdirSync(copy);
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(db.path + suffix)) copyFileSync(db.path + suffix, join(copy, basename(db.path) + suffix));
    }
    return queueOfA(`sqlite:${join(copy, basename(db.path))}`);
  }

  it(`acknowledged messages survive ${TRIALS} SIGKILLs under load and are delivered; duplicates only from in-flight deliveries`, async (t) => {
    const seed = Number(process.env.TWOWAY_TEST_SEED) || Date.now() % 2 ** 31;
    const random = prng(seed);
    t.diagnostic(`seed ${seed} (repeat with TWOWAY_TEST_SEED=${seed})`);
    const began = Date.now();

    const first = await child.start();
    t.diagnostic(`child started in ${first.startupMs} ms (pid ${first.pid})`);
    let life = 1;
    const acked = new Map<string, Ack>();
    const unacked = new Map<string, string>();
    let stopLoad = false;

    async function client(n: number): Promise<void> {
      let transport: ReturnType<typeof submissionPool> | null = null;
      for (let seq = 0; !stopLoad; seq++) {
        transport ??= submissionPool(submissionPort);
        const id = `${n}.${seq}`;
        const sentIn = life;
        try {
          const info = await transport.sendMail({
            from: SENDER.user,
            to: RECIPIENT,
            subject: `crash ${id}`,
            text: `Message ${id} of client ${n}.\n`,
          });
          const queueId = /queued as (\S+)/.exec(info.response)?.[1];
          if (!/^250 /.test(info.response) || !queueId) throw new Error(`unexpected reply: ${info.response}`);
          acked.set(id, { queueId, life: sentIn });
        } catch (err) {
          // Not acknowledged (refused connection, reset, timeout): it may or may not arrive.
          unacked.set(id, (err as Error).message);
          transport.close();
          transport = null;
          // The server is down or starting: try again soon, without starving its start-up of CPU.
          await sleep(200);
        }
      }
      transport?.close();
    }

    /** Resolves once the current server life has acknowledged something. */
    async function loadReaches(lifeNow: number): Promise<void> {
      await eventually(async () => [...acked.values()].some((a) => a.life === lifeNow), 20_000, `an acknowledgement from server life ${lifeNow}`);
    }

    const clients = Array.from({ length: CLIENTS }, (_, n) => client(n));
    let lostAtKills = 0;
    /** Queue ids that were not yet delivered when a kill came: the only ones that may arrive twice. */
    const pendingAtKills = new Set<string>();
    try {
      for (let trial = 1; trial <= TRIALS; trial++) {
        await loadReaches(life);
        const delay = KILL_AFTER_MS[0] + Math.floor(random() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0] + 1));
        await sleep(delay);
        const exit = await child.kill('SIGKILL');
        assert.equal(exit?.signal, 'SIGKILL', 'the child died of the kill, not of something else');

        // Every message acknowledged so far must be in the store of the dead server.
        const queue = await queueOfDeadA(trial);
        const queued = new Set(queue.map((e) => e.messageId));
        const lost = [...acked].filter(([, a]) => !queued.has(a.queueId)).map(([id]) => id);
        lostAtKills += lost.length;
        const states = countStates(queue);
        for (const e of queue) if (e.status.state === 'scheduled' || e.status.state === 'deferred') pendingAtKills.add(e.messageId);
        t.diagnostic(
          `trial ${trial}: SIGKILL after ${delay} ms of load; acknowledged so far ${acked.size}, not acknowledged ${unacked.size}; ` +
            `queue at the kill: ${JSON.stringify(states)}; acknowledged but missing from the queue: ${lost.length}`,
        );
        assert.deepEqual(lost.slice(0, 10), [], `acknowledged messages missing from the queue after kill ${trial}`);

        life++;
        const ready = await child.start();
        t.diagnostic(`trial ${trial}: restarted in ${ready.startupMs} ms (pid ${ready.pid})`);
      }
      // Some load on the last life as well, then stop.
      await loadReaches(life);
      await sleep(300);
    } finally {
      stopLoad = true;
      await Promise.all(clients);
    }
    t.diagnostic(`load stopped after ${Date.now() - began} ms: ${acked.size} acknowledged, ${unacked.size} not acknowledged`);

    // Every acknowledged message reaches B (at-least-once).
    const bea = await b.server.services.accounts.get(RECIPIENT);
    const copies = new Map<string, number>();
    const countAtB = async () => {
      copies.clear();
      for (const m of await b.server.services.mail.list(bea.id)) {
        const id = /^crash (\S+)$/.exec(m.subject ?? '')?.[1];
        if (id) copies.set(id, (copies.get(id) ?? 0) + 1);
      }
      return copies;
    };
    const missing = () => [...acked.keys()].filter((id) => !copies.has(id));
    try {
      await eventually(async () => {
        await countAtB();
        return missing().length === 0;
      }, 30_000, 'every acknowledged message at b');
    } catch (err) {
      assert.fail(`${(err as Error).message}: ${missing().length} of ${acked.size} missing, e.g. ${missing().slice(0, 10).join(', ')}\n--- child log ---\n${child.logTail()}`);
    }

    // The queue of A settles: nothing left to retry, nothing failed.
    const final = await eventually(async () => {
      const q = await queueOfA();
      return q.some((e) => e.status.state === 'scheduled' || e.status.state === 'deferred') ? undefined : q;
    }, 30_000, "a's queue to settle");
    await countAtB();

    const states = countStates(final);
    const duplicates = [...copies].filter(([, n]) => n > 1);
    const extraCopies = duplicates.reduce((sum, [, n]) => sum + n - 1, 0);
    const unackedArrived = [...unacked.keys()].filter((id) => copies.has(id)).length;
    const bound = TRIALS * aConfig.delivery.perDomainConcurrency;
    t.diagnostic(
      `result: ${TRIALS} kills; ${acked.size} acknowledged, all ${acked.size} delivered; ${unacked.size} not acknowledged, ${unackedArrived} of them delivered anyway; ` +
        `duplicates: ${duplicates.length} ids with ${extraCopies} extra copies (bound ${bound}) ${duplicates.map(([id, n]) => `${id}x${n}`).join(' ')}; ` +
        `A's final queue: ${JSON.stringify(states)}; total ${Date.now() - began} ms`,
    );

    assert.equal(lostAtKills, 0, 'no acknowledged message was missing from the queue at a kill');
    assert.equal(states.failed ?? 0, 0, `no queue entry failed: ${JSON.stringify(final.filter((e) => e.status.state === 'failed').slice(0, 3))}`);
    assert.equal(final.length, queuedIds(final).size, 'one recipient per queued message');
    for (const [id, a] of acked) assert.ok(queuedIds(final).has(a.queueId), `acknowledged ${id} is in A's queue`);
    assert.ok(extraCopies <= bound, `duplicates (${extraCopies}) stay within the deliveries in flight at the kills (${bound})`);
    for (const [id] of duplicates) {
      const a = acked.get(id);
      if (a) assert.ok(pendingAtKills.has(a.queueId), `duplicate ${id} was still undelivered in A's queue at a kill`);
    }
    // Everything A queued was delivered, and nothing reached B that A never queued.
    assert.equal(states.delivered, final.length);
    assert.ok(copies.size <= final.length, `B got ${copies.size} distinct messages, A queued ${final.length}`);
  });
});

function countStates(queue: QueueEntry[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of queue) out[e.status.state] = (out[e.status.state] ?? 0) + 1;
  return out;
}

function queuedIds(queue: QueueEntry[]): Set<string> {
  return new Set(queue.map((e) => e.messageId));
}
