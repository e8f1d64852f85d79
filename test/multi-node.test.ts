/**
 * Several nodes on one PostgreSQL database (docs/architecture.md, "Running
 * several nodes").
 *
 * 1. Three `twoway start` processes for a.test on 127.0.0.2, .3 and .4
 *    (real CLI, children), one PostgreSQL schema, the same data directory for
 *    their keys. Submission clients send to every node at once, each message
 *    with a unique id in its subject, to bea@b.test (an in-process server on
 *    127.0.0.5, found through MX records in the embedded DNS). Mid-load one
 *    node (its supervisor and every worker) gets SIGKILL. Then: every acknowledged message reaches B; copies
 *    of one id happen only for entries the dead node held a lease on at the
 *    kill (delivered, outcome not yet written); the dead node's leases are
 *    taken over (no due entry keeps its lease) and the time it took is
 *    reported; nothing failed. The live nodes never deliver one entry twice:
 *    any duplicate outside the dead node's leases fails the test.
 * 2. Two in-process nodes for b.test on one schema, the same TWM port on two
 *    addresses: a signed notice accepted by one is refused `replay` when the
 *    same bytes are sent to the other (nonces are in the store).
 *
 * `npm run soak` runs (1) with more load and more kills (TWOWAY_MULTINODE_KILLS).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import pg from 'pg';
import { loadConfig } from '../src/config/load.ts';
import { dkimRecordValue, ensureMaterials } from '../src/config/materials.ts';
import { labTwmSection } from '../src/cli/demo-lab.ts';
import { noticeToJson } from '../src/core/twm-schema.ts';
import { signRequest } from '../src/core/twm-signature.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS } from '../src/core/twm-types.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { ChildServer, runCli, withDelivery, writeChildConfig, type ChildConfig } from './helpers/child-server.ts';
import { PG_URL, pgSchema, pgSkipReason, type PgSchema } from './helpers/pg-schema.ts';
import { rawHttps, type RawHttpsAnswer } from './helpers/raw-https.ts';
import { commonFreePort, eventually, startTestServer, type TestServer } from './helpers/server.ts';
import { createTwmLab, type TwmLab } from './helpers/twm.ts';
import { startTwmPeer, type TwmPeer } from './helpers/twm-peer.ts';

const skip = await pgSkipReason();
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const B_HOST = '127.0.0.5';
const SENDER = { user: 'ann@a.test', pass: 'ann-password' };
const RECIPIENT = 'bea@b.test';
/** Kills per run: 1 in `npm test`, more in `npm run soak` (each on another node, restarted in between). */
const KILLS = Number(process.env.TWOWAY_MULTINODE_KILLS) || 1;
const LEASE_S = 3;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Queries the test's schema directly (lease columns are no API). */
async function query<T extends pg.QueryResultRow>(schema: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`SET search_path TO "${schema}"`);
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

