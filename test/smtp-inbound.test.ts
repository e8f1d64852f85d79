/**
 * SMTP inbound end to end: real nodemailer client -> real server on port 0,
 * embedded DNS serving SPF, DKIM and DMARC. Covers the policy table over the
 * wire, the forged allowed sender, the recipient checks and the limits.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rawMessage, send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const friends = senderDomain('friends.test');
const strangers = senderDomain('strangers.test');

describe('SMTP inbound', () => {
  let t: TestServer;
  let port: number;
  const users: Record<string, number> = {};

  before(async () => {
    t = await startTestServer({ records: [...friends.records, ...strangers.records], extraToml: '' });
    port = t.server.smtp.port;
    const { accounts, contacts } = t.server.services;
    for (const [name, mode] of [['open', 'open'], ['screen', 'screen'], ['strict', 'strict']] as const) {
      const u = await accounts.add(`${name}@example.test`, 'password-1', mode);
      users[name] = u.id;
      await contacts.allow(u.id, 'bob@friends.test');
      await contacts.block(u.id, 'spam@strangers.test');
    }
  });
  after(() => t.close());

  const list = (user: string) => t.server.services.mail.list(users[user]!);
  const latest = async (user: string) => (await list(user)).sort((a, b) => b.id - a.id)[0];

  it('delivers an allowed, SPF-authenticated sender to INBOX in every mode', async () => {
    for (const user of ['open', 'screen', 'strict']) {
      const reply = await send({ port, from: 'bob@friends.test', to: `${user}@example.test`, subject: `spf ${user}` });
      assert.match(reply, /^250 2\.0\.0 Ok: queued as [0-9a-f]+/);
      const m = await latest(user);
      assert.equal(m?.subject, `spf ${user}`);
      assert.equal(m?.mailbox, 'INBOX');
      assert.equal(m?.firstContact, false);
    }
  });

  it('authenticates by an aligned DKIM signature when SPF fails', async () => {
    const raw = await friends.sign(rawMessage('bob@friends.test', 'screen@example.test', 'dkim only'));
    await send({ port, from: 'bob@friends.test', to: 'screen@example.test', raw, localAddress: '127.0.0.2' });
    const m = await latest('screen');
    assert.equal(m?.subject, 'dkim only');
    assert.equal(m?.mailbox, 'INBOX');
    const stored = await t.server.services.mail.get(users.screen!, m!.id);
    const text = stored.raw.toString();
    assert.match(text, /^Received: from friends\.test \(\[127\.0\.0\.2\]\)/);
    assert.match(text, /Authentication-Results: mx\.example\.test;[\s\S]*dkim=pass[\s\S]*spf=fail/);
  });

  it('never puts a forged allowed sender in the INBOX in screen mode', async () => {
    await send({ port, from: 'bob@friends.test', to: 'screen@example.test', subject: 'forged', localAddress: '127.0.0.2' });
    const m = await latest('screen');
    assert.equal(m?.subject, 'forged');
    assert.equal(m?.mailbox, 'Screener');
    const req = (await t.server.services.screener.list(users.screen!)).find((r) => r.sender === 'bob@friends.test');
    assert.equal(req?.authDomain, null, 'the forged attempt is not attributed to an authenticated domain');
  });

  it('refuses a forged allowed sender in strict mode with 550 5.7.1', async () => {
    await assert.rejects(
      send({ port, from: 'bob@friends.test', to: 'strict@example.test', subject: 'forged strict', localAddress: '127.0.0.2' }),
      (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 550 && /^550 5\.7\.1 /.test(err.response ?? ''),
    );
  });

  it('holds a stranger in the Screener in screen mode and records the request', async () => {
    await send({ port, from: 'carol@strangers.test', to: 'screen@example.test', subject: 'hello from carol' });
    await send({ port, from: 'carol@strangers.test', to: 'screen@example.test', subject: 'second try' });
    const m = await latest('screen');
    assert.equal(m?.mailbox, 'Screener');
    const req = (await t.server.services.screener.list(users.screen!)).find((r) => r.sender === 'carol@strangers.test');
    assert.equal(req?.count, 2);
    assert.equal(req?.held, 2);
    assert.equal(req?.authDomain, 'strangers.test');
    assert.equal(req?.sampleSubject, 'hello from carol');
  });

  it('delivers a stranger to INBOX marked first-contact in open mode, and lists it in the Screener history', async () => {
    await send({ port, from: 'carol@strangers.test', to: 'open@example.test', subject: 'open hello' });
    const m = await latest('open');
    assert.equal(m?.mailbox, 'INBOX');
    assert.equal(m?.firstContact, true);
    const req = (await t.server.services.screener.list(users.open!)).find((r) => r.sender === 'carol@strangers.test');
    assert.equal(req?.held, 0);
  });

  it('refuses a stranger in strict mode with an explanation', async () => {
    await assert.rejects(
      send({ port, from: 'carol@strangers.test', to: 'strict@example.test', subject: 'strict hello' }),
      (err: Error & { response?: string }) => /^550 5\.7\.1 .*contacts/i.test(err.response ?? ''),
    );
  });

  it('drops a blocked sender silently in screen mode and refuses it in strict mode', async () => {
    const before = (await list('screen')).length;
    await send({ port, from: 'spam@strangers.test', to: 'screen@example.test', subject: 'spam' });
    assert.equal((await list('screen')).length, before);
    await assert.rejects(send({ port, from: 'spam@strangers.test', to: 'strict@example.test' }), /550/);
  });

  it('gives a strict-mode recipient a transaction of its own (452 4.5.3 for the others)', async () => {
    const reply = await send({ port, from: 'bob@friends.test', to: ['screen@example.test', 'strict@example.test'], subject: 'two rcpts' });
    assert.match(reply, /^250/);
    // nodemailer reports the recipient it could not deliver to in the same transaction
    const screen = await latest('screen');
    assert.equal(screen?.subject, 'two rcpts');
    assert.notEqual((await latest('strict'))?.subject, 'two rcpts');
  });

  it('refuses unknown users, foreign domains (no relay), bad syntax, oversize and loops precisely', async () => {
    const refused = async (p: Promise<unknown>, pattern: RegExp) =>
      assert.rejects(p, (err: Error & { response?: string }) => {
        assert.match(err.response ?? err.message, pattern);
        return true;
      });
    await refused(send({ port, from: 'bob@friends.test', to: 'nobody@example.test' }), /550 5\.1\.1/);
    await refused(send({ port, from: 'bob@friends.test', to: 'victim@elsewhere.test' }), /550 5\.7\.1 Relaying denied/);
    await refused(send({ port, from: 'bob@friends.test', to: 'victim@example.test.evil.test' }), /550 5\.7\.1/);
    const big = Buffer.alloc(26 * 1024 * 1024, 'a');
    await refused(send({ port, from: 'bob@friends.test', to: 'open@example.test', text: big.toString() }), /552 5\.3\.4/);
    const loop = 'Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n'.repeat(60);
    await refused(send({ port, from: 'bob@friends.test', to: 'open@example.test', raw: Buffer.from(loop + rawMessage('bob@friends.test', 'open@example.test', 'loop').toString()) }), /554 5\.4\.6/);
  });

  it('accepts subaddresses (local+tag) for the user', async () => {
    await send({ port, from: 'bob@friends.test', to: 'open+lists@example.test', subject: 'tagged' });
    assert.equal((await latest('open'))?.subject, 'tagged');
  });

  it('looks each recipient up once, at RCPT TO, and delivers by that lookup at the end of DATA', async () => {
    const users = t.server.store.users;
    const lookups: string[] = [];
    const findByAddress = users.findByAddress.bind(users);
    users.findByAddress = async (address) => {
      lookups.push(address);
      return findByAddress(address);
    };
    try {
      await send({ port, from: 'bob@friends.test', to: ['open+x@example.test', 'screen@example.test'], subject: 'two, looked up once' });
    } finally {
      users.findByAddress = findByAddress;
    }
    // The subaddress costs two lookups (the address as given, then without its tag), the other one.
    assert.deepEqual(lookups, ['open+x@example.test', 'open@example.test', 'screen@example.test']);
    assert.equal((await latest('open'))?.subject, 'two, looked up once');
    assert.equal((await latest('screen'))?.subject, 'two, looked up once');
  });
});
