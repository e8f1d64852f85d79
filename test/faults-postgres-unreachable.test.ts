/**
 * Fault test: a node loses its PostgreSQL (issue "Every core and every
 * node": a node that cannot reach PostgreSQL stops accepting, 4xx and 503,
 * and recovers by itself when it comes back).
 *
 * The server reaches the machine's PostgreSQL through a TCP relay of the
 * test's own on loopback. Cutting the relay (every open connection reset,
 * every new one closed at once) is what a node sees when the database
 * host goes away, and it touches no other test's connections, unlike a
 * restart of the shared cluster (test/faults-postgres.test.ts, soak only).
 * While it is cut: SMTP answers RCPT with 451 4.3.0 naming the store, the
 * API answers 503 with a problem document, nothing crashes. Once the relay
 * is back, the same server (no restart) accepts mail and answers the API
 * again, and every message it acknowledged is stored.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { eventually, startTestServer, type TestServer } from './helpers/server.ts';
import { PG_URL, pgSchema, pgSkipReason, type PgSchema } from './helpers/pg-schema.ts';

const skip = await pgSkipReason();
const RCPT = 'rcpt@example.test';
const PASSWORD = 'password-1';

/** A TCP relay to PostgreSQL that the test can cut and restore. */
async function startRelay(target: URL): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  const open = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    if (down) return void client.destroy();
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      down = true;
      for (const s of open) s.resetAndDestroy();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('faults: the node loses PostgreSQL, then gets it back', { skip, timeout: 90_000 }, () => {
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let schema: PgSchema;
  let t: TestServer;
  const agent = new Agent({ connect: { rejectUnauthorized: false } });

  before(async () => {
    relay = await startRelay(new URL(PG_URL));
    schema = pgSchema('fault_unreachable');
    const url = new URL(schema.url);
    url.host = `127.0.0.1:${relay.port}`;
    t = await startTestServer({ storage: url.toString() });
    await t.server.services.accounts.add(RCPT, PASSWORD, 'open');
  });
  after(async () => {
    await t?.close();
    await relay?.close();
    await schema?.drop().catch(() => undefined);
    await agent.close();
  });

  /** One message over a fresh SMTP session: the reply to RCPT TO if it was not 250, else the reply to the data. */
  async function sendOne(subject: string): Promise<string> {
    const { client } = await RawSmtp.open(t.server.smtp.port);
    try {
      await client.command('EHLO client.test');
      await client.command('MAIL FROM:<s@client.test>');
      const rcpt = await client.command(`RCPT TO:<${RCPT}>`);
      if (!rcpt.startsWith('250')) return rcpt;
      await client.command('DATA');
      client.write(`From: s@client.test\r\nTo: ${RCPT}\r\nSubject: ${subject}\r\n\r\nbody\r\n.\r\n`);
      return await client.reply(20_000);
    } finally {
      client.close();
    }
  }

  async function me(): Promise<{ status: number; type: string | undefined; body: string }> {
    const res = await request(`${t.server.http.url}/api/me`, {
      dispatcher: agent,
      headers: { authorization: `Basic ${Buffer.from(`${RCPT}:${PASSWORD}`).toString('base64')}` },
    });
    return { status: res.statusCode, type: res.headers['content-type'] as string | undefined, body: await res.body.text() };
  }

  it('SMTP answers 451 4.3.0 and the API 503 while the store is unreachable; both recover without a restart; nothing acknowledged is lost', async (tc) => {
    const acked: string[] = [];
    const first = await sendOne('before the cut');
    assert.match(first, /^250 /);
    acked.push('before the cut');
    assert.equal((await me()).status, 200);

    relay.cut();
    const cutAt = Date.now();
    const refused = await sendOne('during the cut');
    assert.match(refused, /^451 4\.3\.0 The mail store is unavailable/, 'a temporary refusal that says why');
    const api = await me();
    assert.equal(api.status, 503, api.body);
    assert.match(api.type ?? '', /^application\/problem\+json/);
    assert.match(JSON.parse(api.body).detail as string, /mail store is unavailable/);
    assert.doesNotMatch(api.body, /ECONNRESET|ECONNREFUSED|at \w+ \(/, 'no driver error or stack trace to the client');

    relay.restore();
    const restoredAt = Date.now();
    await eventually(async () => {
      const reply = await sendOne('after the cut');
      if (reply.startsWith('250 ')) return true;
      assert.match(reply, /^4\d\d /, `only temporary refusals while it recovers, got ${reply}`);
      return false;
    }, 30_000, 'SMTP to accept again');
    acked.push('after the cut');
    await eventually(async () => (await me()).status === 200, 30_000, 'the API to answer again');
    tc.diagnostic(`cut for ${restoredAt - cutAt} ms; recovered ${Date.now() - restoredAt} ms after the relay came back`);

    const user = await t.server.services.accounts.get(RCPT);
    const stored = new Set((await t.server.services.mail.list(user.id)).map((m) => m.subject));
    assert.deepEqual(acked.filter((s) => !stored.has(s)), [], 'every acknowledged message is stored');
    assert.ok(!stored.has('during the cut'), 'the refused message was not stored');
  });
});
