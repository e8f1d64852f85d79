/**
 * Security battery, Two-Way Mail (issue #6), counted: forged notices (wrong
 * key, another domain's key, `from` not the signer's, signed for another
 * authority, unknown selector), a replayed signed request, expired and
 * stale notices, notices for domains we do not serve, oversized (16 KiB + 1)
 * and unsigned ones; fetches and receipts from the wrong domain, for
 * unknown ids, for recipients not listed, after expiry; and SSRF through
 * SRV targets at private addresses, on the sending side (the queue defers
 * with the address-restriction reason; a listener on the loopback target
 * sees no connection, neither TWM nor an SMTP fallback) and on the
 * receiving side (the notice is accepted, the fetch refused by the
 * restriction and retried, nothing connects). Every case must be refused;
 * the last test prints `security (twm): N cases, N refused`.
 *
 * Servers: b.test (lab on, the recipient and the holder of an outbound
 * notice to x.test), s.test (lab OFF, the SSRF target of the battery), and
 * scripted peers x.test and y.test built from the project's own signing code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { fetchRequestToJson, noticeToJson, receiptToJson } from '../src/core/twm-schema.ts';
import { signRequest } from '../src/core/twm-signature.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS, type Notice } from '../src/core/twm-types.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { rawHttps, type RawHttpsAnswer } from './helpers/raw-https.ts';
import { SecurityTally } from './helpers/security-tally.ts';
import { commonFreePort, eventually, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';
import { startTwmPeer, type TwmPeer } from './helpers/twm-peer.ts';

const tally = new SecurityTally('twm');
const MESSAGE = Buffer.from('From: bea@b.test\r\nTo: shop@x.test\r\nSubject: for x\r\n\r\nHello x.\r\n');
const OUT_ID = 'securityoutboundnotice01';
const OUT_EXPIRED = 'securityoutboundexpired1';

/** A TCP listener that only counts who connects (the SSRF canary). */
async function canary(host: string, ports: number[]): Promise<{ connections: string[]; close(): Promise<void> }> {
  const connections: string[] = [];
  const servers: Server[] = [];
  for (const port of ports) {
    const srv = createServer((s: Socket) => {
      connections.push(`${host}:${port} from ${s.remoteAddress}`);
      s.destroy();
    });
    await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, host, resolve));
    servers.push(srv);
  }
  return { connections, close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined) };
}

