/**
 * No reflection (docs/protocol.md 12.2; issue #12 item 2): a hostile TWM
 * sender (h.test, a scripted peer with a real key) whose SRV records name a
 * third party's host, a "canary" on loopback that counts the connections it
 * receives. The real twoway recipient (c.test) verifies the notice, accepts
 * it (an open-mode stranger) and fetches from whatever the SRV names.
 *
 * The bound of 12.2, asserted here per notice: at most 8 fetch attempts
 * (MAX_CONTACT_ATTEMPTS), each of at most 20 addresses, so at most 160
 * connections, and no receipt after a fetch that never got the body; a
 * target that proves not to be a TWM endpoint (TLS identity failure, no
 * TLS) ends the fetch at the first attempt (at most 20 connections).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { issueCertificate } from '../src/config/private-ca.ts';
import { noticeToJson } from '../src/core/twm-schema.ts';
import { MAX_CONTACT_ATTEMPTS, TWM_MEDIA_TYPES, TWM_PATHS } from '../src/core/twm-types.ts';
import { commonFreePort, eventually, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';
import { startTwmPeer, type TwmPeer } from './helpers/twm-peer.ts';

/** 3.1: at most 20 addresses per attempt. */
const MAX_ADDRESSES = 20;
const CANARY_HOSTS = ['127.0.0.9', '127.0.0.10'];

interface Canary {
  port: number;
  connections: number;
  close(): Promise<void>;
}

/** Listens on every canary address; `serve` decides what a connection meets. */
async function startCanary(port: number, make: (onSocket: (s: Socket) => void) => TcpServer): Promise<Canary> {
  const canary: Canary = { port, connections: 0, close: async () => undefined };
  const servers = CANARY_HOSTS.map(() =>
    make((s) => {
      canary.connections++;
      s.on('error', () => undefined);
    }),
  );
  for (const [i, srv] of servers.entries()) await new Promise<void>((resolve) => srv.listen(port, CANARY_HOSTS[i], resolve));
  canary.close = async () => {
    for (const srv of servers) await new Promise<void>((resolve) => srv.close(() => resolve()));
  };
  return canary;
}

describe('no reflection: a hostile SRV aimed at a canary', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let c: TestServer;
  const peers: TwmPeer[] = [];
  const canaries: Canary[] = [];

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.7']);
    const fast = (t: string) => t.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "1s"\n').replace('fetch_jitter = "1s"', 'fetch_jitter = "0s"');
    c = await startDomain({ lab, dns, domain: 'c.test', host: '127.0.0.7', smtpPort: port, edit: fast });
    await c.server.services.accounts.add('olga@c.test', 'olga-password', 'open');
  });
  after(async () => {
    for (const k of canaries) await k.close();
    for (const p of peers) await p.close();
    await c?.close();
    await dns?.close();
    lab?.close();
  });

  /**
   * A hostile sender domain `<label>.h.test` (a peer with a real key) whose SRV names 12 target
   * names (the client takes 10), each with both canary addresses. One domain per case: resolvers
   * cache SRV answers.
   */
  async function hostile(canary: Canary, label: string): Promise<TwmPeer> {
    const domain = `${label}.h.test`;
    const h = await startTwmPeer({ lab, dns, domain, host: '127.0.0.8' });
    peers.push(h);
    dns.remove(`_twoway._tcp.${domain}`, 'SRV');
    for (let i = 0; i < 12; i++) {
      const target = `${label}${i}.canary.test`;
      dns.add([
        { name: `_twoway._tcp.${domain}`, type: 'SRV', ttl: 1, data: { priority: 10, weight: 10, port: canary.port, target } },
        ...CANARY_HOSTS.map((ip) => ({ name: target, type: 'A' as const, ttl: 1, data: ip })),
      ]);
    }
    return h;
  }

  async function notice(h: TwmPeer, id: string): Promise<void> {
    const from = `evil@${h.domain}`;
    const body = Buffer.from(`From: ${from}\r\nTo: olga@c.test\r\nSubject: hi\r\n\r\nHi.\r\n`);
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    const content = noticeToJson({
      id,
      from,
      to: ['olga@c.test'],
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      created,
      expires: new Date(created.getTime() + 3_600_000),
    });
    // The notice goes to c.test's endpoint (c.test's SRV); h.test's own SRV matters only to c.test's fetch.
    const res = await h.post('c.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, content);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body.toString()).results[0].status, 'accepted');
  }
  const row = async (h: TwmPeer, id: string) => (await c.server.store.twmIn.find(h.domain, id))?.recipients[0];
  const settled = async (h: TwmPeer, id: string) => {
    const r = await row(h, id);
    return r && r.state !== 'scheduled' ? r : undefined;
  };

  it(`a canary that drops every connection sees at most ${MAX_CONTACT_ATTEMPTS} x ${MAX_ADDRESSES} connections for one notice, then none`, async () => {
    const port = await commonFreePort(CANARY_HOSTS);
    const canary = await startCanary(port, (on) => createTcpServer((s) => {
      on(s);
      s.destroy();
    }));
    canaries.push(canary);
    const id = 'reflectdropreflectdrop';
    const h = await hostile(canary, 'drop');
    await notice(h, id);
    const done = await eventually(() => settled(h, id), 50_000, 'the fetch given up');
    assert.equal(done.state, 'expired', 'given up after the attempt cap');
    assert.equal(done.attempts, MAX_CONTACT_ATTEMPTS);
    const seen = canary.connections;
    assert.ok(seen <= MAX_CONTACT_ATTEMPTS * MAX_ADDRESSES, `${seen} connections for one notice`);
    assert.ok(seen >= MAX_CONTACT_ATTEMPTS, 'every attempt reached the canary (the test can fail)');
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(canary.connections, seen, 'nothing after giving up (no receipt either)');
  });

  it('a canary whose TLS identity is wrong ends the fetch at the first attempt', async () => {
    const port = await commonFreePort(CANARY_HOSTS);
    const pair = issueCertificate(lab.ca, ['www.victim.test']);
    const canary = await startCanary(port, (on) => {
      const srv = createTlsServer({ key: pair.key, cert: pair.cert }, (s) => s.destroy());
      srv.on('connection', on);
      srv.on('tlsClientError', () => undefined);
      return srv;
    });
    canaries.push(canary);
    const id = 'reflecttlsreflecttlsxx';
    const h = await hostile(canary, 'tls');
    await notice(h, id);
    const done = await eventually(() => settled(h, id), 30_000, 'the fetch abandoned');
    assert.equal(done.state, 'closed');
    assert.match(done.lastError ?? '', /ERR_TLS_CERT_ALTNAME_INVALID/);
    assert.ok(canary.connections <= MAX_ADDRESSES, `${canary.connections} connections`);
    assert.ok(canary.connections >= 1);
    const seen = canary.connections;
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(canary.connections, seen, 'never again for this notice');
  });

  it('a canary that speaks plain HTTP (no TLS) ends the fetch at the first attempt', async () => {
    const port = await commonFreePort(CANARY_HOSTS);
    const canary = await startCanary(port, (on) => createTcpServer((s) => {
      on(s);
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 2\r\n\r\nhi'));
    }));
    canaries.push(canary);
    const id = 'reflecthttpreflecthttp';
    const h = await hostile(canary, 'http');
    await notice(h, id);
    const done = await eventually(() => settled(h, id), 30_000, 'the fetch abandoned');
    assert.equal(done.state, 'closed');
    assert.ok(canary.connections <= MAX_ADDRESSES && canary.connections >= 1, `${canary.connections} connections`);
  });
});
