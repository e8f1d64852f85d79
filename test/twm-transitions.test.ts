/**
 * The remaining transitions of both TWM state machines (docs/protocol.md 7.2
 * and 8.3) and the refusals of bad notices and bodies, between real servers
 * (a.test, b.test) and a scripted peer (x.test) built from the project's own
 * client and signing code: a recipient down at notice time, blocked senders
 * held or declined, a silent denial, bodies that do not match their notice
 * (failed receipts, nothing stored), replays and id conflicts, and fetches
 * by the wrong domain or for unknown ids.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { fetchRequestToJson, noticeToJson } from '../src/core/twm-schema.ts';
import { signRequest } from '../src/core/twm-signature.ts';
import { keyIdOf, TWM_MEDIA_TYPES, TWM_PATHS, type Notice } from '../src/core/twm-types.ts';
import { ensureMaterials } from '../src/config/materials.ts';
import { createTwmClient } from '../src/delivery/twm-client.ts';
import { createTwmTransport } from '../src/delivery/twm-transport.ts';
import { createResolver } from '../src/dns/resolver.ts';
import { commonFreePort, eventually, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';
import { startTwmPeer, type TwmPeer } from './helpers/twm-peer.ts';

describe('Two-Way Mail transitions and refusals', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let x: TwmPeer;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    const fast = (t: string) => t.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port, edit: fast });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, edit: fast });
    x = await startTwmPeer({ lab, dns, domain: 'x.test', host: '127.0.0.6' });
    for (const name of ['ann', 'sam', 'rex', 'tom']) await a.server.services.accounts.add(`${name}@a.test`, `${name}-password`, 'open');
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
    await b.server.services.accounts.add('ben@b.test', 'ben-password', 'screen');
  });
  after(async () => {
    await x?.close();
    await a?.close();
    await b?.close();
    await dns?.close();
    lab?.close();
  });

  const user = (t: TestServer, address: string) => t.server.services.accounts.get(address);
  const send = (name: string, to: string, subject: string) =>
    submit({ port: a.server.submission!.port, host: '127.0.0.2', user: `${name}@a.test`, pass: `${name}-password`, to, subject });
  const status = async (name: string, to: string) => {
    for (const m of await a.server.services.sent.list(await user(a, `${name}@a.test`))) {
      const r = m.recipients.find((e) => e.recipient === to);
      if (r) return r;
    }
    return undefined;
  };
  const rowsAtB = async (rcpt: string, sender: string) =>
    b.server.store.twmIn.forUser((await user(b, rcpt)).id, { senders: [sender] }, ['pending', 'held', 'scheduled', 'receipt-due', 'closed', 'expired'], new Date(0));
  const mailAtB = async (rcpt: string, subject: string) => (await b.server.services.mail.list((await user(b, rcpt)).id)).find((m) => m.subject === subject);

  it('a recipient server that is down at notice time: the queue defers, then the notice goes through', async () => {
    await b.server.services.contacts.allow((await user(b, 'bea@b.test')).id, 'ann@a.test');
    dns.remove('twm.b.test', 'A');
    dns.add([{ name: 'twm.b.test', type: 'A', ttl: 1, data: '127.0.0.9' }]);
    await new Promise((r) => setTimeout(r, 1_100));
    await send('ann', 'bea@b.test', 'while b was down');
    const deferred = await eventually(async () => (await a.server.services.queue.list()).find((e) => e.recipient === 'bea@b.test' && e.status.state === 'deferred'), 15_000, 'deferred');
    assert.match(deferred.status.state === 'deferred' ? deferred.status.lastError : '', /TWM/);
    assert.equal((await status('ann', 'bea@b.test'))?.status, 'queued');
    dns.remove('twm.b.test', 'A');
    dns.add([{ name: 'twm.b.test', type: 'A', ttl: 1, data: '127.0.0.3' }]);
    await eventually(() => mailAtB('bea@b.test', 'while b was down'), 30_000, 'delivery after b came back');
    await eventually(async () => (await status('ann', 'bea@b.test'))?.status === 'delivered', 10_000, 'delivered');
  });

  it('a blocked sender is held silently: "pending" for the sender, no request, no body', async () => {
    await b.server.services.contacts.block((await user(b, 'bea@b.test')).id, 'sam@a.test');
    await send('sam', 'bea@b.test', 'from blocked sam');
    await eventually(async () => (await status('sam', 'bea@b.test'))?.status === 'pending', 20_000, 'pending');
    const rows = await rowsAtB('bea@b.test', 'sam@a.test');
    assert.deepEqual(rows.map((r) => r.recipient.state), ['held']);
    assert.equal((await b.server.services.screener.list((await user(b, 'bea@b.test')).id)).some((r) => r.sender === 'sam@a.test' && r.count > 0 && r.status === 'pending'), false);
    assert.equal(await mailAtB('bea@b.test', 'from blocked sam'), undefined);
  });

  it('a blocked sender gets "declined" when the recipient reveals declines', async () => {
    await b.server.services.accounts.setRevealDeclined('ben@b.test', true);
    await b.server.services.contacts.block((await user(b, 'ben@b.test')).id, 'rex@a.test');
    await send('rex', 'ben@b.test', 'from blocked rex');
    await eventually(async () => (await status('rex', 'ben@b.test'))?.status === 'declined', 20_000, 'declined');
    // b closes the row once the sender acknowledged the receipt.
    await eventually(async () => (await rowsAtB('ben@b.test', 'rex@a.test'))[0]?.recipient.state === 'closed', 5_000, 'closed');
    assert.deepEqual((await rowsAtB('ben@b.test', 'rex@a.test')).map((r) => r.recipient.receipt), ['declined']);
  });

  it('a silent denial closes the notice; the sender keeps seeing "pending"', async () => {
    await send('tom', 'bea@b.test', 'from tom');
    await eventually(async () => (await status('tom', 'bea@b.test'))?.status === 'pending', 20_000, 'pending');
    await b.server.services.screener.deny((await user(b, 'bea@b.test')).id, ['tom@a.test']);
    await eventually(async () => (await rowsAtB('bea@b.test', 'tom@a.test'))[0]?.recipient.state === 'closed', 5_000, 'closed');
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal((await status('tom', 'bea@b.test'))?.status, 'pending');
  });

  /** A notice from x.test for a body the test controls. */
  function peerNotice(id: string, body: Buffer, over: Partial<Notice> = {}): Buffer {
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    return noticeToJson({
      id,
      from: 'shop@x.test',
      to: ['bea@b.test'],
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      created,
      expires: new Date(created.getTime() + 3_600_000),
      ...over,
    });
  }

  it('a body that does not match its notice is discarded and answered with a failed receipt', async () => {
    await b.server.services.contacts.allow((await user(b, 'bea@b.test')).id, '@x.test');
    const good = Buffer.from('From: shop@x.test\r\nTo: bea@b.test\r\nSubject: from x\r\n\r\nHello.\r\n');
    const cases: Array<[string, Buffer, string]> = [
      ['digestdigestdigestdigest', Buffer.from(good.toString().replace('Hello', 'Jello')), 'digest-mismatch'],
      ['sizesizesizesizesizesize', Buffer.concat([good, Buffer.from('more')]), 'size-mismatch'],
      ['fromfromfromfromfromfrom', Buffer.from(good.toString().replace('From: shop@x.test', 'From: ceo@b.test')), 'from-mismatch'],
    ];
    for (const [id, served, error] of cases) {
      // The From: case announces the served octets themselves, so only the From: check can catch it.
      const announced = error === 'from-mismatch' ? served : good;
      x.bodies.set(id, { body: served });
      const res = await x.post('b.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, peerNotice(id, announced));
      assert.equal(res.status, 200);
      assert.match(res.body.toString(), /"status":"accepted"/);
      const receipt = await eventually(async () => x.received.find((r) => r.path === TWM_PATHS.receipt && r.body.toString().includes(id)), 15_000, `${error} receipt`);
      assert.deepEqual(JSON.parse(receipt.body.toString()), { id, results: [{ rcpt: 'bea@b.test', status: 'failed', error }] });
    }
    assert.equal(await mailAtB('bea@b.test', 'from x'), undefined, 'nothing stored');
    const metrics = await b.server.metrics.registry.getSingleMetricAsString('twoway_twm_fetch_total');
    for (const [, , error] of cases) assert.match(metrics, new RegExp(`outcome="${error}"\\} 1`));
  });

  it('replays, reused ids and retries of a notice get the documented answers', async () => {
    const body = Buffer.from('From: shop@x.test\r\nTo: bea@b.test\r\nSubject: replayed\r\n\r\nHi.\r\n');
    const content = peerNotice('replayreplayreplayreplay', body);
    const authority = b.server.twm!.authority;
    const headers = signRequest({
      method: 'POST',
      targetUri: `https://${authority}${TWM_PATHS.notice}`,
      authority,
      contentType: TWM_MEDIA_TYPES.notice,
      body: content,
      keyid: keyIdOf(x.key.selector, x.key.domain),
      privateKey: x.key.privateKey,
      created: new Date(),
    });
    const agent = new Agent({ connect: { ca: lab.ca.cert, servername: 'twm.b.test' } });
    const raw = async (h: Record<string, string>, b2: Buffer) => {
      const res = await request(`https://127.0.0.3:${b.server.twm!.port}${TWM_PATHS.notice}`, {
        method: 'POST',
        dispatcher: agent,
        headers: { host: authority, 'content-type': TWM_MEDIA_TYPES.notice, ...h },
        body: b2,
      });
      return { status: res.statusCode, doc: (await res.body.json()) as { twm_error?: string; results?: unknown } };
    };
    try {
      const first = await raw(headers, content);
      assert.equal(first.status, 200);
      const replay = await raw(headers, content);
      assert.deepEqual([replay.status, replay.doc.twm_error], [409, 'replay'], 'the same signed request twice');
    } finally {
      await agent.close();
    }
    // A sender's retry (same id, same content, fresh signature) gets the same answer and nothing new.
    const retry = await x.post('b.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, content);
    assert.equal(retry.status, 200);
    // The same id with other content is a conflict.
    const other = await x.post('b.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, peerNotice('replayreplayreplayreplay', Buffer.from(body.toString() + 'x')));
    assert.deepEqual([other.status, JSON.parse(other.body.toString()).twm_error], [409, 'id-conflict']);
    assert.equal((await b.server.store.twmIn.find('x.test', 'replayreplayreplayreplay'))?.recipients.length, 1);
  });

  it("a message whose recipients reach the transport in two parts gets two notices, and both parts are delivered", async () => {
    await b.server.services.contacts.allow((await user(b, 'ben@b.test')).id, 'ann@a.test');
    const keys = ensureMaterials(a.server.config).twm!;
    const client = createTwmClient({ resolver: createResolver({ servers: [dns.address] }), trustAnchors: [lab.ca.cert], lab: true });
    const transport = createTwmTransport({
      outbox: a.server.store.twmOut,
      client,
      key: (domain) => ({ selector: keys.selector, domain, privateKey: keys.privateKey }),
      expiryMs: 3_600_000,
      domains: ['a.test'],
    });
    const message = { messageId: 'split-1@queue', sender: 'ann@a.test', raw: Buffer.from('From: ann@a.test\r\nTo: bea@b.test, ben@b.test\r\nSubject: in two parts\r\n\r\nHi both.\r\n') };
    try {
      const first = await transport.deliver('b.test', message, ['bea@b.test']);
      const second = await transport.deliver('b.test', message, ['ben@b.test']);
      // A retry of the first part reuses its notice.
      const again = await transport.deliver('b.test', message, ['bea@b.test']);
      assert.deepEqual([...first, ...second, ...again].map((r) => r.status), ['delivered', 'delivered', 'delivered']);
      const notices = await a.server.store.twmOut.findByMessage('split-1@queue', 'b.test');
      // Two notices (made in the same second, so in no particular order), one per part.
      assert.deepEqual(notices.map((n) => n.recipients.map((r) => r.recipient).join()).sort(), ['bea@b.test', 'ben@b.test']);
      await eventually(() => mailAtB('bea@b.test', 'in two parts'), 15_000, 'bea');
      await eventually(() => mailAtB('ben@b.test', 'in two parts'), 15_000, 'ben');
    } finally {
      await client.close();
    }
  });

  it('a Bcc recipient gets a notice of its own: no notice lists it beside the visible recipients', async () => {
    const keys = ensureMaterials(a.server.config).twm!;
    const client = createTwmClient({ resolver: createResolver({ servers: [dns.address] }), trustAnchors: [lab.ca.cert], lab: true });
    const transport = createTwmTransport({
      outbox: a.server.store.twmOut,
      client,
      key: (domain) => ({ selector: keys.selector, domain, privateKey: keys.privateKey }),
      expiryMs: 3_600_000,
      domains: ['a.test'],
    });
    // bea is on To:, ben only in the envelope (Bcc).
    const message = { messageId: 'bcc-1@queue', sender: 'ann@a.test', raw: Buffer.from('From: ann@a.test\r\nTo: Bea <BEA@b.test>\r\nSubject: with a bcc\r\n\r\nHi.\r\n') };
    try {
      const results = await transport.deliver('b.test', message, ['bea@b.test', 'ben@b.test']);
      assert.deepEqual(results.map((r) => r.status), ['delivered', 'delivered']);
      const notices = await a.server.store.twmOut.findByMessage('bcc-1@queue', 'b.test');
      assert.deepEqual(notices.map((n) => n.recipients.map((r) => r.recipient).join()).sort(), ['bea@b.test', 'ben@b.test']);
      for (const n of notices) assert.equal((JSON.parse(n.content.toString()) as { to: string[] }).to.length, 1, 'each notice lists one recipient');
      // A local part's case is carried as the envelope has it (protocol 1.3), and compared lower-cased.
      const cased = { messageId: 'case-1@queue', sender: 'ann@a.test', raw: Buffer.from('From: ann@a.test\r\nTo: BEN@b.test\r\nSubject: cased\r\n\r\nHi.\r\n') };
      assert.deepEqual((await transport.deliver('b.test', cased, ['BEN@b.test'])).map((r) => r.status), ['delivered']);
      const [caseNotice] = await a.server.store.twmOut.findByMessage('case-1@queue', 'b.test');
      assert.deepEqual((JSON.parse(caseNotice!.content.toString()) as { to: string[] }).to, ['BEN@b.test']);
      assert.deepEqual(caseNotice!.recipients.map((r) => r.recipient), ['ben@b.test']);
      await eventually(() => mailAtB('ben@b.test', 'cased'), 15_000, 'ben, addressed as BEN');
    } finally {
      await client.close();
    }
  });

  it('fetches are served only to the recipient domain, for known ids', async () => {
    await send('ann', 'bea@b.test', 'fetch guard');
    const notice = await eventually(async () => (await a.server.store.twmOut.listBySender('ann@a.test')).find((n) => n.subject === 'fetch guard'), 15_000, 'notice');
    const wrong = await x.post('a.test', TWM_PATHS.fetch(notice.id), TWM_MEDIA_TYPES.fetch, fetchRequestToJson({ rcpt: ['bea@b.test'] }));
    assert.deepEqual([wrong.status, JSON.parse(wrong.body.toString()).twm_error], [403, 'wrong-domain']);
    const unknown = await x.post('a.test', TWM_PATHS.fetch('nosuchnoticenosuchnotice'), TWM_MEDIA_TYPES.fetch, fetchRequestToJson({ rcpt: ['bea@x.test'] }));
    assert.deepEqual([unknown.status, JSON.parse(unknown.body.toString()).twm_error], [404, 'unknown-id']);
    const refused = await a.server.metrics.registry.getSingleMetricAsString('twoway_twm_refused_total');
    assert.match(refused, /endpoint="fetch",code="wrong-domain"\} 1/);
  });
});

