/**
 * Integration tier: the TWM client against real HTTPS servers on loopback
 * (certificates from a private CA for names like twm1.b.test) found through
 * the embedded DNS server. Every test uses its own domain, and the resolver
 * caches nothing, so records can change between tests.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as packet from 'dns-packet';
import { startDnsServer, type EmbeddedDnsServer } from '../dns/embedded-server.ts';
import { createResolver } from '../dns/resolver.ts';
import type { DnsRecord } from '../dns/types.ts';
import { createPrivateCa, issueCertificate, type PemPair } from '../config/private-ca.ts';
import { checkContentDigest, parseTwmSignature, verifySignature } from '../core/twm-signature.ts';
import { createTwmClient } from './twm-client.ts';
import { TwmUnreachableError, type TwmClient, type TwmClientOptions, type TwmSigningKey } from './twm-client-types.ts';

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** Remote port: the same value twice means one kept-alive connection. */
  remotePort: number;
}
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestEndpoint {
  port: number;
  received: Received[];
  handler: Handler;
  close(): Promise<void>;
}

const ok: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/twm-notice-result+json' });
  res.end('{"ok":true}');
};

async function startEndpoint(identity: PemPair): Promise<TestEndpoint> {
  const endpoint: TestEndpoint = { port: 0, received: [], handler: ok, close: async () => undefined };
  const server: Server = createHttpsServer({ cert: identity.cert, key: identity.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      endpoint.received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), remotePort: req.socket.remotePort ?? 0 });
      endpoint.handler(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.port = (server.address() as AddressInfo).port;
  endpoint.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return endpoint;
}

