/**
 * Misbehaving peers for the fault tests (test/faults-*.test.ts), on loopback:
 *
 * - `startFakeMx`: a TCP listener that plays a bad MX for its first
 *   connections (stalls after DATA, drops the connection mid-DATA, or answers
 *   slowly) and then becomes a transparent proxy to a real server, so that a
 *   retry reaches a good MX at the same address.
 * - `startFakeDns`: a UDP DNS server that never answers, answers SERVFAIL,
 *   or forwards to the embedded DNS server, switchable at run time.
 * - `startSender`: the sending half of a twoway server built from its parts
 *   (SQLite store, queue worker, SMTP transport, resolver) with short
 *   timeouts and backoff, which main.ts does not expose as configuration.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { createResolver } from '../../src/dns/resolver.ts';
import { startQueueWorker, type QueueWorker } from '../../src/delivery/queue-worker.ts';
import { createSmtpTransport, type SmtpTransport } from '../../src/delivery/smtp-transport.ts';
import type { DeliveryStatusNotice } from '../../src/delivery/queue-worker.ts';
import { openStore } from '../../src/store/open.ts';
import type { Store } from '../../src/store/types.ts';
import type { QueueEntry } from '../../src/core/types.ts';

export type FakeMxMode = 'stall-after-data' | 'drop-mid-data' | 'slow' | 'proxy';

export interface FakeMx {
  /** Connections accepted so far, and the mode each one got. */
  readonly sessions: FakeMxMode[];
  close(): Promise<void>;
}

/**
 * `modeFor(n)` picks the behaviour of the n-th connection (0-based). The
 * scripted modes speak just enough SMTP (no STARTTLS offered) to reach DATA.
 * 'slow' proxies with `delayMs` before every chunk the real server sends.
 */
