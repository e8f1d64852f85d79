/**
 * Outbound SMTP end to end: the SMTP transport delivers to a real twoway
 * server (its embedded DNS publishes the MX records), through a counting TCP
 * proxy where connection reuse matters, and to tiny scripted servers for the
 * replies a twoway server never gives (451 at RCPT, 421 greeting, broken
 * STARTTLS, refused DATA).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createResolver } from '../src/dns/resolver.ts';
import type { DnsRecord } from '../src/dns/types.ts';
import { formatReply } from '../src/core/reply.ts';
import { createSmtpTransport, type SmtpTransport, type SmtpTransportOptions } from '../src/delivery/smtp-transport.ts';
import type { OutboundMessage } from '../src/delivery/types.ts';
import { rawMessage, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const sender = senderDomain('sender.test');
const mx = (name: string, preference: number, exchange: string): DnsRecord => ({ name, type: 'MX', data: { preference, exchange } });
const a = (name: string, address: string): DnsRecord => ({ name, type: 'A', data: address });

let counter = 0;
function message(to: string, subject: string, from: string | null = 'alice@sender.test'): OutboundMessage {
  return { messageId: `m${++counter}`, sender: from, raw: rawMessage(from ?? 'mailer-daemon@sender.test', to, subject) };
}

describe('SMTP transport', () => {
  let t: TestServer;
  const users: Record<string, number> = {};
  const transports: SmtpTransport[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  /** A transport that resolves through the test DNS; closed after the suite. */
  /** The results with each reply on one line, as the queue stores it and a DSN reports it. */
  const transport = (overrides: Partial<SmtpTransportOptions> = {}) => {
    const tr = createSmtpTransport({
      resolver: createResolver({ servers: [t.dns.address], cacheTtlCapSeconds: 0 }),
      heloName: 'mx.sender.test',
      port: t.server.smtp.port,
      connectTimeoutMs: 5000,
      commandTimeoutMs: 10_000,
      lab: true,
      ...overrides,
    });
    transports.push(tr);
    const deliver = async (...args: Parameters<SmtpTransport['deliver']>) => (await tr.deliver(...args)).map((r) => ({ ...r, reply: formatReply(r.reply) }));
    return { deliver, stats: () => tr.stats(), close: () => tr.close() };
  };
  const subjects = async (user: string) => (await t.server.services.mail.list(users[user]!)).map((m) => m.subject);

  before(async () => {
    t = await startTestServer({
      records: [
        ...sender.records,
        mx('example.test', 10, 'mx.example.test'),
        a('mx.example.test', '127.0.0.1'),
        // Served by MX hosts that are not the destination's domain.
        mx('other.test', 10, 'mx.example.test'),
        mx('null.test', 0, '.'),
        // First MX is "down": nothing listens on 127.0.0.2.
        mx('backup.example.test', 10, 'down.example.test'),
        mx('backup.example.test', 20, 'mx.example.test'),
        a('down.example.test', '127.0.0.2'),
        // No MX: the domain's own A record.
        a('implicit.example.test', '127.0.0.1'),
      ],
    });
    const { accounts, contacts } = t.server.services;
    for (const [name, mode] of [['alice', 'open'], ['bob', 'open'], ['carol', 'strict']] as const) {
      users[name] = (await accounts.add(`${name}@example.test`, 'password-1', mode)).id;
    }
    await contacts.allow(users.carol!, 'alice@sender.test');
  });
  after(async () => {
    for (const tr of transports) await tr.close();
    for (const c of cleanups) await c();
    await t.close();
  });

  it('delivers over STARTTLS and reports the 250 reply', async () => {
    const results = await transport().deliver('example.test', message('alice@example.test', 'hello tls'), ['alice@example.test']);
    assert.equal(results.length, 1);
    assert.equal(results[0]!.status, 'delivered');
    assert.match(results[0]!.reply, /^250 2\.0\.0 Ok: queued as [0-9a-f]+$/);
    const stored = (await t.server.services.mail.list(users.alice!)).find((m) => m.subject === 'hello tls');
    assert.ok(stored);
    const raw = (await t.server.services.mail.get(users.alice!, stored.id)).raw.toString();
    assert.match(raw, /^Received: from mx\.sender\.test \(\[127\.0\.0\.1\]\)[\s\S]*with ESMTPS/);
  });

  it('reports each recipient: the existing user delivered, the unknown one failed with 550 5.1.1', async () => {
    const results = await transport().deliver('example.test', message('alice@example.test', 'mixed'), ['alice@example.test', 'nobody@example.test']);
    assert.equal(results[0]!.status, 'delivered');
    assert.deepEqual(results[1], {
      recipient: 'nobody@example.test',
      status: 'failed',
      reply: '550 5.1.1 No such user here: nobody@example.test',
      remoteMta: 'mx.example.test',
    });
    assert.ok((await subjects('alice')).includes('mixed'));
  });

  it('fails with 5.7.1 when the destination does not serve the domain (relay denied)', async () => {
    const [r] = await transport().deliver('other.test', message('x@other.test', 'relay'), ['x@other.test']);
    assert.equal(r!.status, 'failed');
    assert.match(r!.reply, /^550 5\.7\.1 Relaying denied/);
  });

  it('fails addresses that cannot be put on a command line, without connecting', async () => {
    const tr = transport();
    const results = await tr.deliver('example.test', message('alice@example.test', 'bad'), ['bad>x@example.test']);
    assert.deepEqual(results, [{ recipient: 'bad>x@example.test', status: 'failed', reply: '5.1.3 recipient address cannot be sent in an SMTP command' }]);
    assert.equal(tr.stats().connectionsOpened, 0);
  });

  it('fails with 5.1.10 for a null MX, without connecting', async () => {
    const tr = transport();
    const [r] = await tr.deliver('null.test', message('x@null.test', 'null mx'), ['x@null.test']);
    assert.deepEqual(r, { recipient: 'x@null.test', status: 'failed', reply: '5.1.10 null.test: domain does not accept mail (null MX)' });
    assert.equal(tr.stats().connectionsOpened, 0);
  });

  it('fails for a domain that does not exist', async () => {
    const [r] = await transport().deliver('nowhere.test', message('x@nowhere.test', 'nxdomain'), ['x@nowhere.test']);
    assert.equal(r!.status, 'failed');
    assert.match(r!.reply, /^5\.1\.2 nowhere\.test: domain does not exist/);
  });

  it('defers every recipient when the mail exchanger refuses connections', async () => {
    const port = await closedPort();
    const results = await transport({ port }).deliver('example.test', message('alice@example.test', 'refused'), ['alice@example.test', 'bob@example.test']);
    for (const r of results) {
      assert.equal(r.status, 'deferred');
      assert.equal(r.reply, `4.4.1 connection refused by mx.example.test[127.0.0.1]:${port}`);
    }
  });

  it('falls back to the next MX when the first is down', async () => {
    // backup.example.test: MX 10 on 127.0.0.2 (nothing listens), MX 20 the destination. Routing
    // is by the domain argument, so the recipients can be in the destination's own domain.
    const tr = transport();
    const [r] = await tr.deliver('backup.example.test', message('alice@example.test', 'second mx'), ['alice@example.test']);
    assert.equal(r!.status, 'delivered');
    assert.equal(tr.stats().connectionsOpened, 1);
    assert.ok((await subjects('alice')).includes('second mx'));
  });

  it('delivers to the A record of a domain without MX (implicit MX)', async () => {
    // The destination serves example.test only; address the recipient there, route by the other name.
    const [r] = await transport().deliver('implicit.example.test', message('alice@example.test', 'implicit'), ['alice@example.test']);
    assert.equal(r!.status, 'delivered');
    assert.ok((await subjects('alice')).includes('implicit'));
  });

  it('sends recipients refused with 452 in a transaction of their own', async () => {
    // carol is in strict mode: the destination wants her alone in a transaction (452 4.5.3).
    const tr = transport();
    const results = await tr.deliver('example.test', message('bob@example.test', 'split'), ['bob@example.test', 'carol@example.test']);
    assert.deepEqual(
      results.map((r) => r.status),
      ['delivered', 'delivered'],
    );
    assert.equal(tr.stats().transactions, 2);
    assert.equal(tr.stats().connectionsOpened, 1);
    assert.ok((await subjects('carol')).includes('split'));
  });

  describe('connection reuse', () => {
    it('reuses one connection for messages sent one after another', async () => {
      const proxy = await startProxy(t.server.smtp.port);
      cleanups.push(proxy.close);
      const tr = transport({ port: proxy.port });
      for (let i = 0; i < 5; i++) {
        const [r] = await tr.deliver('example.test', message('bob@example.test', `reuse ${i}`), ['bob@example.test']);
        assert.equal(r!.status, 'delivered');
      }
      assert.equal(proxy.accepted, 1);
      assert.deepEqual(tr.stats(), { connectionsOpened: 1, sessionsReused: 4, transactions: 5, idle: 1 });
      const got = await subjects('bob');
      for (let i = 0; i < 5; i++) assert.ok(got.includes(`reuse ${i}`));
    });

    it('limits concurrent connections per host and queues the rest', async () => {
      const proxy = await startProxy(t.server.smtp.port);
      cleanups.push(proxy.close);
      const tr = transport({ port: proxy.port, maxConnectionsPerHost: 2 });
      const all = await Promise.all(
        Array.from({ length: 6 }, (_, i) => tr.deliver('example.test', message('bob@example.test', `burst ${i}`), ['bob@example.test'])),
      );
      assert.deepEqual(
        all.map(([r]) => r!.status),
        Array(6).fill('delivered'),
      );
      assert.ok(proxy.maxConcurrent <= 2, `at most 2 connections, saw ${proxy.maxConcurrent}`);
      assert.ok(proxy.accepted <= 2);
    });

    it('closes idle connections after idleTimeoutMs', async () => {
      const proxy = await startProxy(t.server.smtp.port);
      cleanups.push(proxy.close);
      const tr = transport({ port: proxy.port, idleTimeoutMs: 100 });
      await tr.deliver('example.test', message('bob@example.test', 'idle'), ['bob@example.test']);
      assert.equal(tr.stats().idle, 1);
      await waitFor(() => proxy.open === 0);
      assert.equal(tr.stats().idle, 0);
    });

    it('replaces a pooled connection that the server dropped', async () => {
      const proxy = await startProxy(t.server.smtp.port);
      cleanups.push(proxy.close);
      const tr = transport({ port: proxy.port });
      await tr.deliver('example.test', message('bob@example.test', 'before drop'), ['bob@example.test']);
      proxy.dropAll();
      const [r] = await tr.deliver('example.test', message('bob@example.test', 'after drop'), ['bob@example.test']);
      assert.equal(r!.status, 'delivered');
      assert.equal(proxy.accepted, 2);
    });

    it('close() ends pooled connections', async () => {
      const proxy = await startProxy(t.server.smtp.port);
      cleanups.push(proxy.close);
      const tr = transport({ port: proxy.port });
      await tr.deliver('example.test', message('bob@example.test', 'then close'), ['bob@example.test']);
      assert.equal(proxy.open, 1);
      await tr.close();
      await waitFor(() => proxy.open === 0);
      const [r] = await tr.deliver('example.test', message('bob@example.test', 'after close'), ['bob@example.test']);
      assert.equal(r!.status, 'deferred');
    });
  });

  describe('against scripted servers', () => {
    /** A scripted server on 127.0.0.1 with its own MX name in the test DNS. */
    const scripted = async (name: string, script: Script, host = '127.0.0.1', port = 0) => {
      const server = await startScripted(script, host, port);
      cleanups.push(server.close);
      t.dns.add([mx(`${name}.test`, 10, `mx.${name}.test`), a(`mx.${name}.test`, host)]);
      return server;
    };

    it('defers recipients refused with 4xx at RCPT, with the reply text', async () => {
      const s = await scripted('busy', { rcpt: () => '451 4.3.0 <x@busy.test>: try again later' });
      const results = await transport({ port: s.port }).deliver('busy.test', message('x@busy.test', '451'), ['x@busy.test', 'y@busy.test']);
      assert.deepEqual(
        results.map((r) => [r.status, r.reply]),
        [
          ['deferred', '451 4.3.0 <x@busy.test>: try again later'],
          ['deferred', '451 4.3.0 <x@busy.test>: try again later'],
        ],
      );
    });

    it('applies the reply to the final dot to every accepted recipient', async () => {
      const s = await scripted('dataref', {
        rcpt: (to) => (to.startsWith('gone') ? '550-5.1.1 mailbox gone\r\n550 5.1.1 really' : '250 2.1.5 ok'),
        dot: '554 5.6.0 content rejected',
      });
      const results = await transport({ port: s.port }).deliver('dataref.test', message('x@dataref.test', 'dot'), ['x@dataref.test', 'gone@dataref.test']);
      assert.deepEqual(results, [
        { recipient: 'x@dataref.test', status: 'failed', reply: '554 5.6.0 content rejected', remoteMta: 'mx.dataref.test' },
        { recipient: 'gone@dataref.test', status: 'failed', reply: '550 5.1.1 mailbox gone really', remoteMta: 'mx.dataref.test' },
      ]);
    });

    it('sends MAIL FROM:<> for the null sender', async () => {
      const s = await scripted('bounce', {});
      const [r] = await transport({ port: s.port }).deliver('bounce.test', message('x@bounce.test', 'dsn', null), ['x@bounce.test']);
      assert.equal(r!.status, 'delivered');
      assert.ok(s.commands.some((c) => /^MAIL FROM:<>( |$)/.test(c)), s.commands.join('\n'));
      assert.ok(s.commands.includes('EHLO mx.sender.test'));
    });

    it('declares 8-bit content with BODY=8BITMIME', async () => {
      const s = await scripted('eightbit', {});
      const msg = { ...message('x@eightbit.test', '8bit'), raw: Buffer.from('Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n') };
      const [r] = await transport({ port: s.port }).deliver('eightbit.test', msg, ['x@eightbit.test']);
      assert.equal(r!.status, 'delivered');
      assert.ok(s.commands.some((c) => c.startsWith('MAIL FROM:<alice@sender.test>') && c.includes('BODY=8BITMIME')), s.commands.join('\n'));
    });

    it('opens a new connection when a pooled one is refused at the next MAIL (421: the server timed it out)', async () => {
      const s = await scripted('stale', { mail: (n) => (n > 1 ? '421 4.4.2 idle too long, closing' : undefined) });
      const tr = transport({ port: s.port });
      for (const subject of ['first', 'second']) {
        const [r] = await tr.deliver('stale.test', message('x@stale.test', subject), ['x@stale.test']);
        assert.equal(r!.status, 'delivered');
      }
      assert.equal(s.connections, 2);
      // A completed transaction needs no RSET before the next MAIL.
      assert.equal(s.commands.filter((c) => c === 'RSET').length, 0);
      assert.equal(s.commands.filter((c) => c.startsWith('MAIL')).length, 3);
      assert.deepEqual(tr.stats(), { connectionsOpened: 2, sessionsReused: 0, transactions: 2, idle: 1 });
    });

    it('tries the next MX after a 421 greeting', async () => {
      const busy = await scripted('greet', { greeting: '421 4.3.2 too busy, try later' });
      // The second MX listens on the same port at another loopback address.
      const ok = await startScripted({}, '127.0.0.2', busy.port);
      cleanups.push(ok.close);
      t.dns.add([mx('greet.test', 20, 'mx2.greet.test'), a('mx2.greet.test', '127.0.0.2')]);
      const [r] = await transport({ port: busy.port }).deliver('greet.test', message('x@greet.test', 'greeting'), ['x@greet.test']);
      assert.deepEqual(r, { recipient: 'x@greet.test', status: 'delivered', reply: '250 2.0.0 queued' });
      assert.equal(busy.connections, 1);
    });

    it('defers with the last greeting when every MX is busy', async () => {
      const busy = await scripted('allbusy', { greeting: '421 4.3.2 too busy, try later' });
      const [r] = await transport({ port: busy.port }).deliver('allbusy.test', message('x@allbusy.test', 'busy'), ['x@allbusy.test']);
      assert.deepEqual(r, { recipient: 'x@allbusy.test', status: 'deferred', reply: '421 4.3.2 too busy, try later' });
    });

    it('retries in plaintext when the STARTTLS handshake fails', async () => {
      const s = await scripted('badtls', { brokenStartTls: true });
      const tr = transport({ port: s.port });
      const [r] = await tr.deliver('badtls.test', message('x@badtls.test', 'plain'), ['x@badtls.test']);
      assert.equal(r!.status, 'delivered');
      assert.equal(s.connections, 2);
      assert.equal(s.commands.filter((c) => c === 'STARTTLS').length, 1);
    });
  });
});

