/**
 * Retries of the outbound queue against destinations that come back.
 *
 * Sender A (a.test, 127.0.0.2) has a short backoff (1 s, at most 2 s). Its
 * destinations publish MX records in the shared embedded DNS server, on the
 * same port as A (like MX hosts on port 25):
 * - b.test (127.0.0.3): nothing listens at first, so the entry is deferred
 *   with "connection refused" and retried; then server B starts there and
 *   the message arrives.
 * - c.test (127.0.0.4): a raw SMTP listener answers RCPT with
 *   `451 4.3.0 try later`, so the entry is deferred with that reply; then the
 *   real server C replaces it and the message arrives.
 *
 * B and C start with their user already in the store (a store file prepared
 * beforehand), so that a retry that reaches them right at start-up never
 * meets an unknown user (which would be a 550 and a final failure).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QueueEntry } from '../src/core/types.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { createServices } from '../src/services/index.ts';
import { openStore } from '../src/store/open.ts';
import { withDelivery } from './helpers/child-server.ts';
import { commonFreePort, eventually, startTestServer, submit, type TestServer } from './helpers/server.ts';

const A_HOST = '127.0.0.2';
const B_HOST = '127.0.0.3';
const C_HOST = '127.0.0.4';

describe('retries when a destination comes back', () => {
  let dns: EmbeddedDnsServer;
  let port: number;
  let a: TestServer;
  const later: TestServer[] = [];
  const dirs: string[] = [];
  let raw: RawSmtp | undefined;

  before(async () => {
    dns = await startDnsServer();
    port = await commonFreePort([A_HOST, B_HOST, C_HOST]);
    a = await startTestServer({
      domain: 'a.test',
      dns,
      host: A_HOST,
      smtpPort: port,
      deliveryPort: port,
      edit: (toml) => withDelivery(toml, { min_backoff: '"1s"', max_backoff: '"2s"' }),
    });
    assert.equal(a.server.config.delivery.minBackoffMs, 1000, 'the edit reached [delivery]');
    assert.equal(a.server.config.delivery.maxBackoffMs, 2000);
    for (const [domain, ip] of [['a.test', A_HOST], ['b.test', B_HOST], ['c.test', C_HOST]] as const) {
      dns.add([
        { name: domain, type: 'MX', data: { preference: 10, exchange: `mx.${domain}` } },
        { name: `mx.${domain}`, type: 'A', data: ip },
        { name: domain, type: 'TXT', data: `v=spf1 ip4:${ip} -all` },
      ]);
    }
    await a.server.services.accounts.add('ann@a.test', 'ann-password');
  });

  after(async () => {
    await raw?.close();
    // A first: its transport QUITs the sessions it keeps idle, which the other servers' close() would wait for.
    await a?.close();
    for (const s of later) await s.close();
    await dns?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A store file with one (open mode) user, for a server that must know its user from its first connection on. */
  async function storeWithUser(domain: string, address: string): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'twoway-retry-'));
    dirs.push(dir);
    const url = `sqlite:${join(dir, 'twoway.db')}`;
    const store = await openStore(url);
    try {
      await createServices(store, [domain]).accounts.add(address, 'pw');
    } finally {
      await store.close();
    }
    return url;
  }

  async function entryFor(recipient: string): Promise<QueueEntry | undefined> {
    return (await a.server.services.queue.list()).find((e) => e.recipient === recipient);
  }

  async function arrived(t: TestServer, address: string, subject: string) {
    const user = await t.server.services.accounts.get(address);
    return (await t.server.services.mail.list(user.id)).filter((m) => m.subject === subject);
  }

  it('a destination that is down: deferred with a connection error, retried with backoff, delivered once it listens', async (t) => {
    const subject = `while b was down ${Date.now()}`;
    const reply = await submit({ port: a.server.submission!.port, host: A_HOST, user: 'ann@a.test', pass: 'ann-password', to: 'bea@b.test', subject });
    assert.match(reply, /^250 /);

    // Two failed attempts: the first, and at least one retry on the backoff schedule.
    const deferred = await eventually(
      async () => {
        const e = await entryFor('bea@b.test');
        return e?.status.state === 'deferred' && e.status.attempts >= 2 ? e.status : undefined;
      },
      15_000,
      'two deferred attempts to b.test',
    );
    assert.match(deferred.lastError, /^4\.4\.1 connection refused by mx\.b\.test\[127\.0\.0\.3\]/);
    t.diagnostic(`deferred after ${deferred.attempts} attempts: ${deferred.lastError}`);

    const upAt = Date.now();
    const b = await startTestServer({ domain: 'b.test', dns, host: B_HOST, smtpPort: port, deliveryPort: port, storage: await storeWithUser('b.test', 'bea@b.test') });
    later.push(b);
    const got = await eventually(async () => {
      const found = await arrived(b, 'bea@b.test', subject);
      return found.length > 0 ? found : undefined;
    }, 15_000, 'delivery to b after it came up');
    t.diagnostic(`delivered ${Date.now() - upAt} ms after b came up`);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.mailbox, 'INBOX');

    const done = await eventually(async () => {
      const e = await entryFor('bea@b.test');
      return e?.status.state === 'delivered' ? e.status : undefined;
    }, 5_000, 'the queue entry to be delivered');
    assert.match(done.reply, /^250 /);
    // Delivered once: a second copy would mean the queue retried a delivery that had succeeded.
    assert.equal((await arrived(b, 'bea@b.test', subject)).length, 1);
  });

  it('a destination that answers 451 to RCPT: deferred with that reply, delivered once the real server replaces it', async (t) => {
    raw = await startRawSmtp(C_HOST, port, '451 4.3.0 try later');
    const subject = `while c said later ${Date.now()}`;
    await submit({ port: a.server.submission!.port, host: A_HOST, user: 'ann@a.test', pass: 'ann-password', to: 'cat@c.test', subject });

    const deferred = await eventually(
      async () => {
        const e = await entryFor('cat@c.test');
        return e?.status.state === 'deferred' && e.status.attempts >= 2 ? e.status : undefined;
      },
      15_000,
      'two deferred attempts to c.test',
    );
    assert.match(deferred.lastError, /^451 4\.3\.0 try later/);
    assert.ok(raw.rcpts.filter((r) => /cat@c\.test/i.test(r)).length >= 2, `the raw server saw the retries: ${raw.rcpts.join(', ')}`);
    t.diagnostic(`deferred after ${deferred.attempts} attempts: ${deferred.lastError}`);

    await raw.close();
    raw = undefined;
    const c = await startTestServer({ domain: 'c.test', dns, host: C_HOST, smtpPort: port, deliveryPort: port, storage: await storeWithUser('c.test', 'cat@c.test') });
    later.push(c);
    const got = await eventually(async () => {
      const found = await arrived(c, 'cat@c.test', subject);
      return found.length > 0 ? found : undefined;
    }, 15_000, 'delivery to c after the real server replaced the 451 one');
    assert.equal(got.length, 1);
    const done = await eventually(async () => {
      const e = await entryFor('cat@c.test');
      return e?.status.state === 'delivered' ? e.status : undefined;
    }, 5_000, 'the queue entry to be delivered');
    assert.match(done.reply, /^250 /);
  });
});