describe('security battery: TWM', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let b: TestServer;
  let x: TwmPeer;
  let y: TwmPeer;
  let smtpPort: number;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    smtpPort = await commonFreePort(['127.0.0.3', '127.0.0.4', '127.0.0.9']);
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort });
    x = await startTwmPeer({ lab, dns, domain: 'x.test', host: '127.0.0.6' });
    y = await startTwmPeer({ lab, dns, domain: 'y.test', host: '127.0.0.7' });
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
    // Notices b.test "sent" to x.test: one open, one past its expiry (but inside the receipt grace, so still known).
    for (const [id, offset] of [[OUT_ID, 3_600_000], [OUT_EXPIRED, -60_000]] as const) {
      const createdAt = new Date(Date.now() - 7_200_000);
      await b.server.store.twmOut.create({
        notice: { id, messageId: `sec-${id}`, sender: 'bea@b.test', domain: 'x.test', content: Buffer.from('{}'), subject: 'for x', messageIdHeader: null, size: MESSAGE.length, sha256: createHash('sha256').update(MESSAGE).digest('hex'), createdAt, expiresAt: new Date(Date.now() + offset) },
        recipients: ['shop@x.test'],
        raw: MESSAGE,
      });
    }
  });
  after(async () => {
    await x?.close();
    await y?.close();
    await b?.close();
    await dns?.close();
    lab?.close();
  });

  /** Signs `body` for b.test's endpoint at `path` as the caller says, and sends it byte for byte. */
  async function send(o: { path: string; type: string; body: Buffer; keyid?: string; key?: KeyObject; created?: Date; authority?: string; unsigned?: boolean; replay?: Array<[string, string]> }): Promise<{ a: RawHttpsAnswer; headers: Array<[string, string]> }> {
    const authority = b.server.twm!.authority;
    const headers: Array<[string, string]> = o.replay ?? [['Host', authority], ['Content-Type', o.type]];
    if (!o.replay) {
      const signed = signRequest({
        method: 'POST',
        targetUri: `https://${o.authority ?? authority}${o.path}`,
        authority: o.authority ?? authority,
        contentType: o.type,
        body: o.body,
        keyid: o.keyid ?? 's1._twoway.x.test',
        privateKey: o.key ?? x.key.privateKey,
        created: o.created ?? new Date(),
      });
      headers.push(['Content-Digest', signed['content-digest']]);
      if (!o.unsigned) headers.push(['Signature-Input', signed['signature-input']], ['Signature', signed.signature]);
      headers.push(['Content-Length', String(o.body.length)]);
    }
    const a = await rawHttps({ host: '127.0.0.3', port: b.server.twm!.port, ca: lab.ca.cert, servername: 'twm.b.test' }, { method: 'POST', path: o.path, headers, body: o.body });
    return { a, headers };
  }
  const codeOf = (a: RawHttpsAnswer): string | undefined => (a.status >= 400 ? (JSON.parse(a.body.toString()) as { twm_error?: string }).twm_error : undefined);
  const refusedWith = (a: RawHttpsAnswer, status: number, code: string) => a.status === status && codeOf(a) === code;

  let n = 0;
  function notice(over: Partial<Notice> = {}): { id: string; body: Buffer } {
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    const id = `securitynotice${String(++n).padStart(8, '0')}`;
    return {
      id,
      body: noticeToJson({ id, from: 'shop@x.test', to: ['bea@b.test'], size: 10, sha256: '1'.repeat(64), created, expires: new Date(created.getTime() + 3_600_000), ...over }),
    };
  }

  describe('forged, replayed, expired, misaddressed, oversized and unsigned notices', () => {
    const cases: Array<{ name: string; make: () => { id: string; body: Buffer; keyid?: string; key?: KeyObject; created?: Date; authority?: string; unsigned?: boolean; signer?: string }; status: number; code: string }> = [
      { name: 'signed with a key x.test does not publish', make: () => ({ ...notice(), key: generateKeyPairSync('ed25519').privateKey }), status: 401, code: 'bad-signature' },
      { name: "signed with y.test's key under x.test's keyid", make: () => ({ ...notice(), key: y.key.privateKey }), status: 401, code: 'bad-signature' },
      { name: 'from shop@x.test, signed by y.test (its own valid key)', make: () => ({ ...notice(), keyid: 's1._twoway.y.test', key: y.key.privateKey, signer: 'y.test' }), status: 403, code: 'wrong-domain' },
      { name: 'from ceo@b.test (our own domain), signed by x.test', make: () => notice({ from: 'ceo@b.test' }), status: 403, code: 'wrong-domain' },
      { name: 'a selector x.test does not publish', make: () => ({ ...notice(), keyid: 's9._twoway.x.test' }), status: 401, code: 'unknown-key' },
      { name: 'signed for another server (twm.c.test)', make: () => ({ ...notice(), authority: 'twm.c.test' }), status: 401, code: 'bad-signature' },
      { name: 'a notice that expired an hour ago', make: () => notice({ created: new Date(Math.floor(Date.now() / 1000) * 1000 - 7_200_000), expires: new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000) }), status: 410, code: 'expired' },
      { name: 'a signature made 20 minutes ago', make: () => ({ ...notice(), created: new Date(Date.now() - 1_200_000) }), status: 401, code: 'stale-signature' },
      { name: 'a signature made 20 minutes ahead', make: () => ({ ...notice(), created: new Date(Date.now() + 1_200_000) }), status: 401, code: 'stale-signature' },
      { name: 'for a domain this server does not serve', make: () => notice({ to: ['bob@elsewhere.test'] }), status: 421, code: 'not-served' },
      { name: 'recipients at two domains, one ours', make: () => notice({ to: ['bea@b.test', 'bob@elsewhere.test'] }), status: 400, code: 'invalid-request' },
      {
        name: '16,385 octets (16 KiB + 1), signed',
        make: () => {
          const base = notice();
          const text = base.body.toString();
          return { id: base.id, body: Buffer.from(`${text.slice(0, -1)}${' '.repeat(16_385 - text.length)}}`) };
        },
        status: 413,
        code: 'too-large',
      },
      { name: 'unsigned (Content-Digest only)', make: () => ({ ...notice(), unsigned: true }), status: 401, code: 'unsigned' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const m = c.make();
        assert.equal(m.body.length <= 16_384 || c.code === 'too-large', true);
        const { a } = await send({ path: TWM_PATHS.notice, type: TWM_MEDIA_TYPES.notice, ...m });
        const stored = await b.server.store.twmIn.find(m.signer ?? 'x.test', m.id);
        tally.expectRefused(`notice: ${c.name}`, refusedWith(a, c.status, c.code) && stored === undefined, `${a.status} ${a.body.toString().slice(0, 300)}; stored: ${stored !== undefined}`);
      });
    }

    it('the same signed request twice: the replay is refused, one row', async () => {
      const m = notice();
      const first = await send({ path: TWM_PATHS.notice, type: TWM_MEDIA_TYPES.notice, ...m });
      assert.equal(first.a.status, 200, first.a.body.toString());
      const again = await send({ path: TWM_PATHS.notice, type: TWM_MEDIA_TYPES.notice, body: m.body, replay: first.headers });
      const rows = (await b.server.store.twmIn.find('x.test', m.id))?.recipients.length;
      tally.expectRefused('notice: replayed signed request', refusedWith(again.a, 409, 'replay') && rows === 1, `${again.a.status} ${again.a.body.toString()}`);
    });

    it('the same id with other content, freshly signed: id-conflict', async () => {
      const m = notice();
      assert.equal((await send({ path: TWM_PATHS.notice, type: TWM_MEDIA_TYPES.notice, ...m })).a.status, 200);
      const other = Buffer.from(m.body.toString().replace('"size":10', '"size":11'));
      const { a } = await send({ path: TWM_PATHS.notice, type: TWM_MEDIA_TYPES.notice, body: other });
      const row = await b.server.store.twmIn.find('x.test', m.id);
      tally.expectRefused('notice: reused id with other content', refusedWith(a, 409, 'id-conflict') && row?.notice.size === 10, `${a.status} ${a.body.toString()}`);
    });
  });

  describe('fetches and receipts', () => {
    const fetchBody = (rcpt: string[]) => fetchRequestToJson({ rcpt });
    const state = async (id: string) => (await b.server.store.twmOut.get(id))?.recipients.map((r) => r.state).join(',');
    const cases: Array<{ name: string; id: string; body: () => Buffer; keyid?: string; key?: () => KeyObject; status: number; code: string }> = [
      { name: 'fetch signed by y.test for a notice to x.test', id: OUT_ID, body: () => fetchBody(['shop@x.test']), keyid: 's1._twoway.y.test', key: () => y.key.privateKey, status: 403, code: 'wrong-domain' },
      { name: 'fetch for an unknown id', id: 'nosuchnoticenosuchnotice', body: () => fetchBody(['shop@x.test']), status: 404, code: 'unknown-id' },
      { name: 'fetch for a recipient the notice does not list', id: OUT_ID, body: () => fetchBody(['other@x.test']), status: 403, code: 'not-listed' },
      { name: 'fetch listing a listed and an unlisted recipient', id: OUT_ID, body: () => fetchBody(['shop@x.test', 'other@x.test']), status: 403, code: 'not-listed' },
      { name: 'fetch after the notice expired', id: OUT_EXPIRED, body: () => fetchBody(['shop@x.test']), status: 410, code: 'expired' },
      { name: "fetch under x.test's keyid with another key", id: OUT_ID, body: () => fetchBody(['shop@x.test']), key: () => generateKeyPairSync('ed25519').privateKey, status: 401, code: 'bad-signature' },
      { name: 'fetch with a path id that is not an id', id: '..%2f..%2fetc', body: () => fetchBody(['shop@x.test']), status: 400, code: 'invalid-request' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const before = await state(OUT_ID);
        const { a } = await send({ path: TWM_PATHS.fetch(c.id), type: TWM_MEDIA_TYPES.fetch, body: c.body(), ...(c.keyid ? { keyid: c.keyid } : {}), ...(c.key ? { key: c.key() } : {}) });
        const served = a.body.includes('Hello x.');
        tally.expectRefused(c.name, refusedWith(a, c.status, c.code) && !served && (await state(OUT_ID)) === before, `${a.status} ${a.body.toString().slice(0, 200)}`);
      });
    }
    it('receipt signed by y.test for a notice to x.test', async () => {
      const before = await state(OUT_ID);
      const { a } = await send({ path: TWM_PATHS.receipt, type: TWM_MEDIA_TYPES.receipt, body: receiptToJson({ id: OUT_ID, results: [{ rcpt: 'shop@x.test', status: 'delivered' }] }), keyid: 's1._twoway.y.test', key: y.key.privateKey });
      tally.expectRefused('receipt from the wrong domain', refusedWith(a, 403, 'wrong-domain') && (await state(OUT_ID)) === before, `${a.status} ${a.body.toString()}`);
    });
    it('receipt for a recipient not listed', async () => {
      const before = await state(OUT_ID);
      const { a } = await send({ path: TWM_PATHS.receipt, type: TWM_MEDIA_TYPES.receipt, body: receiptToJson({ id: OUT_ID, results: [{ rcpt: 'other@x.test', status: 'delivered' }] }) });
      tally.expectRefused('receipt for an unlisted recipient', refusedWith(a, 403, 'not-listed') && (await state(OUT_ID)) === before, `${a.status} ${a.body.toString()}`);
    });
    it('a fetch by the right domain still works (the control case)', async () => {
      const { a } = await send({ path: TWM_PATHS.fetch(OUT_ID), type: TWM_MEDIA_TYPES.fetch, body: fetchBody(['shop@x.test']) });
      assert.equal(a.status, 200);
      assert.deepEqual(a.body, MESSAGE);
    });
  });

  describe('SSRF through SRV targets at private addresses (twm.lab = false)', () => {
    let s: TestServer;
    let z: TwmPeer;
    let v4: Awaited<ReturnType<typeof canary>>;
    let v6: Awaited<ReturnType<typeof canary>> | undefined;
    const TWM_PORT = 44_443;
    // Each target domain publishes an SRV record (and an MX: an SMTP fallback would connect there too).
    const TARGETS: Array<[string, 'A' | 'AAAA', string]> = [
      ['loop.test', 'A', '127.0.0.9'],
      ['ten.test', 'A', '10.0.0.1'],
      ['link.test', 'A', '169.254.169.254'],
      ['v6loop.test', 'AAAA', '::1'],
      ['mapped.test', 'AAAA', '::ffff:127.0.0.9'],
      ['cgnat.test', 'A', '100.64.0.1'],
      ['zero.test', 'A', '0.0.0.0'],
    ];

    before(async () => {
      v4 = await canary('127.0.0.9', [TWM_PORT, smtpPort]);
      v6 = await canary('::1', [TWM_PORT, smtpPort]).catch(() => undefined);
      for (const [domain, type, address] of TARGETS) {
        dns.add([
          { name: `_twoway._tcp.${domain}`, type: 'SRV', ttl: 1, data: { priority: 10, weight: 10, port: TWM_PORT, target: `twm.${domain}` } },
          { name: `twm.${domain}`, type, ttl: 1, data: address },
          { name: domain, type: 'MX', data: { preference: 10, exchange: `twm.${domain}` } },
        ]);
      }
      const fast = (t: string) => t.replace(/^lab = true$/m, 'lab = false').replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
      s = await startDomain({ lab, dns, domain: 's.test', host: '127.0.0.4', smtpPort, edit: fast });
      assert.equal(s.server.config.twm.lab, false);
      await s.server.services.accounts.add('sue@s.test', 'sue-password', 'open');
      // z.test: a real signer whose SRV target is on loopback, where its endpoint really listens.
      z = await startTwmPeer({ lab, dns, domain: 'z.test', host: '127.0.0.8' });
      await s.server.services.contacts.allow((await s.server.services.accounts.get('sue@s.test')).id, '@z.test');
    });
    after(async () => {
      await z?.close();
      await s?.close();
      await v4?.close();
      await v6?.close();
    });

    it('sending: every private target defers with the address-restriction reason and nothing connects', async () => {
      for (const [domain] of TARGETS) await submit({ port: s.server.submission!.port, host: '127.0.0.4', user: 'sue@s.test', pass: 'sue-password', to: `victim@${domain}`, subject: `to ${domain}` });
      for (const [domain, , address] of TARGETS) {
        const entry = await eventually(async () => (await s.server.services.queue.list()).find((e) => e.recipient === `victim@${domain}` && e.status.state === 'deferred'), 15_000, `deferral for ${domain}`);
        const reason = entry.status.state === 'deferred' ? entry.status.lastError : '';
        tally.expectRefused(`SSRF (sending) to ${address} via ${domain}`, /outbound address restriction/.test(reason), reason);
      }
      // Let a retry or two pass too: still nothing connects.
      await new Promise((r) => setTimeout(r, 2_500));
      tally.expectRefused('SSRF (sending): no connection reached the loopback canaries', v4.connections.length === 0 && (v6?.connections.length ?? 0) === 0, [...v4.connections, ...(v6?.connections ?? [])].join(', '));
    });

    it('receiving: a notice from a domain whose SRV is private is accepted, its fetch refused by the restriction and retried', async () => {
      const body = Buffer.from('From: zed@z.test\r\nTo: sue@s.test\r\nSubject: from z\r\n\r\nHello.\r\n');
      const id = 'ssrfnoticessrfnotice01';
      z.bodies.set(id, { body });
      const created = new Date(Math.floor(Date.now() / 1000) * 1000);
      const res = await z.post('s.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, noticeToJson({ id, from: 'zed@z.test', to: ['sue@s.test'], size: body.length, sha256: createHash('sha256').update(body).digest('hex'), created, expires: new Date(created.getTime() + 3_600_000) }));
      assert.equal(res.status, 200, res.body.toString());
      assert.match(res.body.toString(), /"status":"accepted"/);
      const row = await eventually(async () => (await s.server.store.twmIn.find('z.test', id))?.recipients.find((r) => r.attempts >= 2), 20_000, 'two refused fetch attempts');
      tally.expectRefused('SSRF (receiving): fetch from a private SRV target', row.state === 'scheduled' && /outbound address restriction/.test(row.lastError ?? ''), `${row.state} ${row.lastError}`);
      const fetched = z.received.filter((r) => r.path.startsWith('/.well-known/twm/v1/fetch/'));
      tally.expectRefused('SSRF (receiving): nothing connected to the sender endpoint', fetched.length === 0, JSON.stringify(fetched.map((r) => r.path)));
      const sue = await s.server.services.accounts.get('sue@s.test');
      assert.equal((await s.server.services.mail.list(sue.id)).some((m) => m.subject === 'from z'), false);
    });
  });

  it('prints the tally', (t) => tally.report((line) => t.diagnostic(line)));
});
