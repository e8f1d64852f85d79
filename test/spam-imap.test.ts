/**
 * Junk over IMAP teaches the spam filter: a real client (imapflow) moves and
 * copies messages into and out of Junk; the IMAP path only queues learning in
 * the store (spam_learning, in the move's transaction), and the learning
 * worker, polling the store, sends it to a real private rspamd
 * (test/helpers/rspamd.ts), whose Bayes counters in Redis are checked. The
 * web Screener's Spam button (a plain HTTPS client: sign-in form, session
 * cookie, CSRF token) goes through the same queue.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { Agent, request } from 'undici';
import { startRspamd, type TestRspamd } from './helpers/rspamd.ts';
import { serverCa } from './helpers/raw-imap.ts';
import { eventually, send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const fastRetries = (toml: string) => toml.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
/** Enough distinct words for Bayes to learn from (it skips near-empty messages), different per message. */
const body = (topic: string) =>
  `Hello, about ${topic}: the committee met on Tuesday and agreed the ${topic} plan. Minutes, budget figures and the timetable for ${topic} follow in the next message; please read them before Friday's meeting in the library.\n`;

describe('Junk over IMAP teaches rspamd through the stored learning queue', () => {
  const stranger = senderDomain('stranger.test');
  let rspamd: TestRspamd;
  let t: TestServer;
  let open: number;
  let screen: number;
  const clients: ImapFlow[] = [];

  async function imap(user: string): Promise<ImapFlow> {
    const c = new ImapFlow({ host: '127.0.0.1', port: t.server.imap!.tlsPort!, secure: true, tls: { ca: [serverCa(t)] }, auth: { user, pass: 'password-1' }, logger: false });
    await c.connect();
    clients.push(c);
    return c;
  }
  const deliver = (to: string, subject: string) => send({ port: t.server.smtp.port, from: `${subject.replace(/\W+/g, '-')}@stranger.test`, to, subject, text: body(subject) });
  /** The store's learning row of one message of `user`, once the worker has sent it. */
  const learned = (user: number, messageId: number, kind: 'spam' | 'ham') =>
    eventually(async () => (await t.server.store.spamLearning.list({ userId: user })).find((r) => r.messageId === messageId && r.kind === kind && r.state === 'done'), 30_000, `${kind} learned for message ${messageId}`);
  const idOf = async (user: number, subject: string) => (await t.server.services.mail.list(user)).find((m) => m.subject === subject)!;

  before(async () => {
    rspamd = await startRspamd({ redisDb: 14 });
    t = await startTestServer({ records: stranger.records, extraToml: rspamd.toml(), edit: fastRetries });
    open = (await t.server.services.accounts.add('open@example.test', 'password-1', 'open')).id;
    screen = (await t.server.services.accounts.add('screen@example.test', 'password-1', 'screen')).id;
  });
  after(async () => {
    for (const c of clients) await c.logout().catch(() => c.close());
    await t?.close();
    await rspamd?.close();
  });

  it('MOVE into Junk teaches spam once; MOVE out of Junk teaches ham once', async () => {
    assert.match(await deliver('open@example.test', 'garden fence'), /^250/);
    const msg = await idOf(open, 'garden fence');
    assert.equal(msg.mailbox, 'INBOX');
    const start = rspamd.learns();
    const c = await imap('open@example.test');
    let lock = await c.getMailboxLock('INBOX');
    try {
      assert.ok(await c.messageMove({ subject: 'garden fence' }, 'Junk'));
    } finally {
      lock.release();
    }
    assert.equal((await idOf(open, 'garden fence')).mailbox, 'Junk');
    const row = await learned(open, msg.id, 'spam');
    assert.equal(row.outcome, 'learned');
    assert.deepEqual(rspamd.learns(), { spam: start.spam + 1, ham: start.ham }, 'rspamd learned it as spam, once');

    lock = await c.getMailboxLock('Junk');
    try {
      assert.ok(await c.messageMove({ subject: 'garden fence' }, 'INBOX'));
    } finally {
      lock.release();
    }
    await learned(open, msg.id, 'ham');
    // rspamd moves a relearned message from one class to the other.
    assert.deepEqual(rspamd.learns(), { spam: start.spam, ham: start.ham + 1 }, 'relearned as ham, once');
    const rows = (await t.server.store.spamLearning.list({ userId: open })).filter((r) => r.messageId === msg.id);
    assert.equal(rows.length, 1, 'one stored row per message');
  });

  it('COPY into Junk (a client without MOVE) teaches spam; Junk to Trash teaches nothing', async () => {
    assert.match(await deliver('open@example.test', 'library hours'), /^250/);
    const msg = await idOf(open, 'library hours');
    const start = rspamd.learns();
    const c = await imap('open@example.test');
    let lock = await c.getMailboxLock('INBOX');
    try {
      assert.ok(await c.messageCopy({ subject: 'library hours' }, 'Junk'));
      await c.messageDelete({ subject: 'library hours' });
    } finally {
      lock.release();
    }
    await learned(open, msg.id, 'spam');
    assert.deepEqual(rspamd.learns(), { spam: start.spam + 1, ham: start.ham });

    const before = (await t.server.store.spamLearning.list()).length;
    lock = await c.getMailboxLock('Junk');
    try {
      assert.ok(await c.messageMove({ subject: 'library hours' }, 'Trash'));
    } finally {
      lock.release();
    }
    assert.equal((await t.server.store.spamLearning.list()).length, before, 'deleting spam queues nothing');
    assert.equal((await t.server.store.spamLearning.due(new Date(Date.now() + 3_600_000), 10)).length, 0);
  });

  it('the web Screener shows why a request ranks where it does, and its Spam button teaches spam', async () => {
    assert.match(await deliver('screen@example.test', 'lottery winnings'), /^250/);
    const msg = await idOf(screen, 'lottery winnings');
    const start = rspamd.learns();
    const agent = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const base = t.server.http.url;
      const cookies = new Map<string, string>();
      const go = async (path: string, body?: Record<string, string>) => {
        const res = await request(`${base}${path}`, {
          method: body ? 'POST' : 'GET',
          dispatcher: agent,
          headers: {
            cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '),
            ...(body ? { 'content-type': 'application/x-www-form-urlencoded', origin: base } : {}),
          },
          ...(body ? { body: new URLSearchParams(body).toString() } : {}),
        });
        const set = res.headers['set-cookie'];
        for (const c of Array.isArray(set) ? set : set ? [set] : []) {
          const [pair] = c.split(';');
          const eq = pair!.indexOf('=');
          cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
        }
        return { status: res.statusCode, location: res.headers.location, text: await res.body.text() };
      };
      const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
      const signIn = await go('/sign-in');
      const signedIn = await go('/sign-in', { _csrf: csrfOf(signIn.text), address: 'screen@example.test', password: 'password-1' });
      assert.equal(signedIn.status, 303, signedIn.text);
      const page = await go('/screener');
      assert.equal(page.status, 200);
      assert.match(page.text, /lottery-winnings@stranger\.test[\s\S]*Ranked by<\/dt><dd>score -?\d+: authenticated, DMARC pass, p=reject, spam score/);
      assert.match(page.text, /action="\/screener\/spam"/);
      const marked = await go('/screener/spam', { _csrf: csrfOf(page.text), sender: 'lottery-winnings@stranger.test', page: '1' });
      assert.equal(marked.status, 303, marked.text);
      assert.match(String(marked.location), /done=spam/);
    } finally {
      await agent.close();
    }
    assert.equal((await idOf(screen, 'lottery winnings')).mailbox, 'Junk');
    await learned(screen, msg.id, 'spam');
    assert.deepEqual(rspamd.learns(), { spam: start.spam + 1, ham: start.ham });
  });

  it('a held Screener message moved to Junk teaches spam (and denies the sender)', async () => {
    assert.match(await deliver('screen@example.test', 'cheap watches'), /^250/);
    const msg = await idOf(screen, 'cheap watches');
    assert.equal(msg.mailbox, 'Screener');
    const start = rspamd.learns();
    const c = await imap('screen@example.test');
    const lock = await c.getMailboxLock('Screener');
    try {
      assert.ok(await c.messageMove({ subject: 'cheap watches' }, 'Junk'));
    } finally {
      lock.release();
    }
    assert.equal((await idOf(screen, 'cheap watches')).mailbox, 'Junk');
    await learned(screen, msg.id, 'spam');
    assert.deepEqual(rspamd.learns(), { spam: start.spam + 1, ham: start.ham });
    const req = (await t.server.services.screener.list(screen, undefined, { likelySpam: true })).find((r) => r.sender === 'cheap-watches@stranger.test');
    assert.equal(req?.status, 'denied');
  });
});