/** A UDP "DNS server" that answers every query with SERVFAIL. */
async function startServfailServer(): Promise<{ address: string; close(): Promise<void> }> {
  const udp = createSocket('udp4');
  udp.on('message', (msg, from) => {
    const query = packet.decode(msg);
    const reply = packet.encode({ id: query.id ?? 0, type: 'response', flags: packet.RECURSION_DESIRED | 2, questions: query.questions ?? [] });
    udp.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${udp.address().port}`,
    close: () => new Promise<void>((resolve) => udp.close(() => resolve())),
  };
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedTcpPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const ca = createPrivateCa('twoway test CA');
const otherCa = createPrivateCa('a stranger CA');
let dns: EmbeddedDnsServer;
let primary: TestEndpoint;
let backup: TestEndpoint;
let wrongName: TestEndpoint;
let untrusted: TestEndpoint;
const clients: TwmClient[] = [];

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const key: TwmSigningKey = { selector: 's1', domain: 'a.test', privateKey };
const NOTICE = '/.well-known/twm/v1/notice';
const JSON_TYPE = 'application/twm-notice+json';
const body = Buffer.from('{"hello":"world"}');
const limits = { maxResponse: 65_536 };

before(async () => {
  dns = await startDnsServer();
  primary = await startEndpoint(issueCertificate(ca, ['twm1.b.test']));
  backup = await startEndpoint(issueCertificate(ca, ['twm2.b.test']));
  wrongName = await startEndpoint(issueCertificate(ca, ['someone-else.test']));
  untrusted = await startEndpoint(issueCertificate(otherCa, ['twm1.b.test']));
  dns.add([
    { name: 'twm1.b.test', type: 'A', data: '127.0.0.1' },
    { name: 'twm2.b.test', type: 'A', data: '127.0.0.1' },
  ]);
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([primary, backup, wrongName, untrusted].map((e) => e.close()));
  await dns.close();
});

function client(extra: Partial<TwmClientOptions> = {}): TwmClient {
  const c = createTwmClient({
    resolver: createResolver({ servers: [dns.address], timeoutMs: 1000, tries: 1, cacheTtlCapSeconds: 0 }),
    trustAnchors: [ca.cert],
    lab: true,
    ...extra,
  });
  clients.push(c);
  return c;
}

function srv(domain: string, target: string, port: number, priority = 10, weight = 0): DnsRecord {
  return { name: `_twoway._tcp.${domain}`, type: 'SRV', data: { priority, weight, port, target } };
}

/** Clears what the endpoints received and puts their default handler back. */
function reset(): void {
  for (const e of [primary, backup, wrongName, untrusted]) {
    e.received.length = 0;
    e.handler = ok;
  }
}

const status = (code: number, headers: Record<string, string> = {}): Handler => (_req, res) => {
  res.writeHead(code, { 'content-type': 'application/problem+json', ...headers });
  res.end('{}');
};

async function unreachable(promise: Promise<unknown>): Promise<TwmUnreachableError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TwmUnreachableError, `expected TwmUnreachableError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected TwmUnreachableError');
}

test('discover: SRV records with real targets are a TWM domain, lower-case and without trailing dot', async () => {
  dns.add([srv('disc.test', 'TWM2.B.test.', 8443, 20, 0), srv('disc.test', 'twm1.b.test', 443, 10, 5)]);
  assert.deepEqual(await client().discover('DISC.test.'), {
    kind: 'twm',
    targets: [
      { target: 'twm1.b.test', port: 443, priority: 10, weight: 5 },
      { target: 'twm2.b.test', port: 8443, priority: 20, weight: 0 },
    ],
  });
});

test('discover: NXDOMAIN, NODATA and a lone "." target are legacy domains', async () => {
  const c = client();
  assert.deepEqual(await c.discover('nothing.test'), { kind: 'legacy' });
  dns.add([{ name: '_twoway._tcp.nodata.test', type: 'TXT', data: 'not an SRV' }]);
  assert.deepEqual(await c.discover('nodata.test'), { kind: 'legacy' });
  dns.add([srv('dot.test', '.', 0, 0, 0)]);
  assert.deepEqual(await c.discover('dot.test'), { kind: 'legacy' });
});

test('discover: SERVFAIL is a temporary failure, not a legacy domain', async () => {
  const servfail = await startServfailServer();
  try {
    const c = client({ resolver: createResolver({ servers: [servfail.address], timeoutMs: 500, tries: 1, cacheTtlCapSeconds: 0 }) });
    const err = await unreachable(c.discover('b.test'));
    assert.match(err.message, /ESERVFAIL/);
    await unreachable(c.post('b.test', NOTICE, JSON_TYPE, body, key, limits));
  } finally {
    await servfail.close();
  }
});

test('discover: no DNS answer at all (nothing listens) is a temporary failure', async () => {
  const port = await closedTcpPort();
  const c = client({ resolver: createResolver({ servers: [`127.0.0.1:${port}`], timeoutMs: 300, tries: 1, cacheTtlCapSeconds: 0 }) });
  const err = await unreachable(c.discover('b.test'));
  assert.match(err.message, /SRV lookup of _twoway\._tcp\.b\.test failed \((ECONNREFUSED|ETIMEOUT)\)/);
});

test('post: the lowest priority target answers; the request is signed for that target', async () => {
  reset();
  dns.add([srv('order.test', 'twm2.b.test', backup.port, 20), srv('order.test', 'twm1.b.test', primary.port, 10)]);
  const answer = await client().post('order.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(answer.status, 200);
  assert.equal(answer.endpoint, `twm1.b.test:${primary.port}`);
  assert.equal(answer.headers['content-type'], 'application/twm-notice-result+json');
  assert.equal(answer.body.toString(), '{"ok":true}');
  assert.equal(backup.received.length, 0);

  const [got] = primary.received;
  assert.ok(got);
  const authority = `twm1.b.test:${primary.port}`;
  assert.equal(got.path, NOTICE);
  assert.equal(got.headers.host, authority);
  assert.equal(got.headers['content-type'], JSON_TYPE);
  assert.deepEqual(got.body, body);
  assert.equal(got.headers['content-digest'], `sha-256=:${createHash('sha256').update(body).digest('base64')}:`);
  assert.match(String(got.headers['signature-input']), /^twm=\("@method" "@target-uri" "@authority" "content-digest" "content-type"\);/);
  assert.match(String(got.headers['signature-input']), /keyid="s1\._twoway\.a\.test"/);
  assert.match(String(got.headers.signature), /^twm=:/);
  // The verifier's view: it reconstructs @authority and @target-uri from its own name and port.
  const header = (name: string): string | undefined => {
    const v = got.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  const sig = parseTwmSignature(header('signature-input'), header('signature'));
  checkContentDigest(header('content-digest'), got.body);
  const view = { method: 'POST', targetUri: `https://${authority}${got.path}`, authority, header };
  assert.equal(verifySignature(sig, view, publicKey), true);
  assert.equal(verifySignature(sig, { ...view, authority: `twm2.b.test:${primary.port}` }, publicKey), false);
});

test('post: first target down -> the second answers', async () => {
  reset();
  dns.add([srv('down.test', 'twm1.b.test', await closedTcpPort(), 10), srv('down.test', 'twm2.b.test', backup.port, 20)]);
  const answer = await client().post('down.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(answer.endpoint, `twm2.b.test:${backup.port}`);
  assert.equal(backup.received.length, 1);
});

test('post: 503 and 429 send the client on; each attempt is signed afresh for its target', async () => {
  for (const code of [503, 429]) {
    reset();
    primary.handler = status(code);
    dns.add([srv(`s${code}.test`, 'twm1.b.test', primary.port, 10), srv(`s${code}.test`, 'twm2.b.test', backup.port, 20)]);
    const answer = await client().post(`s${code}.test`, NOTICE, JSON_TYPE, body, key, limits);
    assert.equal(answer.status, 200);
    assert.equal(answer.endpoint, `twm2.b.test:${backup.port}`);
    assert.equal(primary.received.length, 1);
    assert.equal(backup.received[0]?.headers.host, `twm2.b.test:${backup.port}`);
    assert.notEqual(primary.received[0]?.headers.signature, backup.received[0]?.headers.signature);
  }
});

test('post: a 4xx answer is final', async () => {
  reset();
  primary.handler = status(403);
  dns.add([srv('final.test', 'twm1.b.test', primary.port, 10), srv('final.test', 'twm2.b.test', backup.port, 20)]);
  const answer = await client().post('final.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(answer.status, 403);
  assert.equal(backup.received.length, 0);
});

test('post: a 3xx is not followed; with no other target the domain is unreachable and the 3xx is attached', async () => {
  reset();
  primary.handler = status(307, { location: `https://twm2.b.test:${backup.port}/elsewhere` });
  dns.add([srv('redirect.test', 'twm1.b.test', primary.port, 10)]);
  const err = await unreachable(client().post('redirect.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.equal(err.last?.status, 307);
  assert.match(err.message, /HTTP 307/);
  assert.equal(backup.received.length, 0);
});

test('post: an answer larger than maxResponse is cut short and returned truncated (announced or streamed)', async () => {
  for (const chunked of [false, true]) {
    reset();
    primary.handler = (_req, res) => {
      if (!chunked) res.setHeader('content-length', '1000');
      res.writeHead(200, { 'content-type': 'message/rfc822' });
      res.end(Buffer.alloc(1000, 0x61));
    };
    const domain = chunked ? 'big-chunked.test' : 'big.test';
    dns.add([srv(domain, 'twm1.b.test', primary.port, 10)]);
    const answer = await client().post(domain, NOTICE, JSON_TYPE, body, key, { maxResponse: 100 });
    assert.equal(answer.truncated, true);
    assert.equal(answer.status, 200);
    assert.ok(answer.body.length <= 100, `at most the limit is kept (${answer.body.length})`);
  }
});

test('post: a server that stops making progress times out and the next target answers', async () => {
  reset();
  primary.handler = () => undefined; // never answers
  dns.add([srv('slow.test', 'twm1.b.test', primary.port, 10), srv('slow.test', 'twm2.b.test', backup.port, 20)]);
  const answer = await client({ requestTimeoutMs: 300 }).post('slow.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(answer.endpoint, `twm2.b.test:${backup.port}`);
});

test('post: an answer that is no TWM answer (a web page) is not final, and alone makes the error permanent (12.2)', async () => {
  reset();
  primary.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html>hello</html>');
  };
  dns.add([srv('webpage.test', 'twm1.b.test', primary.port, 10)]);
  const err = await unreachable(client().post('webpage.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.equal(err.permanent, true);
  assert.match(err.message, /not a TWM answer/);
  // A 503 page (a proxy before a TWM server that is down) stays temporary.
  primary.handler = (_req, res) => {
    res.writeHead(503, { 'content-type': 'text/html' });
    res.end('<html>down</html>');
  };
  dns.add([srv('proxy503.test', 'twm1.b.test', primary.port, 10)]);
  assert.equal((await unreachable(client().post('proxy503.test', NOTICE, JSON_TYPE, body, key, limits))).permanent, false);
});

test('post: a certificate for another name is refused', async () => {
  reset();
  dns.add([srv('wrongname.test', 'twm1.b.test', wrongName.port, 10)]);
  const err = await unreachable(client().post('wrongname.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.match(err.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
  assert.equal(err.permanent, true, 'a TLS identity failure at every address is permanent (12.2)');
  assert.equal(wrongName.received.length, 0);
});

test('post: a certificate from an untrusted CA is refused, and so is the private CA without trust anchors', async () => {
  reset();
  dns.add([srv('untrusted.test', 'twm1.b.test', untrusted.port, 10), srv('notrust.test', 'twm1.b.test', primary.port, 10)]);
  const err = await unreachable(client().post('untrusted.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.match(err.message, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/);
  assert.equal(untrusted.received.length, 0);
  await unreachable(client({ trustAnchors: [] }).post('notrust.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.equal(primary.received.length, 0);
});

test('post: loopback targets are refused unless lab is on (section 4.4)', async () => {
  reset();
  dns.add([srv('private.test', 'twm1.b.test', primary.port, 10)]);
  const err = await unreachable(client({ lab: false }).post('private.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.match(err.message, /outbound address restriction/);
  assert.match(err.message, /127\.0\.0\.1/);
  assert.equal(primary.received.length, 0);
  const answer = await client({ lab: true }).post('private.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(answer.status, 200);
});

test('post: a legacy domain is unreachable over TWM', async () => {
  const err = await unreachable(client().post('nothing.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.match(err.message, /no TWM service/);
});

test('post: a target without addresses is skipped', async () => {
  reset();
  dns.add([srv('noaddr.test', 'ghost.b.test', primary.port, 10), srv('noaddr.test', 'twm2.b.test', backup.port, 20)]);
  const answer = await client().post('noaddr.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(answer.endpoint, `twm2.b.test:${backup.port}`);
});

test('post: an SRV target that is a CNAME is skipped (section 3.1), even when its name resolves', async () => {
  reset();
  dns.add([
    { name: 'alias.b.test', type: 'CNAME', data: 'twm1.b.test' },
    { name: 'alias.b.test', type: 'A', data: '127.0.0.1' },
    srv('cname.test', 'alias.b.test', primary.port, 10),
    srv('cname2.test', 'alias.b.test', primary.port, 10),
    srv('cname2.test', 'twm2.b.test', backup.port, 20),
  ]);
  const err = await unreachable(client().post('cname.test', NOTICE, JSON_TYPE, body, key, limits));
  assert.match(err.message, /alias\.b\.test: is an alias \(CNAME twm1\.b\.test\)/);
  assert.equal(primary.received.length, 0);
  const answer = await client().post('cname2.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(answer.endpoint, `twm2.b.test:${backup.port}`);
  assert.equal(primary.received.length, 0);
});

test('post: connections are kept alive per endpoint and closed by close()', async () => {
  reset();
  dns.add([srv('keepalive.test', 'twm1.b.test', primary.port, 10)]);
  const c = client();
  await c.post('keepalive.test', NOTICE, JSON_TYPE, body, key, limits);
  await c.post('keepalive.test', NOTICE, JSON_TYPE, body, key, limits);
  assert.equal(primary.received.length, 2);
  assert.equal(primary.received[0]?.remotePort, primary.received[1]?.remotePort);
  await c.close();
  await assert.rejects(c.post('keepalive.test', NOTICE, JSON_TYPE, body, key, limits), /closed/);
});

test('post: only absolute paths are accepted (the host always comes from DNS)', async () => {
  const c = client();
  await assert.rejects(c.post('order.test', 'https://evil.test/x', JSON_TYPE, body, key, limits), TypeError);
  await assert.rejects(c.post('order.test', '//evil.test/x', JSON_TYPE, body, key, limits), TypeError);
});
