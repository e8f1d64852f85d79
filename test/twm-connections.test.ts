/**
 * Two-Way Mail reuses its HTTPS connections (docs/architecture.md section 9,
 * delivery/twm-client.ts): between two real servers on loopback, the
 * notices from a.test to b.test and the fetches and receipts from b.test to
 * a.test go over kept-alive connections, not one TLS handshake each.
 *
 * Each TWM endpoint is published behind a TCP relay that counts the
 * connections it carries (TLS passes through it untouched: the certificate
 * and the signed authority are the servers' own, `public_port` names the
 * relay's port). 30 messages in three waves make 30 notices, 30 fetches and
 * 30 receipts; with a connection per request the counts would be 30 and 60.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server } from 'node:net';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { commonFreePort, eventually, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';

interface Relay {
  port: number;
  connections: number;
  target: number;
  server: Server;
}

/** A TCP relay on `host` to `host:relay.target` (set once the server behind it listens). */
async function startRelay(host: string): Promise<Relay> {
  const relay: Relay = { port: 0, connections: 0, target: 0, server: createServer() };
  relay.server.on('connection', (socket) => {
    relay.connections++;
    const upstream = connect({ host, port: relay.target });
    socket.pipe(upstream).pipe(socket);
    const end = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => relay.server.listen(0, host, resolve));
  const address = relay.server.address();
  relay.port = typeof address === 'object' && address !== null ? address.port : 0;
  return relay;
}

describe('TWM connections between two servers', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let relayA: Relay;
  let relayB: Relay;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    [relayA, relayB] = await Promise.all([startRelay('127.0.0.2'), startRelay('127.0.0.3')]);
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port, twmToml: `public_port = ${relayA.port}` });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, twmToml: `public_port = ${relayB.port}` });
    for (const [t, relay, domain] of [[a, relayA, 'a.test'], [b, relayB, 'b.test']] as const) {
      relay.target = t.server.twm!.port;
      dns.remove(`_twoway._tcp.${domain}`, 'SRV');
      dns.add([{ name: `_twoway._tcp.${domain}`, type: 'SRV', ttl: 1, data: { priority: 10, weight: 10, port: relay.port, target: `twm.${domain}` } }]);
    }
    await a.server.services.accounts.add('ann@a.test', 'ann-password', 'open');
    const bea = await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
    await b.server.services.contacts.allow(bea.id, 'ann@a.test');
  });
  after(async () => {
    for (const t of [a, b]) await t?.close();
    for (const r of [relayA, relayB]) r?.server.close();
    await dns?.close();
    lab?.close();
  });

  it('notices, fetches and receipts share kept-alive connections', async () => {
    const ann = await a.server.services.accounts.get('ann@a.test');
    const delivered = async () => {
      const sent = await a.server.services.sent.list(ann);
      return sent.flatMap((m) => m.recipients).filter((r) => r.recipient === 'bea@b.test' && r.status === 'delivered').length;
    };
    for (let wave = 0; wave < 3; wave++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'ann@a.test', pass: 'ann-password', to: 'bea@b.test', subject: `wave ${wave} #${i}` }),
        ),
      );
      await eventually(async () => (await delivered()) === 10 * (wave + 1), 30_000, `wave ${wave} delivered`);
    }
    // Every request went through the relays (the only published endpoints) ...
    assert.ok(relayB.connections > 0 && relayA.connections > 0, `relays carried ${relayB.connections} and ${relayA.connections} connections`);
    // ... over far fewer connections than requests: at most a wave's width at once (10 messages, each notice's requests
    // one after another), and the later waves reuse the first's.
    assert.ok(relayB.connections <= 16, `a.test opened ${relayB.connections} connections to b.test for 30 notices`);
    assert.ok(relayA.connections <= 16, `b.test opened ${relayA.connections} connections to a.test for 30 fetches and 30 receipts`);
  });
});
