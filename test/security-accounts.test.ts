/**
 * Security (issue 17, item 6): accounts that are another's subaddress,
 * address-literal recipients in submission, SMTP delivery to private
 * addresses, postmaster@, and the unauthenticated /metrics. Each against a
 * real server over real sockets.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { davFetch } from './helpers/carddav.ts';
import { eventually, send, startTestServer, submit, type TestServer } from './helpers/server.ts';

const BIN = resolve('bin/twoway.js');

describe('security: accounts, recipients, postmaster, metrics', () => {
  let t: TestServer;
  let canary: Server;
  let canaryConnections = 0;
  const sockets = new Set<Socket>();

  before(async () => {
    // A "mail exchanger" on loopback that counts connections: with delivery.lab off nothing may reach it.
    canary = createServer((s) => {
      canaryConnections++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.write('220 canary ESMTP\r\n');
    });
    await new Promise<void>((r) => canary.listen(0, '127.0.0.9', r));
    const port = (canary.address() as { port: number }).port;
    t = await startTestServer({
      deliveryPort: port,
      deliveryLab: false,
      records: [
        { name: 'private.test', type: 'MX', data: { preference: 10, exchange: 'mx.private.test' } },
        { name: 'mx.private.test', type: 'A', data: '127.0.0.9' },
      ],
    });
    assert.equal(t.server.config.delivery.lab, false);
    // The first account created: the postmaster by default. Strict mode: strangers are refused.
    await t.server.services.accounts.add('alice@example.test', 'alice-password', 'strict');
    await t.server.services.accounts.add('bob@example.test', 'bob-password', 'open');
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => canary.close(() => r()));
    await t?.close();
  });

  it("refuses an account that is another account's subaddress, in both orders (service and CLI)", async () => {
    const { accounts } = t.server.services;
    await assert.rejects(accounts.add('bob+sales@example.test', 'x-password', 'open'), (err: Error & { kind?: string }) => {
      assert.equal(err.kind, 'conflict');
      assert.match(err.message, /subaddress of the account bob@example\.test/);
      return true;
    });
    await accounts.add('carol+team@example.test', 'x-password', 'open');
    await assert.rejects(accounts.add('carol@example.test', 'x-password', 'open'), /carol\+team@example\.test exists/);
    const cli = spawnSync(process.execPath, [BIN, 'user', 'add', 'Bob+Other@example.test', '--config', join(t.dir, 'twoway.toml')], { input: 'pw-123456\n', encoding: 'utf8', env: { ...process.env, TWOWAY_CONFIG: '' }, timeout: 60_000 });
    assert.equal(cli.status, 5, cli.stderr);
    assert.match(cli.stderr, /subaddress of the account bob@example\.test/);
    assert.equal(await accounts.list().then((l) => l.some((u) => u.address.startsWith('bob+'))), false);
  });

  it('refuses address-literal recipients in submission (SMTP 550 5.7.1, API 400)', async () => {
    const port = t.server.submission!.port;
    for (const to of ['x@[127.0.0.1]', 'x@[1.2.3.4]', 'x@[IPv6:::1]']) {
      await assert.rejects(submit({ port, user: 'bob@example.test', pass: 'bob-password', to, subject: 'literal' }), /550 5\.7\.1/, to);
    }
    const { fetch: f, close } = davFetch(t);
    try {
      const res = await f(`${t.server.http.url}/api/send`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('bob@example.test:bob-password').toString('base64')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: ['x@[127.0.0.1]'], message: 'From: bob@example.test\nTo: x@[127.0.0.1]\nSubject: literal\n\nx\n' }),
      });
      assert.equal(res.status, 400, await res.text());
    } finally {
      await close();
    }
    assert.equal((await t.server.services.queue.list()).filter((e) => e.recipient.includes('[')).length, 0, 'nothing queued');
  });

  it('never connects to a loopback mail exchanger unless delivery.lab is on: fails with 5.4.4', async () => {
    assert.match(await submit({ port: t.server.submission!.port, user: 'bob@example.test', pass: 'bob-password', to: 'someone@private.test', subject: 'ssrf' }), /^250/);
    const entry = await eventually(async () => {
      const e = (await t.server.services.queue.list()).find((q) => q.recipient === 'someone@private.test');
      return e?.status.state === 'failed' ? e : undefined;
    }, 20_000, 'the entry to fail');
    assert.equal(entry.status.state, 'failed');
    assert.match(entry.status.state === 'failed' ? entry.status.lastError : '', /^5\.4\.4 .*127\.0\.0\.9/);
    assert.equal(canaryConnections, 0, 'nothing connected to the loopback canary');
  });

  it('accepts postmaster@ (any case) for the admin account, unscreened even in strict mode', async () => {
    const alice = await t.server.services.accounts.get('alice@example.test');
    for (const to of ['postmaster@example.test', 'PostMaster@Example.TEST']) {
      assert.match(await send({ port: t.server.smtp.port, from: 'stranger@strangers.test', to, subject: `to ${to}` }), /^250/);
    }
    const inbox = await t.server.services.mail.list(alice.id, 'INBOX');
    assert.equal(inbox.filter((m) => /^to postmaster@/i.test(m.subject ?? '')).length, 2, JSON.stringify(inbox.map((m) => m.subject)));
    // Other unknown names are still refused.
    await assert.rejects(send({ port: t.server.smtp.port, from: 'stranger@strangers.test', to: 'nobody@example.test' }), /550 5\.1\.1/);
  });

  it('the configured postmaster wins over the first account', async () => {
    const u = await startTestServer({ extraToml: '', edit: (toml) => `postmaster = "bob@example.test"\n${toml}` });
    try {
      await u.server.services.accounts.add('alice@example.test', 'alice-password', 'strict');
      const bob = await u.server.services.accounts.add('bob@example.test', 'bob-password', 'strict');
      assert.match(await send({ port: u.server.smtp.port, from: 'stranger@strangers.test', to: 'postmaster@example.test', subject: 'for the admin' }), /^250/);
      assert.deepEqual((await u.server.services.mail.list(bob.id, 'INBOX')).map((m) => m.subject), ['for the admin']);
    } finally {
      await u.close();
    }
  });

  it('serves /metrics on its own loopback listener, not on the API listener', async () => {
    const { fetch: f, close } = davFetch(t);
    try {
      const onApi = await f(`${t.server.http.url}/metrics`);
      assert.notEqual(onApi.status, 200);
      assert.doesNotMatch(await onApi.text(), /twoway_/);
    } finally {
      await close();
    }
    assert.equal(t.server.config.metrics?.host, '127.0.0.1');
    const res = await fetch(`http://127.0.0.1:${t.server.metricsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /twoway_twm_refused_total|# HELP/);
    assert.equal((await fetch(`http://127.0.0.1:${t.server.metricsPort}/api/me`)).status, 404);
  });
});
