/**
 * Security: the author identity (issue 17, item 2 and parts of item 6).
 *
 * A forged From: of an allowed contact must never reach INBOX: the From:
 * address the policy matches must be the very identity whose domain is
 * checked for DMARC alignment, and a From: without exactly one undisputed
 * mailbox is never "allowed". Real SMTP to a real server with the embedded
 * DNS: evil.test's SPF passes for 127.0.0.2 (the attacker's own, honest
 * domain), friends.test's for 127.0.0.1 only. On SQLite and PostgreSQL.
 *
 * Also: DMARC alignment uses the Public Suffix List (`evil.sch.uk` is not
 * `school.sch.uk`'s organisation), a blocked sender written with a trailing
 * dot is still blocked, an IDN envelope sender authenticates (SPF asks for
 * the A-label), addresses over RFC 5321's limits get precise replies, and
 * submission refuses a From: that is not exactly one of the user's
 * addresses (SMTP and the API share the check).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import { organizationalDomain } from '../src/core/address.ts';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { createResolver } from '../src/dns/resolver.ts';
import { createAuthenticator } from '../src/mail/authenticate.ts';
import { messageFacts, parseHeaders } from '../src/mail/headers.ts';
import { pgSchema, pgSkipReason, type PgSchema } from './helpers/pg-schema.ts';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const DEL = '\x7f';
/** The attack of issue 17 item 2, byte for byte. */
const ATTACK_FROM = `eve${DEL}@evil.test, g: friend@friends.test;`;

