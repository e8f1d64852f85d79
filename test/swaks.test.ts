/**
 * Debian's swaks as an independent SMTP client: STARTTLS, pipelining, the
 * relay test, a forged allowed sender and a strict-mode refusal.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const haveSwaks = spawnSync('swaks', ['--version']).status === 0;
if (!haveSwaks && process.env.CI) throw new Error('swaks is required in CI (apt-get install swaks)');

/** Runs swaks asynchronously: the server under test lives in this process's event loop. */
async function swaks(port: number, args: string[]): Promise<{ code: number; replies: string[]; out: string }> {
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile('swaks', ['--server', '127.0.0.1', '--port', String(port), '--timeout', '20', ...args], { timeout: 30_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout });
    });
  });
  // Server replies are the lines swaks prefixes with "<-" (plain) or "<~" (inside TLS); "<**" marks an error reply.
  const replies = stdout.split('\n').filter((l) => /^<(-|~|\*\*|~\*)/.test(l)).map((l) => l.replace(/^<\S*\s*/, ''));
  return { code, replies, out: stdout };
}

describe('swaks against twoway', { skip: haveSwaks ? false : 'swaks is not installed' }, () => {
  const friends = senderDomain('friends.test');
  let t: TestServer;
  let port: number;
  let screenId: number;

  before(async () => {
    t = await startTestServer({ records: friends.records });
    port = t.server.smtp.port;
    const { accounts, contacts } = t.server.services;
    const screen = await accounts.add('screen@example.test', 'password-1', 'screen');
    screenId = screen.id;
    await contacts.allow(screen.id, 'bob@friends.test');
    await accounts.add('strict@example.test', 'password-1', 'strict');
  });
  after(() => t.close());

  const mail = async () => (await t.server.services.mail.list(screenId)).sort((a, b) => b.id - a.id);

  it('delivers over STARTTLS with pipelining to the INBOX of an allowed, authenticated sender', async () => {
    const r = await swaks(port, ['--tls', '--pipeline', '--from', 'bob@friends.test', '--to', 'screen@example.test', '--helo', 'friends.test', '--header', 'Subject: via swaks']);
    assert.equal(r.code, 0, r.out);
    assert.ok(r.replies.some((l) => /^220 .*TLS/i.test(l) || /^220 2\.0\.0/.test(l)), r.out);
    assert.ok(r.replies.some((l) => /^250 2\.0\.0 Ok: queued as/.test(l)), r.out);
    const [m] = await mail();
    assert.equal(m?.subject, 'via swaks');
    assert.equal(m?.mailbox, 'INBOX');
  });

  it('refuses the usual relay attempts with 550 5.7.1', async () => {
    const variants = ['victim@elsewhere.test', 'victim%elsewhere.test@example.test', '"victim@elsewhere.test"@example.test', 'victim@elsewhere.test@example.test', '@example.test:victim@elsewhere.test'];
    for (const to of variants) {
      const r = await swaks(port, ['--from', 'spammer@elsewhere.test', '--to', to]);
      assert.notEqual(r.code, 0, `relay variant ${to} must fail`);
      assert.ok(r.replies.some((l) => /^5\d\d 5\.\d\.\d+ /.test(l)), `${to}: ${r.out}`);
    }
  });

  it('screens a forged allowed sender (SPF fails from 127.0.0.2)', async () => {
    const r = await swaks(port, ['--local-interface', '127.0.0.2', '--from', 'bob@friends.test', '--to', 'screen@example.test', '--header', 'Subject: forged via swaks']);
    assert.equal(r.code, 0, r.out);
    const [m] = await mail();
    assert.equal(m?.subject, 'forged via swaks');
    assert.equal(m?.mailbox, 'Screener');
  });

  it('refuses a stranger for a strict-mode user at end of DATA', async () => {
    const r = await swaks(port, ['--from', 'carol@elsewhere.test', '--to', 'strict@example.test']);
    assert.notEqual(r.code, 0);
    assert.ok(r.replies.some((l) => /^550 5\.7\.1 /.test(l)), r.out);
  });
});
