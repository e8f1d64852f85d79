/**
 * Bad input at the SMTP wire: malformed commands and addresses, 8-bit junk,
 * header injection through addresses, overlong lines. Each gets a precise
 * reply with an enhanced status code, and the server keeps serving.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { send, startTestServer, type TestServer } from './helpers/server.ts';

describe('SMTP wire: bad input', () => {
  let t: TestServer;
  let port: number;

  before(async () => {
    t = await startTestServer();
    port = t.server.smtp.port;
    await t.server.services.accounts.add('user@example.test', 'password-1', 'open');
  });
  after(() => t.close());

  async function session() {
    const { client, greeting } = await RawSmtp.open(port);
    assert.match(greeting, /^220 mx\.example\.test /);
    assert.match(await client.command('EHLO client.test'), /^250-mx\.example\.test(?=[\s\S]*STARTTLS)(?=[\s\S]*ENHANCEDSTATUSCODES)/);
    return client;
  }

  it('answers unknown and malformed commands with 5.5.x and keeps the session', async () => {
    const c = await session();
    assert.match(await c.command('FOO bar'), /^500 5\.5\.2 /);
    assert.match(await c.command('MAIL FROM bob@x.test'), /^501 5\.(5\.4|1\.7) /);
    assert.match(await c.command('RCPT TO:<user@example.test>'), /^503 5\.5\.1 /);
    assert.match(await c.command('DATA'), /^503 5\.5\.1 /);
    assert.match(await c.command('NOOP'), /^250 /);
    c.close();
  });

  it('refuses bad address syntax with 501 5.1.x', async () => {
    const c = await session();
    assert.match(await c.command('MAIL FROM:<bad address@x.test>'), /^501 /);
    assert.match(await c.command('MAIL FROM:<bob@friends.test>'), /^250 2\.1\.0/);
    assert.match(await c.command('RCPT TO:<a..b@example.test>'), /^501 5\.1\.3 /);
    assert.match(await c.command('RCPT TO:<@example.test>'), /^50[01] /);
    assert.match(await c.command('RCPT TO:<user@exa_mple.test>'), /^501 5\.1\.3 /);
    assert.match(await c.command('RCPT TO:<user@example.test>'), /^250 2\.1\.5/);
    c.close();
  });

  it('survives 8-bit junk and NUL bytes in commands', async () => {
    const c = await session();
    const junk = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]), Buffer.from(' \u00e9\u00e8 junk\r\n', 'utf8')]);
    const reply = await c.command(junk);
    assert.match(reply, /^5\d\d 5\.\d\.\d /);
    assert.match(await c.command('RCPT TO:<user@example.test\u0000>'), /^5\d\d /);
    assert.match(await c.command('NOOP'), /^250 /);
    c.close();
  });

  it('does not let an address inject a header or a second command', async () => {
    const c = await session();
    assert.match(await c.command('MAIL FROM:<bob@friends.test>'), /^250/);
    // A bare CR after the address must not split the command or reach the stored headers.
    const reply = await c.command('RCPT TO:<user@example.test>\rBcc: victim@elsewhere.test');
    assert.match(reply, /^(250 2\.1\.5|5\d\d 5\.\d\.\d) /);
    assert.match(await c.command('RCPT TO:<user@example.test>'), /^250 /);
    assert.match(await c.command('DATA'), /^354 /);
    assert.match(await c.command('From: bob@friends.test\r\nSubject: injection\r\n\r\nbody\r\n.'), /^250 /);
    c.close();
    const user = await t.server.services.accounts.get('user@example.test');
    const m = (await t.server.services.mail.list(user.id)).find((x) => x.subject === 'injection')!;
    const raw = (await t.server.services.mail.get(user.id, m.id)).raw.toString();
    assert.ok(!/^Bcc:/im.test(raw), 'no header was injected');
  });

  it('refuses overlong command lines and keeps serving', async () => {
    const c = await session();
    const reply = await c.command('MAIL FROM:<' + 'a'.repeat(10_000) + '@friends.test>');
    assert.match(reply, /^5\d\d 5\.\d\.\d /);
    c.close();
    // the server still accepts mail afterwards
    assert.match(await send({ port, from: 'bob@friends.test', to: 'user@example.test', subject: 'still alive' }), /^250/);
  });

  it('offers STARTTLS and accepts mail over TLS', async () => {
    const reply = await send({ port, from: 'bob@friends.test', to: 'user@example.test', subject: 'over tls' });
    assert.match(reply, /^250/);
    const msgs = await t.server.services.mail.list((await t.server.services.accounts.get('user@example.test')).id);
    const m = msgs.find((x) => x.subject === 'over tls')!;
    const raw = (await t.server.services.mail.get(m.userId, m.id)).raw.toString();
    assert.match(raw, /with ESMTPS \(TLSv1\.[23]\)/);
  });
});