/** What a scripted server answers; anything unset is a plain success. */
interface Script {
  greeting?: string;
  rcpt?: (to: string) => string;
  dot?: string;
  /** The reply to the n-th MAIL of a connection (1-based; undefined: 250); a 421 closes the connection, as a server that timed the session out would. */
  mail?: (n: number) => string | undefined;
  /** Offers STARTTLS, says 220, then answers the TLS hello with plaintext. */
  brokenStartTls?: boolean;
}

async function startScripted(script: Script, host: string, port: number) {
  const commands: string[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const greeting = script.greeting ?? '220 scripted ESMTP';
    socket.write(`${greeting}\r\n`);
    if (!greeting.startsWith('220')) return void socket.end();
    let buffered = '';
    let inData = false;
    let handshake = false;
    let mails = 0;
    socket.on('data', (chunk: Buffer) => {
      // The client's TLS hello: answer with bytes that are not TLS, so its handshake fails at once.
      if (handshake) return void socket.end('this is not TLS at all\r\n');
      buffered += chunk.toString('latin1');
      let end: number;
      for (;;) {
        end = buffered.indexOf('\r\n');
        if (end < 0) break;
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            socket.write(`${script.dot ?? '250 2.0.0 queued'}\r\n`);
          }
          continue;
        }
        commands.push(line);
        const verb = line.split(/[ :]/)[0]!.toUpperCase();
        if (verb === 'EHLO') socket.write(`250-scripted\r\n250-PIPELINING\r\n${script.brokenStartTls ? '250-STARTTLS\r\n' : ''}250 8BITMIME\r\n`);
        else if (verb === 'STARTTLS' && script.brokenStartTls) {
          handshake = true;
          socket.write('220 2.0.0 go ahead\r\n');
        } else if (verb === 'RCPT') socket.write(`${script.rcpt?.(/<([^>]*)>/.exec(line)?.[1] ?? '') ?? '250 2.1.5 ok'}\r\n`);
        else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
        else if (verb === 'MAIL' && script.mail?.(++mails)) {
          const answer = script.mail(mails)!;
          socket.write(`${answer}\r\n`);
          if (answer.startsWith('421')) return void socket.end();
        } else socket.write('250 2.0.0 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as { port: number }).port,
    commands,
    get connections() {
      return connections;
    },
    close: () => closeServer(server, sockets),
  };
}

/** A TCP proxy to the destination that counts connections. */
async function startProxy(targetPort: number) {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let open = 0;
  let maxConcurrent = 0;
  const server = createServer((client) => {
    accepted++;
    open++;
    maxConcurrent = Math.max(maxConcurrent, open);
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    let counted = true;
    const done = () => {
      if (counted) open--;
      counted = false;
      client.destroy();
      upstream.destroy();
    };
    client.on('close', done);
    upstream.on('close', done);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get accepted() {
      return accepted;
    },
    get open() {
      return open;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => closeServer(server, sockets),
  };
}

async function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}