describe('three nodes on one PostgreSQL: kill -9 one mid-load', { skip, timeout: 120_000 + KILLS * 30_000 }, () => {
  let dns: EmbeddedDnsServer;
  let b: TestServer;
  let schema: PgSchema;
  const confs: ChildConfig[] = [];
  const nodes: ChildServer[] = [];
  let submissionPort: number;
  let startupMs = 0;

  before(async () => {
    dns = await startDnsServer();
    schema = pgSchema('twoway_multinode');
    const port = await commonFreePort([...HOSTS, B_HOST]);
    do submissionPort = await commonFreePort(HOSTS);
    while (submissionPort === port);
    b = await startTestServer({ domain: 'b.test', dns, host: B_HOST, smtpPort: port, deliveryPort: port });
    await b.server.services.accounts.add(RECIPIENT, 'bea-password', 'open');
    for (const host of HOSTS) {
      const shared = confs[0] ? `${confs[0].dir}/data` : null;
      confs.push(
        writeChildConfig({
          domain: 'a.test',
          host,
          smtpPort: port,
          submissionPort,
          deliveryPort: port,
          dns: [dns.address],
          edit: (toml) => {
            let t = withDelivery(toml, { min_backoff: '"1s"', max_backoff: '"2s"', lease: `"${LEASE_S}s"` });
            t = t.replace(/^# storage = .*$/m, `storage = ${JSON.stringify(schema.url)}`);
            // One data directory for the keys (DKIM, TLS): every node signs as a.test with the same key.
            if (shared) t = t.replace(/^data_dir = .*$/m, `data_dir = ${JSON.stringify(shared)}`);
            // A supervisor with two workers per node, whatever the core count ("auto" is one per two cores).
            return `${t}\n[server]\nprocesses = 2\n`;
          },
        }),
      );
    }
    const { dkim } = ensureMaterials(loadConfig(confs[0]!.file));
    dns.add([
      { name: 'a.test', type: 'MX', data: { preference: 10, exchange: 'mx.a.test' } },
      { name: 'mx.a.test', type: 'A', data: HOSTS[0]! },
      { name: 'a.test', type: 'TXT', data: `v=spf1 ${HOSTS.map((h) => `ip4:${h}`).join(' ')} -all` },
      { name: 'b.test', type: 'MX', data: { preference: 10, exchange: 'mx.b.test' } },
      { name: 'mx.b.test', type: 'A', data: B_HOST },
      { name: `${dkim.rsa.selector}._domainkey.a.test`, type: 'TXT', data: dkimRecordValue(dkim.rsa.publicKeyBase64, 'rsa') },
      { name: `${dkim.ed25519.selector}._domainkey.a.test`, type: 'TXT', data: dkimRecordValue(dkim.ed25519.publicKeyBase64, 'ed25519') },
    ]);
    const added = await runCli(['user', 'add', SENDER.user, '--config', confs[0]!.file], `${SENDER.pass}\n`);
    assert.equal(added.code, 0, `twoway user add failed: ${added.stderr}`);
    for (const c of confs) nodes.push(new ChildServer(c.file));
    // Started together: on a loaded 2-core machine three tsx start-ups take a good part of a minute.
    const began = Date.now();
    await Promise.all(nodes.map((n) => n.start(90_000)));
    startupMs = Date.now() - began;
  });

  after(async () => {
    for (const n of nodes) await n.killNode();
    await b?.close();
    await dns?.close();
    for (const c of confs) c.cleanup();
    await schema?.drop();
  });

  it('every acknowledged message is delivered; duplicates only from the dead node\'s leases; its leases are taken over', async (t) => {
    const began = Date.now();
    t.diagnostic(`three nodes started in ${startupMs} ms`);
    const acked = new Map<string, { queueId: string; node: number }>();
    const unacked = new Set<string>();
    let stopLoad = false;

    async function client(node: number, n: number): Promise<void> {
      let transport: ReturnType<typeof nodemailer.createTransport> | null = null;
      for (let seq = 0; !stopLoad; seq++) {
        transport ??= nodemailer.createTransport({ host: HOSTS[node], port: submissionPort, auth: SENDER, requireTLS: true, tls: { rejectUnauthorized: false }, pool: true, maxConnections: 1, connectionTimeout: 5_000, greetingTimeout: 5_000, socketTimeout: 10_000 });
        const id = `${node}.${n}.${seq}`;
        try {
          const info = await transport.sendMail({ from: SENDER.user, to: RECIPIENT, subject: `multi ${id}`, text: `Message ${id}.\n` });
          const queueId = /queued as (\S+)/.exec(info.response)?.[1];
          if (!/^250 /.test(info.response) || !queueId) throw new Error(`unexpected reply: ${info.response}`);
          acked.set(id, { queueId, node });
        } catch {
          unacked.add(id);
          transport.close();
          transport = null;
          await sleep(200);
        }
      }
      transport?.close();
    }

    const clients = HOSTS.flatMap((_, node) => [client(node, 0), client(node, 1)]);
    /** Queue ids whose entries a dead node held a lease on at its kill: the only ones that may arrive twice. */
    const heldAtKills = new Set<string>();
    const takeovers: number[] = [];
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        const victim = nodes[kill % nodes.length]!;
        await eventually(async () => [...acked.values()].filter((a) => a.node === kill % nodes.length).length >= 3, 30_000, 'load on the node to kill');
        await sleep(300);
        // Every process of the node: the supervisor's workers run the queue ([server] processes = 2).
        const pids = [victim.pid!, ...victim.workerPids];
        const exit = await victim.killNode();
        assert.equal(exit?.signal, 'SIGKILL');
        const killedAt = Date.now();
        // Lease owners are `<slot>/<pid>:<random>` (delivery/queue-worker.ts processOwner).
        const owners = pids.map((pid) => `%/${pid}:%`);
        const held = await query<{ message_id: string }>(
          schema.name,
          `SELECT q.message_id FROM queue_recipients r JOIN queue_messages q ON q.id = r.queue_message WHERE r.lease_owner LIKE ANY($1) AND r.state IN ('scheduled', 'deferred')`,
          [owners],
        );
        for (const h of held) heldAtKills.add(h.message_id);
        // Taken over: no due entry keeps a lease of the dead processes.
        await eventually(async () => (await query(schema.name, `SELECT 1 FROM queue_recipients WHERE lease_owner LIKE ANY($1) AND state IN ('scheduled', 'deferred')`, [owners])).length === 0, 30_000, "the dead node's leases to be taken over");
        takeovers.push(Date.now() - killedAt);
        t.diagnostic(`kill ${kill + 1}: node ${HOSTS[kill % nodes.length]} (pids ${pids.join(' ')}) held ${held.length} queue entries; taken over after ${Date.now() - killedAt} ms (lease ${LEASE_S} s)`);
        if (kill + 1 < KILLS) await victim.start(90_000);
      }
      await sleep(500);
    } finally {
      stopLoad = true;
      await Promise.all(clients);
    }

    const bea = await b.server.services.accounts.get(RECIPIENT);
    const copies = new Map<string, number>();
    const missing = () => [...acked.keys()].filter((id) => !copies.has(id));
    await eventually(async () => {
      copies.clear();
      for (const m of await b.server.services.mail.list(bea.id)) {
        const id = /^multi (\S+)$/.exec(m.subject ?? '')?.[1];
        if (id) copies.set(id, (copies.get(id) ?? 0) + 1);
      }
      return missing().length === 0;
    }, 40_000, 'every acknowledged message at b').catch((err: Error) => assert.fail(`${err.message}: ${missing().length} of ${acked.size} missing, e.g. ${missing().slice(0, 5).join(', ')}\n${nodes.map((n) => n.logTail(15)).join('\n')}`));
    const settled = await eventually(async () => {
      const rows = await query<{ state: string; n: string }>(schema.name, 'SELECT state, count(*) AS n FROM queue_recipients GROUP BY state');
      return rows.some((r) => r.state === 'scheduled' || r.state === 'deferred') ? undefined : rows;
    }, 30_000, 'the queue to settle');

    const duplicates = [...copies].filter(([, n]) => n > 1);
    const extra = duplicates.reduce((sum, [, n]) => sum + n - 1, 0);
    const perNode = HOSTS.map((_, i) => [...acked.values()].filter((a) => a.node === i).length);
    t.diagnostic(
      `result: ${KILLS} kill(s); ${acked.size} acknowledged (per node ${perNode.join('/')}), all delivered; ${unacked.size} not acknowledged; ` +
        `duplicates: ${duplicates.length} ids, ${extra} extra copies (bound: ${heldAtKills.size} entries leased by dead nodes at the kills); ` +
        `takeover ${takeovers.join('/')} ms; queue ${JSON.stringify(Object.fromEntries(settled.map((r) => [r.state, Number(r.n)])))}; total ${Date.now() - began} ms`,
    );
    assert.ok(perNode.every((n) => n > 0), 'every node acknowledged mail');
    assert.ok(!settled.some((r) => r.state === 'failed'), 'nothing failed');
    for (const [id] of duplicates) {
      const a = acked.get(id);
      if (a) assert.ok(heldAtKills.has(a.queueId), `duplicate ${id} was held by a dead node at its kill, not delivered by two live nodes`);
    }
    assert.ok(extra <= heldAtKills.size, `extra copies (${extra}) within the entries the dead nodes held (${heldAtKills.size})`);
  });
});

