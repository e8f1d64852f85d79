/**
 * Two-Way Mail between real servers on loopback: a.test and b.test speak
 * TWM (each its own address, SMTP + submission + the HTTPS TWM endpoint with
 * a private-CA certificate), c.test is legacy-only. All discovery goes
 * through the embedded DNS server (MX, SPF, DKIM, DMARC, SRV, key records).
 *
 * Covered: allowed delivery (notice -> fetch -> INBOX -> receipt ->
 * delivered); a stranger's notice (contact request with the intro, no body
 * stored) then approval and fetch; legacy SMTP; DKIM added only where a
 * message leaves by SMTP (a TWM copy carries none); an unknown recipient (DSN);
 * a revealed decline; expiry with its status message; a sender that is down
 * during the fetch (retried); a forged notice (refused, counted, nothing
 * stored); an ownership confirmation from an expected sender in strict mode.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { noticeToJson } from '../src/core/twm-schema.ts';
import { signRequest } from '../src/core/twm-signature.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS } from '../src/core/twm-types.ts';
import { commonFreePort, eventually, submit, type TestServer } from './helpers/server.ts';
import { cli } from './helpers/cli.ts';
import { createTwmLab, dkimResults, startDomain, type TwmLab } from './helpers/twm.ts';

describe('Two-Way Mail between servers', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  let d: TestServer;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']);
    // b retries fetches quickly (a sender that is down during a fetch).
    const fast = (t: string) => t.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, edit: fast });
    c = await startDomain({ lab, dns, domain: 'c.test', host: '127.0.0.4', smtpPort: port, twm: false });
    // d.test sends notices that expire after 6 seconds.
    d = await startDomain({ lab, dns, domain: 'd.test', host: '127.0.0.5', smtpPort: port, twmToml: 'expiry = "6s"' });
    await a.server.services.accounts.add('ann@a.test', 'ann-password', 'open');
    for (const name of ['sam', 'rex', 'tom', 'shop']) await a.server.services.accounts.add(`${name}@a.test`, `${name}-password`, 'open');
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
    await b.server.services.accounts.add('ben@b.test', 'ben-password', 'strict');
    await c.server.services.accounts.add('carl@c.test', 'carl-password', 'open');
    await d.server.services.accounts.add('dan@d.test', 'dan-password', 'open');
  });
  after(async () => {
    for (const t of [a, b, c, d]) await t?.close();
    await dns?.close();
    lab?.close();
  });

  const user = (t: TestServer, address: string) => t.server.services.accounts.get(address);
  const findMail = async (t: TestServer, address: string, subject: string) => {
    const u = await user(t, address);
    return (await t.server.services.mail.list(u.id)).find((m) => m.subject === subject);
  };
  const sentStatus = async (t: TestServer, address: string, recipient: string) => {
    const u = await user(t, address);
    for (const m of await t.server.services.sent.list(u)) {
      const r = m.recipients.find((x) => x.recipient === recipient);
      if (r) return r;
    }
    return undefined;
  };

  it('delivers to an allowed recipient by notice, fetch and receipt; the sender sees "delivered"', async () => {
    await b.server.services.contacts.allow((await user(b, 'bea@b.test')).id, 'ann@a.test');
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'ann@a.test', pass: 'ann-password', to: 'bea@b.test', subject: 'twm hello' });
    const got = await eventually(() => findMail(b, 'bea@b.test', 'twm hello'), 20_000, 'TWM delivery to b');
    assert.equal(got.mailbox, 'INBOX');
    const raw = (await b.server.services.mail.get((await user(b, 'bea@b.test')).id, got.id)).raw.toString();
    assert.match(raw, /^Received: from twm\.a\.test:\d+\r\n\tby mx\.b\.test \(twoway\) with TWM id [A-Za-z0-9_-]{22}/);
    assert.doesNotMatch(raw, /by mx\.b\.test \(twoway\) with ESMTP/, 'not by SMTP');
    const status = await eventually(async () => (await sentStatus(a, 'ann@a.test', 'bea@b.test'))?.status === 'delivered' && (await sentStatus(a, 'ann@a.test', 'bea@b.test')), 10_000, 'delivered receipt');
    assert.equal(status.via, 'twm');
    // The body is gone from the sender's outbox once every recipient is final.
    await eventually(async () => (await a.server.store.twmOut.get(status.noticeId!))?.bodyRemoved, 5_000, 'body removed');
  });

  it("a stranger's notice costs no body: a contact request with the intro; approval fetches it", async () => {
    const raw = Buffer.from(
      'From: sam@a.test\r\nTo: bea@b.test\r\nSubject: may I write?\r\nTWM-Intro: Hi Bea, we met at the conference.\r\n\r\nThe long message.\r\n',
    );
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'sam@a.test', pass: 'sam-password', to: 'bea@b.test', raw });
    const bea = await user(b, 'bea@b.test');
    const request = await eventually(async () => (await b.server.services.screener.list(bea.id)).find((r) => r.sender === 'sam@a.test'), 20_000, 'contact request');
    assert.equal(request.intro, 'Hi Bea, we met at the conference.');
    assert.equal(request.authDomain, 'a.test');
    assert.equal(request.held, 0);
    assert.equal(await findMail(b, 'bea@b.test', 'may I write?'), undefined, 'no body fetched or stored');
    // The recipient records the request before its answer reaches the sender, so wait for the answer.
    await eventually(async () => (await sentStatus(a, 'sam@a.test', 'bea@b.test'))?.status === 'pending', 10_000, 'pending at the sender');

    await b.server.services.screener.approve(bea.id, ['sam@a.test']);
    const got = await eventually(() => findMail(b, 'bea@b.test', 'may I write?'), 20_000, 'fetch after approval');
    assert.equal(got.mailbox, 'INBOX');
    await eventually(async () => (await sentStatus(a, 'sam@a.test', 'bea@b.test'))?.status === 'delivered', 10_000, 'delivered after approval');
  });

  it('a legacy-only domain gets SMTP', async () => {
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'ann@a.test', pass: 'ann-password', to: 'carl@c.test', subject: 'smtp to carl' });
    const got = await eventually(() => findMail(c, 'carl@c.test', 'smtp to carl'), 20_000, 'SMTP delivery to c');
    const raw = (await c.server.services.mail.get((await user(c, 'carl@c.test')).id, got.id)).raw.toString();
    assert.match(raw, /with ESMTPS/);
    const status = await eventually(async () => (await sentStatus(a, 'ann@a.test', 'carl@c.test'))?.status === 'delivered' && sentStatus(a, 'ann@a.test', 'carl@c.test'), 10_000, 'status');
    assert.equal(status!.via, 'queue');
    assert.equal((await a.server.store.twmOut.listBySender('ann@a.test')).filter((n) => n.domain === 'c.test').length, 0);
  });

  it('DKIM at the SMTP hand-off only: one message to a legacy and a TWM domain is signed (RSA and Ed25519) over SMTP, not over TWM nor in Sent', async () => {
    await b.server.services.contacts.allow((await user(b, 'bea@b.test')).id, 'ann@a.test');
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'ann@a.test', pass: 'ann-password', to: ['carl@c.test', 'bea@b.test'], subject: 'both ways' });
    const bySmtp = await eventually(() => findMail(c, 'carl@c.test', 'both ways'), 20_000, 'SMTP delivery to c');
    const smtpRaw = (await c.server.services.mail.get((await user(c, 'carl@c.test')).id, bySmtp.id)).raw.toString();
    assert.match(smtpRaw, /with ESMTPS/);
    // What c stored (its trace fields above the signatures) verifies against a.test's published keys.
    assert.deepEqual(await dkimResults(dns, smtpRaw), ['a.test ed25519-sha256 pass', 'a.test rsa-sha256 pass']);
    assert.match(smtpRaw, /dkim=pass[^;]*header\.a=rsa-sha256/, "c's own authentication saw them too");

    const byTwm = await eventually(() => findMail(b, 'bea@b.test', 'both ways'), 20_000, 'TWM delivery to b');
    const twmRaw = (await b.server.services.mail.get((await user(b, 'bea@b.test')).id, byTwm.id)).raw.toString();
    assert.match(twmRaw, /with TWM id/);
    assert.doesNotMatch(twmRaw, /^DKIM-Signature:/im, 'the notice authenticates a.test; the served body carries no DKIM');
    const ann = await user(a, 'ann@a.test');
    const sent = (await a.server.services.mail.list(ann.id)).find((m) => m.mailbox === 'Sent' && m.subject === 'both ways');
    assert.ok(sent);
    assert.doesNotMatch((await a.server.services.mail.get(ann.id, sent.id)).raw.toString(), /^DKIM-Signature:/im, 'the Sent copy is the message as submitted');
  });

  it('an unknown recipient fails at notice time with a DSN to the sender', async () => {
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'ann@a.test', pass: 'ann-password', to: 'nobody@b.test', subject: 'to nobody twm' });
    const dsn = await eventually(async () => {
      const ann = await user(a, 'ann@a.test');
      return (await a.server.services.mail.list(ann.id)).find((m) => /Undelivered/i.test(m.subject ?? ''));
    }, 20_000, 'DSN');
    const raw = (await a.server.services.mail.get((await user(a, 'ann@a.test')).id, dsn.id)).raw.toString();
    assert.match(raw, /nobody@b\.test/);
    assert.match(raw, /unknown recipient/);
    assert.equal((await sentStatus(a, 'ann@a.test', 'nobody@b.test'))?.status, 'failed');
  });

  const submitAs = (name: string, to: string, subject: string, raw?: Buffer) =>
    submit({ port: a.server.submission!.port, host: '127.0.0.2', user: `${name}@a.test`, pass: `${name}-password`, to, subject, ...(raw ? { raw } : {}) });

  it('a denial is revealed as "declined" only when the recipient chose so', async () => {
    await b.server.services.accounts.setRevealDeclined('bea@b.test', true);
    await submitAs('rex', 'bea@b.test', 'from rex');
    await eventually(async () => (await sentStatus(a, 'rex@a.test', 'bea@b.test'))?.status === 'pending', 20_000, 'pending');
    await b.server.services.screener.deny((await user(b, 'bea@b.test')).id, ['rex@a.test']);
    await eventually(async () => (await sentStatus(a, 'rex@a.test', 'bea@b.test'))?.status === 'declined', 15_000, 'declined receipt');
    assert.equal(await findMail(b, 'bea@b.test', 'from rex'), undefined, 'never fetched');
    await b.server.services.accounts.setRevealDeclined('bea@b.test', false);
  });

  it('a sender that is down during the fetch is retried until it answers', async () => {
    await submitAs('tom', 'bea@b.test', 'from tom');
    await eventually(async () => (await sentStatus(a, 'tom@a.test', 'bea@b.test'))?.status === 'pending', 20_000, 'pending');
    // a.test's endpoint "goes down": its SRV target now resolves to an address where nothing listens.
    dns.remove('twm.a.test', 'A');
    dns.add([{ name: 'twm.a.test', type: 'A', ttl: 1, data: '127.0.0.9' }]);
    await new Promise((r) => setTimeout(r, 1_100));
    const bea = await user(b, 'bea@b.test');
    await b.server.services.screener.approve(bea.id, ['tom@a.test']);
    const failing = await eventually(async () => {
      const rows = await b.server.store.twmIn.forUser(bea.id, { senders: ['tom@a.test'] }, ['scheduled'], new Date());
      return rows.find((r) => r.recipient.attempts > 0)?.recipient;
    }, 15_000, 'a failed fetch attempt');
    assert.match(failing.lastError ?? '', /refused|ECONNREFUSED|unreachable|no target/i);
    assert.equal(await findMail(b, 'bea@b.test', 'from tom'), undefined);
    // Back up: the next retry fetches the body.
    dns.remove('twm.a.test', 'A');
    dns.add([{ name: 'twm.a.test', type: 'A', ttl: 1, data: '127.0.0.2' }]);
    const got = await eventually(() => findMail(b, 'bea@b.test', 'from tom'), 20_000, 'fetch after the sender came back');
    assert.equal(got.mailbox, 'INBOX');
    await eventually(async () => (await sentStatus(a, 'tom@a.test', 'bea@b.test'))?.status === 'delivered', 10_000, 'delivered');
  });

  it('an ownership confirmation from an expected sender reaches a strict INBOX over TWM and uses up the entry', async () => {
    const ben = await user(b, 'ben@b.test');
    await b.server.services.contacts.expect(ben.id, 'a.test', { forMs: 3_600_000, uses: 1 });
    const confirm = (subject: string) =>
      Buffer.from(`From: shop@a.test\r\nTo: ben@b.test\r\nSubject: ${subject}\r\nTWM-Purpose: ownership-confirmation\r\n\r\nClick to confirm.\r\n`);
    await submitAs('shop', 'ben@b.test', 'confirm 1', confirm('confirm 1'));
    const got = await eventually(() => findMail(b, 'ben@b.test', 'confirm 1'), 20_000, 'confirmation delivered');
    assert.equal(got.mailbox, 'INBOX');
    assert.equal(got.firstContact, true);
    // The one use is gone: the next confirmation is a contact request, its body not fetched.
    await eventually(async () => !(await b.server.services.contacts.list(ben.id)).some((c) => c.vcard.includes('X-TWOWAY-EXPECT')), 5_000, 'use consumed');
    await submitAs('shop', 'ben@b.test', 'confirm 2', confirm('confirm 2'));
    await eventually(async () => (await sentStatus(a, 'shop@a.test', 'ben@b.test'))?.status === 'pending', 20_000, 'second one pending');
    assert.equal(await findMail(b, 'ben@b.test', 'confirm 2'), undefined);
    assert.equal((await b.server.services.contacts.list(ben.id)).some((c) => c.vcard.includes('EMAIL')), false, 'the sender did not become a contact');
  });

  it('notices expire: the recipient forgets them, the sender sees "expired" and gets one status message', async () => {
    await submit({ port: d.server.submission!.port, host: '127.0.0.5', user: 'dan@d.test', pass: 'dan-password', to: 'bea@b.test', subject: 'will expire' });
    await eventually(async () => (await sentStatus(d, 'dan@d.test', 'bea@b.test'))?.status === 'pending', 20_000, 'pending');
    await new Promise((r) => setTimeout(r, 6_500));
    await d.server.twm!.outbox.sweep();
    assert.equal((await sentStatus(d, 'dan@d.test', 'bea@b.test'))?.status, 'expired');
    const dan = await user(d, 'dan@d.test');
    const msg = await eventually(async () => (await d.server.services.mail.list(dan.id)).find((m) => m.subject === 'Delivery status: will expire'), 5_000, 'status message');
    assert.equal(msg.mailbox, 'INBOX');
    await d.server.twm!.outbox.sweep();
    assert.equal((await d.server.services.mail.list(dan.id)).filter((m) => m.subject === 'Delivery status: will expire').length, 1, 'only one');
    // Approving now fetches nothing: the notice expired.
    await b.server.services.screener.approve((await user(b, 'bea@b.test')).id, ['dan@d.test']);
    await b.server.twm!.fetchWorker!.drain();
    assert.equal(await findMail(b, 'bea@b.test', 'will expire'), undefined);
  });

  it('the sender sees TWM status with `twoway sent`, the API (own mail only) and `twoway dns` prints the records', async () => {
    const twoway = async (args: string[]) => {
      const r = await cli([...args, '--config', a.server.config.file!]);
      return { status: r.code, stdout: r.out, stderr: r.err };
    };
    const listed = await twoway(['sent', 'list', 'ann@a.test', '--json']);
    assert.equal(listed.status, 0, listed.stderr);
    const messages = JSON.parse(listed.stdout) as Array<{ messageId: string; recipients: Array<{ recipient: string; via: string; status: string }> }>;
    const hello = messages.find((m) => m.recipients.some((r) => r.recipient === 'bea@b.test' && r.via === 'twm' && r.status === 'delivered'));
    assert.ok(hello, 'the TWM delivery to bea is listed as delivered');
    const one = await twoway(['sent', 'status', 'ann@a.test', hello.messageId]);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /bea@b\.test +twm +delivered/);
    const missing = await twoway(['sent', 'status', 'sam@a.test', hello.messageId]);
    assert.deepEqual([missing.status, missing.stderr.trim()], [4, `twoway: No sent message ${hello.messageId}`], "another user's message does not exist for sam");
    const dnsOut = await twoway(['dns']);
    assert.match(dnsOut.stdout, /_twoway\._tcp\.a\.test\.\t3600\tIN\tSRV\t10 10 \d+ twm\.a\.test\./);
    assert.match(dnsOut.stdout, /twm1\._twoway\.a\.test\.\t3600\tIN\tTXT\t"v=TWM1; k=ed25519; p=[A-Za-z0-9+/]{43}="/);

    const agent = new Agent({ connect: { ca: readFileSync(a.server.config.tls.cert, 'utf8') } });
    try {
      const get = async (path: string, who: string) => {
        const res = await request(`${a.server.http.url}${path}`, { dispatcher: agent, headers: { authorization: `Basic ${Buffer.from(`${who}@a.test:${who}-password`).toString('base64')}` } });
        return { status: res.statusCode, body: (await res.body.json()) as { items?: Array<{ messageId: string }>; recipients?: unknown[] } };
      };
      const mine = await get('/api/sent', 'ann');
      assert.equal(mine.status, 200);
      assert.ok(mine.body.items!.some((m) => m.messageId === hello.messageId));
      assert.equal((await get(`/api/sent/${encodeURIComponent(hello.messageId)}`, 'ann')).status, 200);
      assert.equal((await get(`/api/sent/${encodeURIComponent(hello.messageId)}`, 'sam')).status, 404, "sam cannot see ann's message");
      assert.ok(!(await get('/api/sent', 'sam')).body.items!.some((m) => m.messageId === hello.messageId));
    } finally {
      await agent.close();
    }
  });

  it('a forged notice is refused before anything is stored, and counted', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const body = noticeToJson({
      id: 'forgedforgedforgedforged',
      from: 'ann@a.test',
      to: ['bea@b.test'],
      size: 10,
      sha256: '0'.repeat(64),
      created: now,
      expires: new Date(now.getTime() + 3_600_000),
    });
    const authority = b.server.twm!.authority;
    const headers = signRequest({
      method: 'POST',
      targetUri: `https://${authority}${TWM_PATHS.notice}`,
      authority,
      contentType: TWM_MEDIA_TYPES.notice,
      body,
      keyid: 'twm1._twoway.a.test',
      privateKey,
      created: now,
    });
    const agent = new Agent({ connect: { ca: lab.ca.cert, servername: 'twm.b.test' } });
    try {
      const res = await request(`https://127.0.0.3:${b.server.twm!.port}${TWM_PATHS.notice}`, {
        method: 'POST',
        dispatcher: agent,
        headers: { host: authority, 'content-type': TWM_MEDIA_TYPES.notice, ...headers },
        body,
      });
      assert.equal(res.statusCode, 401);
      const problem = (await res.body.json()) as { twm_error: string };
      assert.equal(problem.twm_error, 'bad-signature');
    } finally {
      await agent.close();
    }
    assert.equal(await b.server.store.twmIn.find('a.test', 'forgedforgedforgedforged'), undefined);
    const metrics = await b.server.metrics.registry.getSingleMetricAsString('twoway_twm_refused_total');
    assert.match(metrics, /endpoint="notice",code="bad-signature"\} 1/);
  });
});