export async function startFakeMx(o: { host: string; port: number; target: { host: string; port: number }; modeFor: (n: number) => FakeMxMode; delayMs?: number }): Promise<FakeMx> {
  const sessions: FakeMxMode[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    const mode = o.modeFor(sessions.length);
    sessions.push(mode);
    if (mode === 'proxy' || mode === 'slow') return proxy(client, o.target, mode === 'slow' ? (o.delayMs ?? 300) : 0, sockets);
    scripted(client, mode);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(o.port, o.host, () => resolve()));
  return {
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function scripted(client: Socket, mode: 'stall-after-data' | 'drop-mid-data'): void {
  let buffer = '';
  let inData = false;
  let dataBytes = 0;
  client.write('220 fake.mx ESMTP\r\n');
  client.on('data', (chunk: Buffer) => {
    if (inData) {
      dataBytes += chunk.length;
      // Stall: swallow the message and never answer the final dot. Drop: cut the connection once some of it arrived.
      if (mode === 'drop-mid-data' && dataBytes > 0) client.destroy();
      return;
    }
    buffer += chunk.toString('latin1');
    let nl: number;
    for (;;) {
      nl = buffer.indexOf('\r\n');
      if (nl < 0 || inData) break;
      const line = buffer.slice(0, nl).toUpperCase();
      buffer = buffer.slice(nl + 2);
      if (line.startsWith('EHLO')) client.write('250-fake.mx\r\n250 PIPELINING\r\n');
      else if (line.startsWith('DATA')) {
        client.write('354 go ahead\r\n');
        inData = true;
        if (buffer.length > 0 && mode === 'drop-mid-data') client.destroy();
      } else if (line.startsWith('QUIT')) client.end('221 bye\r\n');
      else client.write('250 2.0.0 ok\r\n');
    }
  });
}

function proxy(client: Socket, target: { host: string; port: number }, delayMs: number, sockets: Set<Socket>): void {
  const upstream = connect({ host: target.host, port: target.port });
  sockets.add(upstream);
  upstream.on('close', () => {
    sockets.delete(upstream);
    client.destroy();
  });
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  client.on('data', (d: Buffer) => upstream.write(d));
  // Chunks keep their order: each waits for the one before it.
  let chain = Promise.resolve();
  upstream.on('data', (d: Buffer) => {
    chain = chain.then(
      () =>
        new Promise<void>((r) =>
          setTimeout(() => {
            if (!client.destroyed) client.write(d);
            r();
          }, delayMs),
        ),
    );
  });
}

export type FakeDnsMode = 'silent' | 'servfail' | 'forward';

export interface FakeDns {
  readonly address: string;
  mode: FakeDnsMode;
  /** Queries received, whatever the mode. */
  readonly queries: number;
  close(): Promise<void>;
}

/** A UDP DNS server whose failure mode is switched at run time; 'forward' relays to `upstream` (host:port). */
export async function startFakeDns(upstream: { host: string; port: number }, mode: FakeDnsMode = 'forward'): Promise<FakeDns> {
  const udp: UdpSocket = createSocket('udp4');
  let queries = 0;
  const state = { mode };
  udp.on('message', (msg, from) => {
    queries++;
    if (state.mode === 'silent') return;
    if (state.mode === 'servfail') {
      const q = dnsPacket.decode(msg);
      const reply = dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 2 /* RCODE SERVFAIL */, questions: q.questions });
      udp.send(reply, from.port, from.address);
      return;
    }
    const relay = createSocket('udp4');
    relay.on('message', (answer) => {
      udp.send(answer, from.port, from.address);
      relay.close();
    });
    relay.on('error', () => relay.close());
    relay.send(msg, upstream.port, upstream.host);
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
  const port = udp.address().port;
  return {
    address: `127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(m: FakeDnsMode) {
      state.mode = m;
    },
    get queries() {
      return queries;
    },
    close: () => new Promise<void>((resolve) => udp.close(() => resolve())),
  };
}

export interface Sender {
  store: Store;
  worker: QueueWorker;
  transport: SmtpTransport;
  /** DSNs the worker produced (a fault must never make one: nothing may fail). */
  dsns: DeliveryStatusNotice[];
  /** Queues a message for `to` and kicks the worker; returns its message id. */
  queue(to: string, subject: string): Promise<string>;
  entries(): Promise<QueueEntry[]>;
  close(): Promise<void>;
}

export async function startSender(o: { dns: string; port: number; localAddress: string; commandTimeoutMs?: number; connectTimeoutMs?: number; dnsTimeoutMs?: number }): Promise<Sender> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-fault-'));
  const store = await openStore(`sqlite:${join(dir, 'sender.db')}`);
  // The resolver's cache is off: a fault must be met by every attempt, not served from a cached answer.
  const resolver = createResolver({ servers: [o.dns], timeoutMs: o.dnsTimeoutMs ?? 400, tries: 1, cacheTtlCapSeconds: 0 });
  const transport = createSmtpTransport({
    resolver,
    heloName: 'mx.a.test',
    port: o.port,
    localAddress: o.localAddress,
    commandTimeoutMs: o.commandTimeoutMs ?? 3000,
    connectTimeoutMs: o.connectTimeoutMs ?? 2000,
    idleTimeoutMs: 100,
    lab: true,
  });
  const dsns: DeliveryStatusNotice[] = [];
  const worker = startQueueWorker({
    queue: store.queue,
    route: () => transport,
    schedule: { baseMs: 300, maxMs: 600, jitter: 0, giveUpAfterMs: 120_000, delayWarningAfterMs: 0 },
    pollIntervalMs: 100,
    reportingMta: 'mx.a.test',
    notify: async (dsn) => void dsns.push(dsn),
  });
  let n = 0;
  return {
    store,
    worker,
    transport,
    dsns,
    async queue(to, subject) {
      const messageId = `fault${Date.now().toString(36)}${n++}`;
      const raw = Buffer.from(`From: ann@a.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${messageId}@a.test>\r\n\r\n${'A fault test message.\r\n'.repeat(50)}`);
      await store.queue.enqueue({ messageId, sender: 'ann@a.test', recipients: [to], raw, at: new Date() });
      worker.kick();
      return messageId;
    },
    entries: () => store.queue.list(),
    async close() {
      await worker.stop();
      await transport.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