describe('two nodes on one PostgreSQL: a TWM request replayed at the other node', { skip, timeout: 60_000 }, () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let schema: PgSchema;
  let peer: TwmPeer;
  const nodes: TestServer[] = [];
  const hosts = ['127.0.0.3', '127.0.0.4'];

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    schema = pgSchema('twoway_multinode_twm');
    const [smtpPort, twmPort] = [await commonFreePort(hosts), await commonFreePort(hosts)];
    for (const host of hosts) {
      const twm = labTwmSection({ ca: lab.ca, caFile: lab.caFile, dir: lab.dir, domain: 'b.test', host, port: twmPort });
      nodes.push(await startTestServer({ domain: 'b.test', dns, host, smtpPort, deliveryPort: smtpPort, storage: schema.url, extraToml: `\n${twm}` }));
    }
    peer = await startTwmPeer({ lab, dns, domain: 'x.test', host: '127.0.0.6' });
    await nodes[0]!.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
  });
  after(async () => {
    await peer?.close();
    for (const n of nodes) await n.close();
    await dns?.close();
    lab?.close();
    await schema?.drop();
  });

  async function post(node: TestServer, body: Buffer, headers: Array<[string, string]>): Promise<RawHttpsAnswer> {
    return rawHttps({ host: node.server.config.twm.host, port: node.server.twm!.port, ca: lab.ca.cert, servername: 'twm.b.test' }, { method: 'POST', path: TWM_PATHS.notice, headers, body });
  }
  function signed(id: string): { body: Buffer; headers: Array<[string, string]> } {
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    const body = noticeToJson({ id, from: 'shop@x.test', to: ['bea@b.test'], size: 10, sha256: '1'.repeat(64), created, expires: new Date(created.getTime() + 3_600_000) });
    const authority = nodes[0]!.server.twm!.authority;
    const s = signRequest({ method: 'POST', targetUri: `https://${authority}${TWM_PATHS.notice}`, authority, contentType: TWM_MEDIA_TYPES.notice, body, keyid: 's1._twoway.x.test', privateKey: peer.key.privateKey, created });
    return {
      body,
      headers: [['Host', authority], ['Content-Type', TWM_MEDIA_TYPES.notice], ['Content-Digest', s['content-digest']], ['Signature-Input', s['signature-input']], ['Signature', s.signature], ['Content-Length', String(body.length)]],
    };
  }
  const codeOf = (a: RawHttpsAnswer) => (JSON.parse(a.body.toString()) as { twm_error?: string }).twm_error;

  it('is refused `replay`, and a fresh request at that node is accepted', async () => {
    assert.equal(nodes[0]!.server.twm!.authority, nodes[1]!.server.twm!.authority, 'one authority for both nodes');
    const first = signed('multinodereplay000000001');
    const a = await post(nodes[0]!, first.body, first.headers);
    assert.equal(a.status, 200, a.body.toString());
    const replayed = await post(nodes[1]!, first.body, first.headers);
    assert.equal(replayed.status, 409, replayed.body.toString());
    assert.equal(codeOf(replayed), 'replay');
    const fresh = signed('multinodereplay000000002');
    const c = await post(nodes[1]!, fresh.body, fresh.headers);
    assert.equal(c.status, 200, c.body.toString());
    assert.ok(await nodes[1]!.server.store.twmIn.find('x.test', 'multinodereplay000000001'), "node 2 sees node 1's notice (one store)");
  });
});