interface RawSmtp {
  /** RCPT TO command lines received. */
  rcpts: string[];
  dataCommands: number;
  close(): Promise<void>;
}

/** A minimal SMTP listener without STARTTLS that answers every RCPT with `rcptReply`. */
async function startRawSmtp(host: string, port: number, rcptReply: string): Promise<RawSmtp> {
  const sockets = new Set<Socket>();
  const state: RawSmtp = { rcpts: [], dataCommands: 0, close: async () => undefined };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setEncoding('latin1');
    socket.write('220 raw.c.test ESMTP\r\n');
    let buffered = '';
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let i = buffered.indexOf('\r\n'); i >= 0; i = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-raw.c.test\r\n250 PIPELINING\r\n');
        else if (verb === 'HELO' || verb === 'MAIL' || verb === 'RSET' || verb === 'NOOP') socket.write('250 2.0.0 OK\r\n');
        else if (verb === 'RCPT') {
          state.rcpts.push(line);
          socket.write(`${rcptReply}\r\n`);
        } else if (verb === 'DATA') {
          // Sent along with the envelope under PIPELINING (RFC 2920); refused, so no body follows.
          state.dataCommands++;
          socket.write('503 5.5.1 no valid recipients\r\n');
        } else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
        else socket.write('502 5.5.2 not implemented\r\n');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}