describe('Two-Way Mail notice rate per sending domain, and uniform answers', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let c: TestServer;
  let y: TwmPeer;
  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.7']);
    c = await startDomain({ lab, dns, domain: 'c.test', host: '127.0.0.7', smtpPort: port, twmToml: 'notices_per_second = 0.01\nnotice_burst = 2\nuniform_answers = true' });
    await c.server.services.accounts.add('cat@c.test', 'cat-password', 'screen');
    y = await startTwmPeer({ lab, dns, domain: 'y.test', host: '127.0.0.8' });
  });
  after(async () => {
    await y?.close();
    await c?.close();
    await dns?.close();
    lab?.close();
  });

  it('a sending domain over its notice rate gets 429 with Retry-After, and nothing is stored for it', async () => {
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    const notice = (id: string, to = ['cat@c.test']) =>
      noticeToJson({ id, from: 'news@y.test', to, size: 10, sha256: '1'.repeat(64), created, expires: new Date(created.getTime() + 3_600_000) });
    // Uniform answers: an unknown recipient looks like a screened one, on a retry too (12.6).
    const probe = notice('uniformuniformuniformxx', ['cat@c.test', 'nobody@c.test']);
    for (let i = 0; i < 2; i++) {
      const res = await y.post('c.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, probe);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body.toString()).results, [
        { rcpt: 'cat@c.test', status: 'pending' },
        { rcpt: 'nobody@c.test', status: 'pending' },
      ]);
    }
    const answers = [];
    // The burst of 2 is spent on the probe (its retry is answered from the record, costing nothing) and one more.
    for (const id of ['ratelimit2ratelimit2xx', 'ratelimit3ratelimit3xx']) {
      answers.push(await y.post('c.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, notice(id)).catch((err: { last?: { status: number; headers: Record<string, string>; body: Buffer } }) => err.last!));
    }
    assert.deepEqual(answers.map((r) => r.status), [200, 429]);
    assert.equal(JSON.parse(answers[1]!.body.toString()).twm_error, 'rate-limited');
    assert.ok(Number(answers[1]!.headers['retry-after']) >= 1, 'Retry-After');
    assert.equal(await c.server.store.twmIn.find('y.test', 'ratelimit3ratelimit3xx'), undefined);
    assert.match(await c.server.metrics.registry.getSingleMetricAsString('twoway_twm_refused_total'), /endpoint="notice",code="rate-limited"\} 1/);
  });
});