function message(from: string, subject: string, extra = ''): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: someone@example.test\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@test>\r\n${extra}\r\nBody of ${subject}.\r\n`,
    'utf8',
  );
}

/** One SMTP transaction with exact bytes; resolves with the last reply (whatever its code). */
async function transact(port: number, o: { ip: string; mailFrom: string; rcpt: string; raw?: Buffer; params?: string }): Promise<string> {
  const { client } = await RawSmtp.open(port, o.ip);
  try {
    await client.command('EHLO client.test');
    const mail = await client.command(Buffer.from(`MAIL FROM:<${o.mailFrom}>${o.params ?? ''}\r\n`, 'utf8'));
    if (!mail.startsWith('250')) return mail;
    const rcpt = await client.command(Buffer.from(`RCPT TO:<${o.rcpt}>\r\n`, 'utf8'));
    if (!rcpt.startsWith('250') || !o.raw) return rcpt;
    const data = await client.command('DATA');
    if (!data.startsWith('354')) return data;
    const body = o.raw.toString('latin1').replace(/\r\n\./g, '\r\n..');
    client.write(Buffer.concat([Buffer.from(body, 'latin1'), Buffer.from('\r\n.\r\n')]));
    return await client.reply(30_000);
  } finally {
    client.close();
  }
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`security: the From: identity (${backend})`, async () => {
    const skip = backend === 'postgres' ? await pgSkipReason() : false;
    const friends = senderDomain('friends.test');
    const evil = senderDomain('evil.test', 'ev');
    evil.records[0] = { name: 'evil.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.2 -all' };
    let t: TestServer;
    let schema: PgSchema | undefined;
    let port: number;
    const ids: Record<string, number> = {};

    before(async () => {
      if (skip) return;
      schema = backend === 'postgres' ? pgSchema('sec_from') : undefined;
      t = await startTestServer({
        records: [
          ...friends.records,
          ...evil.records,
          { name: 'blocked.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
          // bücher.test as its A-label: what DNS holds for an IDN.
          { name: 'xn--bcher-kva.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
        ],
        storage: schema?.url,
      });
      port = t.server.smtp.port;
      const { accounts, contacts } = t.server.services;
      for (const [name, mode] of [['screen', 'screen'], ['strict', 'strict'], ['domain', 'screen'], ['expect', 'screen'], ['open', 'open'], ['idn', 'screen']] as const) {
        ids[name] = (await accounts.add(`${name}@example.test`, 'password-1', mode)).id;
      }
      await contacts.allow(ids.screen!, 'friend@friends.test');
      await contacts.allow(ids.strict!, 'friend@friends.test');
      await contacts.allow(ids.open!, 'friend@friends.test');
      await contacts.allow(ids.domain!, '@friends.test');
      await contacts.expect(ids.expect!, 'friends.test', { forMs: 3_600_000, uses: 5 });
      await contacts.block(ids.screen!, '@blocked.test');
      await contacts.allow(ids.idn!, 'anna@bücher.test');
    });
    after(async () => {
      await t?.close();
      await schema?.drop();
    });

    const latest = async (user: string) => (await t.server.services.mail.list(ids[user]!)).sort((a, b) => b.id - a.id)[0];
    const count = async (user: string) => (await t.server.services.mail.list(ids[user]!)).length;

    /** Sends as the attacker (127.0.0.2, SPF pass for evil.test) and returns the reply. */
    const attack = (user: string, from: string, subject: string, extra = '') =>
      transact(port, { ip: '127.0.0.2', mailFrom: 'eve@evil.test', rcpt: `${user}@example.test`, raw: message(from, subject, extra) });

    it('a genuine contact still reaches INBOX (the test can tell)', { skip }, async () => {
      for (const user of ['screen', 'strict', 'domain']) {
        const reply = await transact(port, { ip: '127.0.0.1', mailFrom: 'friend@friends.test', rcpt: `${user}@example.test`, raw: message('Friend <friend@friends.test>', `genuine ${user}`) });
        assert.match(reply, /^250 /, user);
        const m = await latest(user);
        assert.equal(m?.subject, `genuine ${user}`);
        assert.equal(m?.mailbox, 'INBOX', user);
      }
    });

    it('the DEL-and-group forgery goes to the Screener (contact allow, domain allow), is refused in strict, first contact in open', { skip }, async () => {
      for (const user of ['screen', 'domain']) {
        assert.match(await attack(user, ATTACK_FROM, `forged ${user}`), /^250 /);
        const m = await latest(user);
        assert.equal(m?.subject, `forged ${user}`);
        assert.equal(m?.mailbox, 'Screener', `${user}: a forged contact must not reach INBOX`);
      }
      assert.match(await attack('strict', ATTACK_FROM, 'forged strict'), /^550 5\.7\.1 /);
      assert.match(await attack('open', ATTACK_FROM, 'forged open'), /^250 /);
      const open = await latest('open');
      assert.equal(open?.mailbox, 'INBOX');
      assert.equal(open?.firstContact, true, 'open mode: a first contact, not a known one');
    });

    it('the forgery does not use an expected-sender entry', { skip }, async () => {
      assert.match(await attack('expect', ATTACK_FROM, 'forged confirmation', 'TWM-Purpose: ownership-confirmation\r\n'), /^250 /);
      const m = await latest('expect');
      assert.equal(m?.subject, 'forged confirmation');
      assert.equal(m?.mailbox, 'Screener');
      // The entry still has all its uses.
      const cards = await t.server.services.contacts.list(ids.expect!);
      assert.deepEqual(cards.flatMap((c) => c.entries.map((e) => [e.kind, e.value, e.expect?.uses])), [['expect', 'friends.test', 5]]);
    });

    it('no From: mailbox, several, several fields, or a lenient reading is never allowed', { skip }, async () => {
      const variants: Array<[string, Buffer]> = [
        ['two mailboxes', message('friend@friends.test, eve@evil.test', 'v1')],
        ['two fields', Buffer.from(`From: eve@evil.test\r\n${message('friend@friends.test', 'v2').toString('latin1')}`, 'latin1')],
        ['unquoted words', message('eve@evil.test friend@friends.test', 'v3')],
        ['group only', message('g: friend@friends.test;', 'v4')],
        ['route', message('<@evil.test:friend@friends.test>', 'v5')],
        ['no From:', Buffer.from(message('x', 'v6').toString('latin1').replace(/^From: x\r\n/, ''), 'latin1')],
        ['comment', message('eve@evil.test (friend@friends.test', 'v7')],
      ];
      for (const [what, raw] of variants) {
        const subject = /Subject: (v\d)/.exec(raw.toString('latin1'))![1];
        for (const user of ['screen', 'domain']) {
          const reply = await transact(port, { ip: '127.0.0.2', mailFrom: 'eve@evil.test', rcpt: `${user}@example.test`, raw });
          assert.match(reply, /^250 /, `${what} for ${user}`);
          const m = await latest(user);
          assert.equal(m?.subject, subject, what);
          assert.notEqual(m?.mailbox, 'INBOX', `${what} for ${user} reached INBOX`);
        }
        const strict = await transact(port, { ip: '127.0.0.2', mailFrom: 'eve@evil.test', rcpt: 'strict@example.test', raw });
        assert.match(strict, /^550 5\.7\.1 /, what);
      }
    });

    it('a blocked sender with a trailing dot is dropped, as without it', { skip }, async () => {
      // (smtp-server itself refuses a trailing dot in MAIL FROM; the From: field is ours to read.)
      for (const from of ['x@blocked.test.', 'X <x@Blocked.Test.>']) {
        const before = await count('screen');
        assert.match(await transact(port, { ip: '127.0.0.1', mailFrom: 'x@blocked.test', rcpt: 'screen@example.test', raw: message(from, 'blocked') }), /^250 /);
        assert.equal(await count('screen'), before, `${from} was stored, not dropped`);
      }
    });

    it('an allowed IDN contact authenticates: SPF asks for the A-label', { skip }, async () => {
      const reply = await transact(port, {
        ip: '127.0.0.1',
        mailFrom: 'anna@bücher.test',
        params: ' SMTPUTF8',
        rcpt: 'idn@example.test',
        raw: message('Anna <anna@bücher.test>', 'idn contact'),
      });
      assert.match(reply, /^250 /);
      const m = await latest('idn');
      assert.equal(m?.subject, 'idn contact');
      assert.equal(m?.mailbox, 'INBOX');
    });

    it('addresses over RFC 5321 limits get precise replies, never 451', { skip }, async () => {
      // Incompressible, so PostgreSQL cannot shrink an index row under its ~2.7 KB limit.
      const long = randomBytes(3750).toString('base64url');
      assert.match(await transact(port, { ip: '127.0.0.1', mailFrom: `${long}@friends.test`, rcpt: 'screen@example.test' }), /^501 5\.1\.7 /);
      // A sender's local part over 64 octets is accepted as Postfix accepts it (VERP bounce addresses,
      // test/smtp-sender-syntax.test.ts); the whole path stays within 254 octets, so the store's rows stay small.
      assert.match(await transact(port, { ip: '127.0.0.1', mailFrom: `${'a'.repeat(65)}@friends.test`, rcpt: 'screen@example.test' }), /^250 /);
      assert.match(await transact(port, { ip: '127.0.0.1', mailFrom: `${'a'.repeat(250)}@friends.test`, rcpt: 'screen@example.test' }), /^501 5\.1\.7 /);
      assert.match(await transact(port, { ip: '127.0.0.1', mailFrom: 'friend@friends.test', rcpt: `${long}@example.test` }), /^501 5\.1\.3 /);
      // A From: over the bound has no identity: a stranger's message (Screener), not a storage error.
      assert.match(await transact(port, { ip: '127.0.0.1', mailFrom: 'friend@friends.test', rcpt: 'screen@example.test', raw: message(`${long}@friends.test`, 'long from') }), /^250 /);
      assert.equal((await latest('screen'))?.mailbox, 'Screener');
      // Submission: a MAIL FROM over the bound is bad syntax (501 5.1.7), not "not yours" (553).
      await t.server.services.accounts.add(`${'b'.repeat(64)}@example.test`, 'password-1', 'open');
      const { default: nodemailer } = await import('nodemailer');
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: t.server.submission!.port,
        auth: { user: 'open@example.test', pass: 'password-1' },
        requireTLS: true,
        tls: { rejectUnauthorized: false },
      });
      try {
        await assert.rejects(
          transport.sendMail({ envelope: { from: `${'b'.repeat(65)}@example.test`, to: ['screen@example.test'] }, raw: message('open@example.test', 'x') }),
          (err: Error & { response?: string }) => /^501 5\.1\.7 /.test(err.response ?? '') || assert.fail(err.response ?? err.message),
        );
      } finally {
        transport.close();
      }
    });
  });
}

describe('security: submission refuses a From: that is not exactly one of the user\'s addresses', () => {
  let t: TestServer;
  let agent: Agent;
  before(async () => {
    t = await startTestServer();
    await t.server.services.accounts.add('ann@example.test', 'password-1', 'open');
    await t.server.services.accounts.add('bob@example.test', 'password-1', 'open');
    agent = new Agent({ connect: { ca: readFileSync(t.server.config.tls.cert, 'utf8') } });
  });
  after(async () => {
    await agent.close();
    await t.close();
  });

  const BAD = [
    ['DEL', `ann${DEL}@example.test`],
    ['encoded word', '=?utf-8?q?ann=40example.test?='],
    ['no @', 'ann'],
    ['fullwidth @', 'ann\uff20example.test'],
    ['two mailboxes', 'ann@example.test, bob@example.test'],
    ['group', 'g: ann@example.test;'],
    ['words', 'ann@example.test bob@example.test'],
    ['too long', `${'a'.repeat(3000)}@example.test`],
  ] as const;

  it('over SMTP submission: 553 5.7.1, nothing queued', async () => {
    const { default: nodemailer } = await import('nodemailer');
    for (const [what, from] of BAD) {
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: t.server.submission!.port,
        auth: { user: 'ann@example.test', pass: 'password-1' },
        requireTLS: true,
        tls: { rejectUnauthorized: false },
      });
      try {
        await assert.rejects(
          transport.sendMail({ envelope: { from: 'ann@example.test', to: ['bob@example.test'] }, raw: message(from, what) }),
          (err: Error & { response?: string }) => /^553 5\.7\.1 /.test(err.response ?? '') || assert.fail(`${what}: ${err.response ?? err.message}`),
          what,
        );
      } finally {
        transport.close();
      }
    }
    assert.equal((await t.server.services.queue.list({})).length, 0);
  });

  it('over the API: 403, nothing queued; a good From: still goes', async () => {
    const auth = `Basic ${Buffer.from('ann@example.test:password-1').toString('base64')}`;
    const post = (msg: Buffer) =>
      fetch(`${t.server.http.url}/api/send`, {
        dispatcher: agent,
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ to: ['bob@example.test'], message: msg.toString('utf8') }),
      });
    for (const [what, from] of BAD) {
      const res = await post(message(from, what));
      const body = (await res.json()) as { detail?: string };
      assert.equal(res.status, 403, `${what}: ${JSON.stringify(body)}`);
    }
    assert.equal((await t.server.services.queue.list({})).length, 0);
    const ok = await post(message('Ann <ann@example.test>', 'fine'));
    assert.equal(ok.status, 202);
    await ok.arrayBuffer();
  });
});

describe('security: one identity for alignment and policy', () => {
  const friends = senderDomain('friends.test');
  const evil = senderDomain('evil.test', 'ev');
  evil.records[0] = { name: 'evil.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.2 -all' };

  it('the aligned identity is the policy\'s From: address, the same value', async () => {
    const dns = await startDnsServer({
      records: [...friends.records, ...evil.records, { name: 'evil.sch.uk', type: 'TXT', data: 'v=spf1 ip4:127.0.0.2 -all' }, { name: 'x.eu.org', type: 'TXT', data: 'v=spf1 ip4:127.0.0.2 -all' }],
    });
    try {
      const authenticate = createAuthenticator(createResolver({ servers: [dns.address] }));
      const run = async (raw: Buffer, ip: string, envelopeFrom: string) => {
        const facts = messageFacts(parseHeaders(raw));
        const auth = await authenticate({ raw, ip, helo: 'client.test', envelopeFrom, mta: 'mx.example.test', from: facts.from });
        return { facts, auth };
      };
      const good = await run(await friends.sign(message('Friend <Friend@Friends.Test>', 'ok')), '127.0.0.1', 'friend@friends.test');
      assert.equal(good.facts.from, 'friend@friends.test');
      assert.equal(good.auth.identity, good.facts.from, 'alignment was checked for the policy\'s identity');
      assert.equal(good.auth.alignedDomain, 'friends.test');

      const forged = await run(message(ATTACK_FROM, 'forged'), '127.0.0.2', 'eve@evil.test');
      assert.equal(forged.facts.from, null);
      assert.match(forged.facts.fromProblem ?? '', /control character/);
      assert.equal(forged.auth.identity, null);
      assert.equal(forged.auth.alignedDomain, null);

      // A caller that claims an identity mailauth does not read gets nothing aligned.
      const raw = message('eve@evil.test', 'disagree');
      const disagree = await authenticate({ raw, ip: '127.0.0.2', helo: 'client.test', envelopeFrom: 'eve@evil.test', mta: 'mx.example.test', from: 'friend@friends.test' });
      assert.equal(disagree.identity, null);
      assert.equal(disagree.alignedDomain, null);
      assert.match(disagree.fromProblem ?? '', /mailauth reads/);

      // Public Suffix List: sch.uk and eu.org registrants are separate organisations.
      assert.notEqual(organizationalDomain('evil.sch.uk'), organizationalDomain('school.sch.uk'));
      assert.notEqual(organizationalDomain('x.eu.org'), organizationalDomain('y.eu.org'));
      assert.equal(organizationalDomain('mail.school.sch.uk'), 'mail.school.sch.uk');
      assert.equal(organizationalDomain('a.b.co.uk'), 'b.co.uk');
      const school = await run(message('head@school.sch.uk', 'psl'), '127.0.0.2', 'x@evil.sch.uk');
      assert.equal(school.auth.spf.result, 'pass');
      assert.equal(school.auth.alignedDomain, null, 'evil.sch.uk must not align with school.sch.uk');
      const euorg = await run(message('y@y.eu.org', 'psl'), '127.0.0.2', 'x@x.eu.org');
      assert.equal(euorg.auth.spf.result, 'pass');
      assert.equal(euorg.auth.alignedDomain, null, 'x.eu.org must not align with y.eu.org');
    } finally {
      await dns.close();
    }
  });
});
