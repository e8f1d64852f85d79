/**
 * Security battery, SMTP (issue #6), counted: open-relay attempts with
 * Debian's swaks (the usual relay-test variants, on the MX listener without
 * AUTH and on submission with it), forged allowed senders (never the INBOX
 * of a screen-mode user, refused for a strict one), and oversized or deeply
 * nested MIME. Every case must be refused; the last test prints
 * `security (smtp): N cases, N refused`.
 *
 * AUTH guessing is in security-auth.test.ts, cross-user API access in
 * security-api.test.ts. CardDAV and TWM cases belong to their owners' files.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { SecurityTally } from './helpers/security-tally.ts';
import { senderDomain, startTestServer, type TestServer } from './helpers/server.ts';
import { haveSwaks, swaks } from './helpers/swaks.ts';

const LIMIT = 256 * 1024;
const tally = new SecurityTally('smtp');

describe('security battery: SMTP', { skip: haveSwaks ? false : 'swaks is not installed' }, () => {
  const friends = senderDomain('friends.test');
  // evil.test: SPF passes for 127.0.0.2, and it signs with its own DKIM key.
  const evil = senderDomain('evil.test', 'ev');
  evil.records[0] = { name: 'evil.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.2 -all' };
  // A key that friends.test does not publish, for forged friends.test signatures.
  const forger = senderDomain('friends.test', 'sel');
  let t: TestServer;
  let port: number;
  let submission: number;
  let screenId: number;

  before(async () => {
    t = await startTestServer({ records: [...friends.records, ...evil.records], edit: (toml) => toml.replace('message_size = 26214400', `message_size = ${LIMIT}`) });
    port = t.server.smtp.port;
    submission = t.server.submission!.port;
    const { accounts, contacts } = t.server.services;
    const screen = await accounts.add('screen@example.test', 'password-1', 'screen');
    screenId = screen.id;
    await contacts.allow(screen.id, 'bob@friends.test');
    const strict = await accounts.add('strict@example.test', 'password-1', 'strict');
    await contacts.allow(strict.id, 'bob@friends.test');
    await accounts.add('ann@example.test', 'ann-password', 'open');
  });
  after(() => t.close());

  const refusedWith5xx = (r: { code: number; replies: string[] }) => r.code !== 0 && r.replies.some((l) => /^5\d\d[ -]/.test(l));
  // Some refusals are not replies: AUTH before STARTTLS is simply not offered, and swaks gives up.
  const notAccepted = (r: { code: number; replies: string[] }) => r.code !== 0 && !r.replies.some((l) => /^250 2\.0\.0 Ok: queued/.test(l));

  describe('open relay', () => {
    const FOREIGN = [
      'victim@elsewhere.test',
      'victim%elsewhere.test@example.test',
      'elsewhere.test!victim@example.test',
      '"victim@elsewhere.test"@example.test',
      '"victim%elsewhere.test"@example.test',
      '"elsewhere.test!victim"@example.test',
      'victim@elsewhere.test@example.test',
      '@example.test:victim@elsewhere.test',
      '@example.test,@mx.example.test:victim@elsewhere.test',
      'victim@[127.0.0.1]',
      'victim@[IPv6:::1]',
      'victim@elsewhere.test.',
      'victim@example.test.elsewhere.test',
      'victim@sub.example.test',
      'victim@unknown-domain-without-dots',
      'victim%elsewhere.test%example.test@example.test',
    ];

    it('refuses every relay variant on the MX listener, from a stranger, from our own domain, from <>, with AUTH attempted', async () => {
      const senders = [
        { from: 'spammer@elsewhere.test', extra: [] as string[] },
        { from: 'screen@example.test', extra: [] },
        { from: '<>', extra: [] },
        // The MX listener offers no AUTH: trying it changes nothing.
        { from: 'spammer@elsewhere.test', extra: ['--auth-optional', '--auth-user', 'ann@example.test', '--auth-password', 'ann-password'] },
      ];
      for (const s of senders) {
        for (const to of s === senders[0] ? FOREIGN : FOREIGN.slice(0, 8)) {
          const r = await swaks(port, ['--from', s.from, '--to', to, ...s.extra]);
          tally.expectRefused(`MX relay ${s.from} -> ${to}${s.extra.length ? ' (AUTH tried)' : ''}`, refusedWith5xx(r), r.out);
        }
      }
    });

    it('refuses relaying on submission without AUTH, and with AUTH for senders or From: the user does not own', async () => {
      const ann = ['--tls', '--auth', 'PLAIN', '--auth-user', 'ann@example.test', '--auth-password', 'ann-password'];
      const cases: Array<[string, string[]]> = [
        ['submission without AUTH', ['--tls', '--from', 'ann@example.test', '--to', 'victim@elsewhere.test']],
        ['submission AUTH before STARTTLS', ['--auth', 'PLAIN', '--auth-user', 'ann@example.test', '--auth-password', 'ann-password', '--from', 'ann@example.test', '--to', 'victim@elsewhere.test']],
        ['submission AUTH, foreign MAIL FROM', [...ann, '--from', 'spammer@elsewhere.test', '--to', 'victim@elsewhere.test']],
        ['submission AUTH, another local user as MAIL FROM', [...ann, '--from', 'screen@example.test', '--to', 'victim@elsewhere.test']],
        ['submission AUTH, <> as MAIL FROM', [...ann, '--from', '<>', '--to', 'victim@elsewhere.test']],
        ['submission AUTH, foreign From: header', [...ann, '--from', 'ann@example.test', '--to', 'victim@elsewhere.test', '--header', 'From: ceo@elsewhere.test']],
        ['submission AUTH, percent-hack MAIL FROM', [...ann, '--from', 'ann%elsewhere.test@example.test', '--to', 'victim@elsewhere.test']],
      ];
      for (const [name, args] of cases) {
        const r = await swaks(submission, args);
        tally.expectRefused(name, notAccepted(r), r.out);
      }
    });

    it('queued and stored nothing for any of them', async () => {
      assert.deepEqual(await t.server.services.queue.list(), []);
      for (const u of ['screen@example.test', 'strict@example.test', 'ann@example.test']) {
        const user = await t.server.services.accounts.get(u);
        assert.deepEqual(await t.server.services.mail.list(user.id), [], u);
      }
    });
  });

  describe('forged allowed senders', () => {
    const date = 'Date: Mon, 1 Jan 2024 10:00:00 +0000';
    const msg = (from: string, subject: string, extra = '') => Buffer.from(`From: ${from}\r\nTo: screen@example.test\r\nSubject: ${subject}\r\n${date}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@x>\r\n${extra}\r\nHello, it is really me.\r\n`);

    type Forgery = { name: string; envelope: string; ip: string; raw: (subject: string) => Promise<Buffer> };
    const forgeries: Forgery[] = [
      { name: 'SPF fails (wrong IP), no DKIM', envelope: 'bob@friends.test', ip: '127.0.0.2', raw: async (s) => msg('bob@friends.test', s) },
      { name: 'upper-case From:, SPF fails', envelope: 'BOB@FRIENDS.TEST', ip: '127.0.0.2', raw: async (s) => msg('Bob <BOB@FRIENDS.TEST>', s) },
      { name: 'SPF passes for evil.test (MAIL FROM), From: bob (not aligned)', envelope: 'eve@evil.test', ip: '127.0.0.2', raw: async (s) => msg('bob@friends.test', s) },
      { name: 'DKIM pass for evil.test, From: bob (not aligned)', envelope: 'eve@evil.test', ip: '127.0.0.2', raw: async (s) => evil.sign(msg('bob@friends.test', s)) },
      { name: 'DKIM signature claiming friends.test with a key it does not publish', envelope: 'bob@friends.test', ip: '127.0.0.2', raw: async (s) => forger.sign(msg('bob@friends.test', s)) },
      { name: "friends.test's valid signature, From: changed afterwards", envelope: 'bob@friends.test', ip: '127.0.0.2', raw: async (s) => Buffer.from((await friends.sign(msg('eve@evil.test', s))).toString('latin1').replace('From: eve@evil.test', 'From: bob@friends.test'), 'latin1') },
      { name: 'display name holding the allowed address', envelope: 'eve@evil.test', ip: '127.0.0.2', raw: async (s) => msg('"bob@friends.test" <eve@evil.test>', s) },
      { name: 'encoded-word display name holding the allowed address', envelope: 'eve@evil.test', ip: '127.0.0.2', raw: async (s) => msg('=?utf-8?B?Ym9iQGZyaWVuZHMudGVzdA==?= <eve@evil.test>', s) },
      { name: 'two addresses in From:', envelope: 'eve@evil.test', ip: '127.0.0.2', raw: async (s) => evil.sign(msg('bob@friends.test, eve@evil.test', s)) },
      { name: 'two From: fields', envelope: 'eve@evil.test', ip: '127.0.0.2', raw: async (s) => evil.sign(msg('bob@friends.test', s, 'From: eve@evil.test\r\n')) },
      { name: 'Sender: of the allowed address, From: a stranger', envelope: 'bob@friends.test', ip: '127.0.0.2', raw: async (s) => msg('eve@evil.test', s, 'Sender: bob@friends.test\r\n') },
      { name: 'look-alike subdomain friends.test.evil.test', envelope: 'eve@evil.test', ip: '127.0.0.2', raw: async (s) => msg('bob@friends.test.evil.test', s) },
      { name: 'null envelope sender, From: bob, SPF fails', envelope: '<>', ip: '127.0.0.2', raw: async (s) => msg('bob@friends.test', s) },
      { name: 'From: bob with a comment and SPF fail', envelope: 'bob@friends.test', ip: '127.0.0.2', raw: async (s) => msg('bob@friends.test (Bob)', s) },
    ];

    async function deliver(to: string, f: Forgery, subject: string) {
      const raw = await f.raw(subject);
      return swaks(port, ['--local-interface', f.ip, '--from', f.envelope, '--to', to, '--helo', 'evil.test', '--data', raw.toString('latin1').replace(/\r\n/g, '\n')]);
    }

    it('control: the real Bob reaches the INBOX (so the forgeries below are screened for the forgery alone)', async () => {
      const r = await swaks(port, ['--from', 'bob@friends.test', '--to', 'screen@example.test', '--data', (await friends.sign(msg('bob@friends.test', 'genuine bob'))).toString('latin1').replace(/\r\n/g, '\n')]);
      assert.equal(r.code, 0, r.out);
      const m = (await t.server.services.mail.list(screenId)).find((x) => x.subject === 'genuine bob');
      assert.equal(m?.mailbox, 'INBOX');
    });

    it('never delivers a forgery to the INBOX of a screen-mode user', async () => {
      for (const [i, f] of forgeries.entries()) {
        const subject = `forgery ${i}`;
        const r = await deliver('screen@example.test', f, subject);
        const m = (await t.server.services.mail.list(screenId)).find((x) => x.subject === subject);
        // Accepted into the Screener, or refused outright: both keep it out of the INBOX.
        tally.expectRefused(`forged sender (screen): ${f.name}`, m ? m.mailbox !== 'INBOX' : refusedWith5xx(r), `${m?.mailbox}\n${r.out}`);
      }
    });

    it('refuses forgeries for a strict-mode user with 550 5.7.1', async () => {
      for (const f of forgeries.slice(0, 6)) {
        const r = await deliver('strict@example.test', f, `strict ${f.name}`);
        tally.expectRefused(`forged sender (strict): ${f.name}`, r.code !== 0 && r.replies.some((l) => /^550 5\.7\.1 /.test(l)), r.out);
      }
    });
  });

  describe('oversized and deeply nested MIME', () => {
    async function transaction(data: Buffer, mailFrom = 'MAIL FROM:<x@elsewhere.test>'): Promise<string> {
      const { client } = await RawSmtp.open(port);
      try {
        await client.command('EHLO elsewhere.test');
        const mail = await client.command(mailFrom);
        if (!mail.startsWith('250')) return mail;
        await client.command('RCPT TO:<screen@example.test>');
        const go = await client.command('DATA');
        if (!go.startsWith('354')) return go;
        client.write(Buffer.concat([data, Buffer.from('\r\n.\r\n')]));
        return await client.reply(20_000);
      } finally {
        client.close();
      }
    }
    const nested = (depth: number, type: 'multipart' | 'message') => {
      let part = 'Content-Type: text/plain\r\n\r\ncore\r\n';
      for (let d = depth; d > 0; d--) {
        part = type === 'multipart' ? `Content-Type: multipart/mixed; boundary="b${d}"\r\n\r\n--b${d}\r\n${part}\r\n--b${d}--\r\n` : `Content-Type: message/rfc822\r\n\r\nSubject: level ${d}\r\n${part}`;
      }
      return Buffer.from(`From: x@elsewhere.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n${part}`);
    };

    it('refuses oversized and deeply nested messages with precise 5xx replies', async () => {
      const cases: Array<[string, () => Promise<string>, RegExp]> = [
        ['SIZE= above the limit', () => transaction(Buffer.from('x'), `MAIL FROM:<x@elsewhere.test> SIZE=${LIMIT + 1}`), /^552 5\.3\.4 /],
        ['data above the limit', () => transaction(Buffer.from(`Subject: big\r\n\r\n${'0123456789abcdef\r\n'.repeat(LIMIT / 16)}`)), /^552 5\.3\.4 /],
        ['one header line above the limit', () => transaction(Buffer.from(`X-Big: ${'a'.repeat(LIMIT + 10)}\r\n\r\nx`)), /^552 5\.3\.4 /],
        ['multipart nested 101 deep', () => transaction(nested(101, 'multipart')), /^554 5\.6\.0 /],
        ['multipart nested 1,000 deep', () => transaction(nested(1000, 'multipart')), /^554 5\.6\.0 /],
        ['message/rfc822 nested 500 deep', () => transaction(nested(500, 'message')), /^554 5\.6\.0 /],
        ['a Received loop (60 fields)', () => transaction(Buffer.from(`${'Received: from a by b; Mon, 1 Jan 2024 10:00:00 +0000\r\n'.repeat(60)}Subject: loop\r\n\r\nx`)), /^554 5\.4\.6 /],
      ];
      for (const [name, run, expected] of cases) {
        const reply = await run();
        tally.expectRefused(`MIME: ${name}`, expected.test(reply), reply);
      }
      // Nesting within the limit is ordinary mail.
      assert.match(await transaction(nested(20, 'multipart')), /^250 /);
    });
  });

  it('summary: every case refused', (tc) => tally.report((l) => tc.diagnostic(l)));
});
