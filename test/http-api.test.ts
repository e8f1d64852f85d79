/**
 * The HTTP JSON API over a real socket (port 0) with a real SQLite store and
 * the real services: authentication, per-user isolation on every route, the
 * contacts and Screener round trips, mail reading, RFC 9457 problems for
 * every kind of failure, and the OpenAPI document against the route table.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { pino } from 'pino';
import { createHttpApp, startHttpListener, type HttpListener } from '../src/protocols/http/index.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { openStore } from '../src/store/open.ts';
import type { Store } from '../src/store/types.ts';
import type { User } from '../src/core/types.ts';
import { client, type ApiResponse, type Credentials } from './helpers/http-client.ts';

const ALICE = 'alice@example.org';
const BOB = 'bob@example.org';
const ALICE_PW = 'alice-correct-horse';
const BOB_PW = 'bob-battery-staple';

function assertProblem(r: ApiResponse, status: number, detail?: RegExp): void {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.match(r.contentType, /^application\/problem\+json/);
  assert.equal(r.body.status, status);
  assert.equal(r.body.type, 'about:blank');
  assert.equal(typeof r.body.title, 'string');
  assert.equal(typeof r.body.detail, 'string');
  assert.doesNotMatch(r.text, /\bat .*\.(?:ts|js):\d+/, 'no stack trace');
  if (detail) assert.match(r.body.detail, detail);
  if (status === 401) assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="twoway", Basic realm="twoway"');
}

describe('HTTP API', () => {
  let dir: string;
  let store: Store;
  let services: Services;
  let app: FastifyInstance;
  let listener: HttpListener;
  let api: ReturnType<typeof client>;
  let alice: User;
  let bob: User;
  const A_BASIC: Credentials = { basic: [ALICE, ALICE_PW] };
  const B_BASIC: Credentials = { basic: [BOB, BOB_PW] };
  // Bearer tokens for most requests: each Basic request costs a scrypt check.
  let A: Credentials;
  let B: Credentials;
  const routes: RouteOptions[] = [];
  const logLines: string[] = [];

  /** Simulates screened mail: a message held in the Screener with its contact request. */
  async function hold(user: User, sender: string, subject: string) {
    const [msg] = await store.messages.deliver([
      {
        userId: user.id,
        mailbox: 'Screener',
        raw: Buffer.from(`From: ${sender}\r\nTo: ${user.address}\r\nSubject: ${subject}\r\n\r\nHello from ${sender}\r\n`),
        flags: [],
        sender,
        from: sender,
        subject,
        receivedAt: new Date(),
        firstContact: true,
        request: { sender, authDomain: sender.split('@')[1]!, subject },
      },
    ]);
    return msg!;
  }

  async function deliverInbox(user: User, sender: string, subject: string) {
    const [msg] = await store.messages.deliver([
      {
        userId: user.id,
        mailbox: 'INBOX',
        raw: Buffer.from(`From: ${sender}\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`),
        flags: [],
        sender,
        from: sender,
        subject,
        receivedAt: new Date(),
        firstContact: false,
      },
    ]);
    return msg!;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twoway-http-'));
    store = await openStore('sqlite:' + join(dir, 'store.db'));
    services = createServices(store, ['example.org']);
    alice = await services.accounts.add(ALICE, ALICE_PW);
    bob = await services.accounts.add(BOB, BOB_PW);
    const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    app = await createHttpApp({
      services,
      log,
      extraRoutes(instance) {
        instance.addHook('onRoute', (r) => void routes.push(r));
        instance.get('/api/test/boom', async () => {
          throw new Error('kaboom: the database exploded');
        });
        instance.get('/outside', async () => ({ ok: true }));
      },
    });
    listener = await startHttpListener({ host: '127.0.0.1', port: 0, app });
    assert.ok(listener.port > 0);
    api = client(`http://127.0.0.1:${listener.port}`);
    A = { bearer: (await services.accounts.issueToken(alice)).token };
    B = { bearer: (await services.accounts.issueToken(bob)).token };
  });

  after(async () => {
    await listener.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('authentication', () => {
    it('logs in with the password and uses the bearer token', async () => {
      const login = await api('POST', '/api/session', { json: { address: ALICE, password: ALICE_PW } });
      assert.equal(login.status, 201, login.text);
      assert.equal(typeof login.body.token, 'string');
      assert.ok(Date.parse(login.body.expiresAt) > Date.now());
      assert.equal(login.headers.get('cache-control'), 'no-store');
      const me = await api('GET', '/api/me', { auth: { bearer: login.body.token } });
      assert.equal(me.status, 200);
      assert.deepEqual({ address: me.body.address, mode: me.body.mode }, { address: ALICE, mode: 'open' });
      // Addresses are case-insensitive logins.
      const upper = await api('POST', '/api/session', { json: { address: 'Alice@Example.ORG', password: ALICE_PW } });
      assert.equal(upper.status, 201);
    });

    it('answers wrong credentials with 401 problems', async () => {
      assertProblem(await api('POST', '/api/session', { json: { address: ALICE, password: 'wrong' } }), 401, /Invalid credentials/);
      assertProblem(await api('POST', '/api/session', { json: { address: 'nobody@example.org', password: 'x' } }), 401, /Invalid credentials/);
      assertProblem(await api('GET', '/api/me'), 401, /Authentication required/);
      assertProblem(await api('GET', '/api/me', { auth: { bearer: 'not-a-token' } }), 401);
      assertProblem(await api('GET', '/api/me', { auth: { basic: [ALICE, 'wrong'] } }), 401);
      assertProblem(await api('GET', '/api/me', { auth: { basic: [ALICE, BOB_PW] } }), 401);
      assertProblem(await api('GET', '/api/me', { auth: { header: 'Digest username="alice"' } }), 401);
      assertProblem(await api('GET', '/api/me', { auth: { header: 'Basic !!!' } }), 401);
      // Extra routes under /api/ are protected too; routes outside /api/ are not the API's business.
      assertProblem(await api('GET', '/api/test/boom'), 401);
      assert.equal((await api('GET', '/outside')).status, 200);
    });

    it('accepts HTTP Basic with the password and with an app password', async () => {
      const me = await api('GET', '/api/me', { auth: A_BASIC });
      assert.equal(me.status, 200);
      assert.equal(me.body.address, ALICE);

      const created = await api('POST', '/api/me/app-passwords', { auth: A_BASIC, json: { name: 'thunderbird' } });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.body.name, 'thunderbird');
      const appPw: string = created.body.password;
      assert.ok(appPw.length >= 20);

      assert.equal((await api('GET', '/api/me', { auth: { basic: [ALICE, appPw] } })).body.address, ALICE);
      const login = await api('POST', '/api/session', { json: { address: ALICE, password: appPw } });
      assert.equal(login.status, 201);
      // Alice's app password is not Bob's.
      assertProblem(await api('GET', '/api/me', { auth: { basic: [BOB, appPw] } }), 401);
      assertProblem(await api('POST', '/api/me/app-passwords', { auth: A, json: { name: 'bad/name' } }), 400, /App password name/);
    });

    it('revokes the bearer token on DELETE /api/session', async () => {
      const { body } = await api('POST', '/api/session', { json: { address: BOB, password: BOB_PW } });
      const auth = { bearer: body.token as string };
      assert.equal((await api('GET', '/api/me', { auth })).status, 200);
      const out = await api('DELETE', '/api/session', { auth });
      assert.equal(out.status, 204);
      assert.equal(out.text, '');
      assertProblem(await api('GET', '/api/me', { auth }), 401, /Invalid or expired token/);
      assertProblem(await api('DELETE', '/api/session', { auth: B_BASIC }), 400, /No bearer token/);
    });

    it('changes the mode and the password of the authenticated user only', async () => {
      const carol = await services.accounts.add('carol@example.org', 'carol-old-password');
      const C: Credentials = { basic: [carol.address, 'carol-old-password'] };
      const mode = await api('PUT', '/api/me/mode', { auth: C, json: { mode: 'screen' } });
      assert.equal(mode.status, 200, mode.text);
      assert.equal(mode.body.mode, 'screen');
      assert.equal((await api('GET', '/api/me', { auth: C })).body.mode, 'screen');
      assert.equal((await services.accounts.get(ALICE)).mode, 'open');

      assert.equal((await api('POST', '/api/me/password', { auth: C, json: { password: 'carol-new-password' } })).status, 204);
      assertProblem(await api('GET', '/api/me', { auth: C }), 401);
      assert.equal((await api('GET', '/api/me', { auth: { basic: [carol.address, 'carol-new-password'] } })).status, 200);
      assert.equal((await api('GET', '/api/me', { auth: A_BASIC })).status, 200, "Alice's password is unchanged");
    });
  });

  describe('contacts', () => {
    it('allows, blocks and removes senders (round trip)', async () => {
      const allow = await api('POST', '/api/contacts/allow', { auth: A, json: { sender: 'Friend@Example.NET' } });
      assert.equal(allow.status, 200, allow.text);
      assert.deepEqual(allow.body, { sender: 'Friend@Example.NET', created: true, unblocked: 0 });
      const again = await api('POST', '/api/contacts/allow', { auth: A, json: { sender: 'friend@example.net' } });
      assert.equal(again.body.created, false);

      let list = await api('GET', '/api/contacts', { auth: A });
      assert.equal(list.status, 200);
      const entries = () => list.body.items.flatMap((c: { entries: unknown[] }) => c.entries);
      assert.deepEqual(entries(), [{ kind: 'address', value: 'friend@example.net', action: 'allow' }]);
      assert.match(list.body.items[0].vcard, /^BEGIN:VCARD/);

      const block = await api('POST', '/api/contacts/block', { auth: A, json: { sender: '@spam.example' } });
      assert.equal(block.status, 200, block.text);
      assert.equal(block.body.created, true);
      list = await api('GET', '/api/contacts', { auth: A });
      assert.deepEqual(
        entries().find((e: { kind: string }) => e.kind === 'domain'),
        { kind: 'domain', value: 'spam.example', action: 'block' },
      );

      // Allowing a blocked domain lifts the block.
      const unblock = await api('POST', '/api/contacts/allow', { auth: A, json: { sender: '@spam.example' } });
      assert.deepEqual(unblock.body, { sender: '@spam.example', created: true, unblocked: 1 });

      const removed = await api('DELETE', `/api/contacts/${encodeURIComponent('@spam.example')}`, { auth: A });
      assert.equal(removed.status, 200, removed.text);
      assert.equal(removed.body.removed.length, 1);
      assertProblem(await api('DELETE', `/api/contacts/${encodeURIComponent('@spam.example')}`, { auth: A }), 404);
      const gone = await api('DELETE', `/api/contacts/${encodeURIComponent('friend@example.net')}`, { auth: A });
      assert.equal(gone.status, 200);
      assert.deepEqual((await api('GET', '/api/contacts', { auth: A })).body.items, []);

      assertProblem(await api('POST', '/api/contacts/allow', { auth: A, json: { sender: 'not an address' } }), 400);
      assertProblem(await api('DELETE', `/api/contacts/${encodeURIComponent('two@@ats')}`, { auth: A }), 400);
    });

    it('stores vCards sent as text/vcard, and names the line of a malformed one', async () => {
      const card = ['BEGIN:VCARD', 'VERSION:4.0', 'UID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1', 'FN:Dana', 'EMAIL;TYPE=work:dana@example.com', 'END:VCARD', ''].join('\r\n');
      const put = await api('PUT', '/api/contacts/cards/urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1', { auth: A, raw: card, type: 'text/vcard; charset=utf-8' });
      assert.equal(put.status, 200, put.text);
      assert.equal(put.body.uid, 'urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1');
      assert.equal(put.body.name, 'Dana');
      assert.equal(put.body.vcard, card, 'stored byte for byte');
      assert.deepEqual(put.body.entries, [{ kind: 'address', value: 'dana@example.com', action: 'allow' }]);
      const listed = await api('GET', '/api/contacts', { auth: A });
      assert.ok(listed.body.items.some((c: { uid: string }) => c.uid === put.body.uid));

      const broken = 'BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Eve\r\nthis line has no colon\r\nEND:VCARD\r\n';
      assertProblem(await api('PUT', '/api/contacts/cards/eve', { auth: A, raw: broken, type: 'text/vcard' }), 400, /line 4/);

      const other = card.replace('UID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1', 'UID:someone-else');
      assertProblem(await api('PUT', '/api/contacts/cards/dana', { auth: A, raw: other, type: 'text/vcard' }), 400, /differs/);
      assertProblem(await api('PUT', '/api/contacts/cards/dana', { auth: A, json: { vcard: card } }), 415);
      assertProblem(await api('PUT', '/api/contacts/cards/dana', { auth: A, raw: card, type: 'text/plain' }), 415);
      assertProblem(await api('PUT', '/api/contacts/cards/dana', { auth: A, raw: '', type: 'text/vcard' }), 400);

      await api('DELETE', `/api/contacts/${encodeURIComponent('dana@example.com')}`, { auth: A });
    });
  });

  describe('screener', () => {
    it('lists requests and approves: held mail moves to INBOX and the sender becomes a contact', async () => {
      await hold(alice, 'stranger@example.net', 'First');
      await hold(alice, 'stranger@example.net', 'Second');
      await hold(alice, 'other@example.net', 'Other');

      const pending = await api('GET', '/api/requests?status=pending', { auth: A });
      assert.equal(pending.status, 200, pending.text);
      const bySender = Object.fromEntries(pending.body.items.map((r: { sender: string }) => [r.sender, r]));
      assert.equal(bySender['stranger@example.net'].count, 2);
      assert.equal(bySender['stranger@example.net'].held, 2);
      assert.equal(bySender['stranger@example.net'].status, 'pending');
      assert.equal(bySender['stranger@example.net'].id, undefined, 'no internal ids');

      const approve = await api('POST', '/api/requests/approve', { auth: A, json: { senders: ['stranger@example.net'] } });
      assert.equal(approve.status, 200, approve.text);
      assert.deepEqual(approve.body.items, [{ sender: 'stranger@example.net', released: 2 }]);

      const inbox = await api('GET', '/api/messages?mailbox=INBOX', { auth: A });
      assert.deepEqual(inbox.body.items.map((m: { subject: string }) => m.subject).sort(), ['First', 'Second']);
      const contacts = await api('GET', '/api/contacts', { auth: A });
      assert.ok(contacts.body.items.some((c: { entries: Array<{ value: string; action: string }> }) => c.entries.some((e) => e.value === 'stranger@example.net' && e.action === 'allow')));
      const approved = await api('GET', '/api/requests?status=approved', { auth: A });
      assert.deepEqual(approved.body.items.map((r: { sender: string }) => r.sender), ['stranger@example.net']);

      // Unknown senders: 404 and nothing changes (the whole batch is checked first).
      assertProblem(await api('POST', '/api/requests/approve', { auth: A, json: { senders: ['other@example.net', 'never@example.net'] } }), 404, /never@example\.net/);
      assert.equal((await api('GET', '/api/requests?status=pending', { auth: A })).body.items.length, 1);
    });

    it('denies: held mail is dropped and the sender blocked', async () => {
      const held = await hold(alice, 'pest@example.com', 'Buy now');
      const deny = await api('POST', '/api/requests/deny', { auth: A, json: { senders: ['pest@example.com'] } });
      assert.equal(deny.status, 200, deny.text);
      assert.deepEqual(deny.body.items, [{ sender: 'pest@example.com', dropped: 1 }]);
      assertProblem(await api('GET', `/api/messages/${held.id}`, { auth: A }), 404);
      const contacts = await api('GET', '/api/contacts', { auth: A });
      assert.ok(contacts.body.items.some((c: { entries: Array<{ value: string; action: string }> }) => c.entries.some((e) => e.value === 'pest@example.com' && e.action === 'block')));
      const denied = await api('GET', '/api/requests?status=denied', { auth: A });
      assert.deepEqual(denied.body.items.map((r: { sender: string }) => r.sender), ['pest@example.com']);
    });

    it('clears: held mail is dropped, the request forgotten, nothing decided', async () => {
      await hold(alice, 'maybe@example.com', 'Hmm');
      const clear = await api('POST', '/api/requests/clear', { auth: A, json: { senders: ['maybe@example.com'] } });
      assert.equal(clear.status, 200, clear.text);
      assert.deepEqual(clear.body.items, [{ sender: 'maybe@example.com', dropped: 1 }]);
      const all = await api('GET', '/api/requests', { auth: A });
      assert.ok(!all.body.items.some((r: { sender: string }) => r.sender === 'maybe@example.com'));
      const contacts = await api('GET', '/api/contacts', { auth: A });
      assert.ok(!contacts.body.items.some((c: { entries: Array<{ value: string }> }) => c.entries.some((e) => e.value === 'maybe@example.com')));
    });

    it('approves a whole domain', async () => {
      await hold(alice, 'one@corp.example', 'One');
      await hold(alice, 'two@corp.example', 'Two');
      const res = await api('POST', '/api/requests/approve-domain', { auth: A, json: { domain: '@corp.example' } });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(
        res.body.items.map((r: { sender: string; released: number }) => [r.sender, r.released]).sort(),
        [['one@corp.example', 1], ['two@corp.example', 1]],
      );
      const contacts = await api('GET', '/api/contacts', { auth: A });
      assert.ok(contacts.body.items.some((c: { entries: Array<{ kind: string; value: string }> }) => c.entries.some((e) => e.kind === 'domain' && e.value === 'corp.example')));
      assertProblem(await api('POST', '/api/requests/approve-domain', { auth: A, json: { domain: 'not a domain!' } }), 400);
    });

    it('validates Screener input', async () => {
      assertProblem(await api('GET', '/api/requests?status=maybe', { auth: A }), 400, /query\.status/);
      assertProblem(await api('GET', '/api/requests?colour=red', { auth: A }), 400, /query\.colour: Unknown field/);
      assertProblem(await api('POST', '/api/requests/approve', { auth: A, json: { senders: [] } }), 400, /body\.senders/);
      assertProblem(await api('POST', '/api/requests/deny', { auth: A, json: { senders: 'x@example.com' } }), 400, /body\.senders/);
      assertProblem(await api('POST', '/api/requests/clear', { auth: A, json: { senders: ['@domain.example'] } }), 400);
    });
  });

  describe('mail', () => {
    it('lists mailboxes and pages of messages, and serves metadata and the raw message', async () => {
      const m1 = await deliverInbox(alice, 'friend@example.net', 'Page 1');
      await deliverInbox(alice, 'friend@example.net', 'Page 2');

      const boxes = await api('GET', '/api/mailboxes', { auth: A });
      assert.equal(boxes.status, 200);
      assert.deepEqual(boxes.body.items.map((b: { name: string }) => b.name).sort(), ['Drafts', 'INBOX', 'Junk', 'Screener', 'Sent', 'Trash']);
      const inboxCount = boxes.body.items.find((b: { name: string }) => b.name === 'INBOX').count;
      assert.ok(inboxCount >= 2);

      const page = await api('GET', '/api/messages?mailbox=inbox&limit=1&offset=0', { auth: A });
      assert.equal(page.status, 200, page.text);
      assert.equal(page.body.items.length, 1);
      const all = await api('GET', '/api/messages?mailbox=INBOX&limit=500', { auth: A });
      assert.equal(all.body.items.length, inboxCount);
      const skipped = await api('GET', `/api/messages?mailbox=INBOX&offset=${inboxCount}`, { auth: A });
      assert.deepEqual(skipped.body.items, []);

      const meta = await api('GET', `/api/messages/${m1.id}`, { auth: A });
      assert.equal(meta.status, 200, meta.text);
      assert.equal(meta.body.subject, 'Page 1');
      assert.equal(meta.body.mailbox, 'INBOX');
      assert.equal(meta.body.userId, undefined);
      assert.equal(meta.body.raw, undefined);

      const raw = await api('GET', `/api/messages/${m1.id}/raw`, { auth: A });
      assert.equal(raw.status, 200);
      assert.match(raw.contentType, /^message\/rfc822/);
      assert.equal(raw.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(raw.text, 'From: friend@example.net\r\nSubject: Page 1\r\n\r\nbody of Page 1\r\n');

      assertProblem(await api('GET', '/api/messages/999999', { auth: A }), 404, /No message/);
      assertProblem(await api('GET', '/api/messages/abc', { auth: A }), 404);
      assertProblem(await api('GET', '/api/messages/-1/raw', { auth: A }), 404);
      assertProblem(await api('GET', '/api/messages?mailbox=Spam', { auth: A }), 400, /Unknown mailbox/);
      assertProblem(await api('GET', '/api/messages?limit=0', { auth: A }), 400, /query\.limit/);
      assertProblem(await api('GET', '/api/messages?limit=ten', { auth: A }), 400, /query\.limit/);
      assertProblem(await api('GET', '/api/messages?offset=-5', { auth: A }), 400, /query\.offset/);
      assertProblem(await api('GET', '/api/messages?limit=1&limit=2', { auth: A }), 400, /query\.limit/);
    });
  });

  describe('per-user isolation', () => {
    it("gives Bob nothing of Alice's on any route", async () => {
      const secret = await hold(alice, 'secret-admirer@example.net', 'For Alice only');
      const inboxMsg = await deliverInbox(alice, 'friend@example.net', 'Private');
      await services.contacts.allow(alice.id, 'alice-friend@example.net');

      // Reads: Bob sees only his own (empty) data.
      assert.equal((await api('GET', '/api/me', { auth: B })).body.address, BOB);
      assert.deepEqual((await api('GET', '/api/contacts', { auth: B })).body.items, []);
      for (const status of ['', '?status=pending', '?status=approved', '?status=denied']) {
        assert.deepEqual((await api('GET', `/api/requests${status}`, { auth: B })).body.items, [], status);
      }
      assert.deepEqual((await api('GET', '/api/messages', { auth: B })).body.items, []);
      assert.deepEqual((await api('GET', '/api/messages?mailbox=Screener', { auth: B })).body.items, []);
      const bobBoxes = await api('GET', '/api/mailboxes', { auth: B });
      assert.ok(bobBoxes.body.items.every((b: { count: number }) => b.count === 0));

      // Alice's message ids answer exactly like ids that do not exist.
      for (const id of [secret.id, inboxMsg.id]) {
        const meta = await api('GET', `/api/messages/${id}`, { auth: B });
        const missing = await api('GET', '/api/messages/987654', { auth: B });
        assertProblem(meta, 404);
        assert.equal(meta.body.detail.replace(String(id), 'N'), missing.body.detail.replace('987654', 'N'));
        assertProblem(await api('GET', `/api/messages/${id}/raw`, { auth: B }), 404);
      }

      // Writes by Bob on Alice's senders: 404 for her requests and contacts, and hers stay as they were.
      for (const action of ['approve', 'deny', 'clear']) {
        assertProblem(await api('POST', `/api/requests/${action}`, { auth: B, json: { senders: ['secret-admirer@example.net'] } }), 404, /No contact request/);
      }
      assertProblem(await api('DELETE', `/api/contacts/${encodeURIComponent('alice-friend@example.net')}`, { auth: B }), 404);
      const domain = await api('POST', '/api/requests/approve-domain', { auth: B, json: { domain: 'example.net' } });
      assert.deepEqual(domain.body.items, [], "approving a domain releases none of Alice's senders");

      // Bob's own contact writes land in Bob's book only, even under the same UID.
      const card = 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:shared-uid\r\nFN:X\r\nEMAIL:x@example.net\r\nEND:VCARD\r\n';
      assert.equal((await api('PUT', '/api/contacts/cards/shared-uid', { auth: A, raw: card, type: 'text/vcard' })).status, 200);
      const bobCard = card.replace('x@example.net', 'y@example.net');
      assert.equal((await api('PUT', '/api/contacts/cards/shared-uid', { auth: B, raw: bobCard, type: 'text/vcard' })).status, 200);
      await api('POST', '/api/contacts/block', { auth: B, json: { sender: 'alice-friend@example.net' } });
      await api('PUT', '/api/me/mode', { auth: B, json: { mode: 'strict' } });

      const aliceCard = (await api('GET', '/api/contacts', { auth: A })).body.items.find((c: { uid: string }) => c.uid === 'shared-uid');
      assert.equal(aliceCard.vcard, card);
      assert.equal((await api('GET', '/api/me', { auth: A })).body.mode, 'open');
      const aliceEntries = (await api('GET', '/api/contacts', { auth: A })).body.items.flatMap((c: { entries: unknown[] }) => c.entries);
      assert.ok(aliceEntries.some((e: { value: string; action: string }) => e.value === 'alice-friend@example.net' && e.action === 'allow'));
      assert.ok(!aliceEntries.some((e: { action: string }) => e.action === 'block' && JSON.stringify(e).includes('alice-friend')));
      const bobEntries = (await api('GET', '/api/contacts', { auth: B })).body.items.flatMap((c: { entries: Array<{ value: string }> }) => c.entries.map((e) => e.value));
      assert.deepEqual(bobEntries.sort(), ['alice-friend@example.net', 'example.net', 'y@example.net'], 'Bob allowed @example.net for himself');

      // Alice's held message and request are untouched.
      const aliceReq = (await api('GET', '/api/requests?status=pending', { auth: A })).body.items.find((r: { sender: string }) => r.sender === 'secret-admirer@example.net');
      assert.equal(aliceReq.held, 1);
      assert.equal((await api('GET', `/api/messages/${secret.id}`, { auth: A })).body.mailbox, 'Screener');
      // Bob's app passwords and tokens are Bob's.
      const bobApp = await api('POST', '/api/me/app-passwords', { auth: B, json: { name: 'script' } });
      assert.equal((await api('GET', '/api/me', { auth: { basic: [BOB, bobApp.body.password] } })).body.address, BOB);
      assertProblem(await api('GET', '/api/me', { auth: { basic: [ALICE, bobApp.body.password] } }), 401);
      await api('PUT', '/api/me/mode', { auth: B, json: { mode: 'open' } });
    });
  });

  describe('problems', () => {
    it('rejects malformed JSON, unknown fields, bad values and wrong content types', async () => {
      const bad = await api('POST', '/api/contacts/allow', { auth: A, raw: '{"sender": ', type: 'application/json' });
      assertProblem(bad, 400, /not valid JSON/);
      assert.equal(bad.body.instance, '/api/contacts/allow');

      const leak = await api('POST', '/api/session', { raw: '{"address":"alice@example.org","password":"hunter2-secret",}', type: 'application/json' });
      assertProblem(leak, 400);
      assert.doesNotMatch(leak.text, /hunter2/, 'the body is not echoed');

      assertProblem(await api('POST', '/api/contacts/allow', { auth: A, raw: '', type: 'application/json' }), 400);
      assertProblem(await api('POST', '/api/contacts/allow', { auth: A, raw: '{"__proto__": {"x": 1}, "sender": "a@b.example"}', type: 'application/json' }), 400);

      const unknown = await api('POST', '/api/contacts/allow', { auth: A, json: { sender: 'a@example.net', admin: true } });
      assertProblem(unknown, 400, /body\.admin: Unknown field/);
      assert.deepEqual(unknown.body.errors, [{ in: 'body', field: 'admin', detail: 'Unknown field' }]);

      const mode = await api('PUT', '/api/me/mode', { auth: A, json: { mode: 'paranoid' } });
      assertProblem(mode, 400, /body\.mode/);
      assert.equal(mode.body.errors[0].field, 'mode');
      assertProblem(await api('PUT', '/api/me/mode', { auth: A, json: {} }), 400, /body\.mode/);
      assertProblem(await api('PUT', '/api/me/mode', { auth: A, json: ['screen'] }), 400, /body/);
      assertProblem(await api('POST', '/api/me/password', { auth: A, json: { password: '' } }), 400, /body\.password/);
      assertProblem(await api('POST', '/api/session', { json: { address: ALICE } }), 400, /body\.password/);

      assertProblem(await api('POST', '/api/contacts/allow', { auth: A, raw: 'sender=a@b.example', type: 'application/x-www-form-urlencoded' }), 415);
      assertProblem(await api('POST', '/api/contacts/allow', { auth: A, raw: '{"sender":"a@b.example"}', type: 'text/plain' }), 415);
      assertProblem(await api('POST', '/api/contacts/allow', { auth: A, raw: 'BEGIN:VCARD', type: 'text/vcard' }), 415);
      assertProblem(await api('POST', '/api/contacts/allow', { auth: A }), 415);
      assert.equal((await api('GET', '/api/me', { auth: A })).body.mode, 'open');
    });

    it('refuses oversized bodies with 413', async () => {
      const big = JSON.stringify({ sender: 'x'.repeat(1024 * 1024 + 10) });
      assertProblem(await api('POST', '/api/contacts/allow', { auth: A, raw: big, type: 'application/json' }), 413, /larger than 1048576 bytes/);
      const card = 'BEGIN:VCARD\r\nVERSION:4.0\r\nNOTE:' + 'y'.repeat(1024 * 1024) + '\r\nEND:VCARD\r\n';
      assertProblem(await api('PUT', '/api/contacts/cards/huge', { auth: A, raw: card, type: 'text/vcard' }), 413);
    });

    it('answers unknown routes with 404 problems', async () => {
      assertProblem(await api('GET', '/api/nope', { auth: A }), 404, /No route for GET \/api\/nope/);
      assertProblem(await api('GET', '/api/nope'), 404);
      assertProblem(await api('PATCH', '/api/me', { auth: A }), 404);
      assertProblem(await api('GET', '/nothing-here?x=1'), 404);
      assertProblem(await api('GET', '/api/contacts/%E0%A4%A', { auth: A }), 400);
    });

    it('hides internal errors behind a generic 500 and logs the cause without secrets', async () => {
      logLines.length = 0;
      const login = await api('POST', '/api/session', { json: { address: ALICE, password: ALICE_PW } });
      const token: string = login.body.token;
      const boom = await api('GET', '/api/test/boom', { auth: { bearer: token } });
      assertProblem(boom, 500, /^Internal server error$/);
      assert.doesNotMatch(boom.text, /kaboom|exploded/);
      await api('GET', '/api/me', { auth: A_BASIC });

      const log = logLines.join('');
      assert.match(log, /kaboom: the database exploded/, 'the cause is logged');
      for (const secret of [token, ALICE_PW, Buffer.from(`${ALICE}:${ALICE_PW}`).toString('base64')]) {
        assert.ok(!log.includes(secret), 'no credentials in the log');
      }
    });
  });

  describe('OpenAPI', () => {
    it('describes every registered /api route, publicly', async () => {
      const res = await api('GET', '/api/openapi.json');
      assert.equal(res.status, 200);
      const doc = res.body;
      assert.equal(doc.openapi, '3.1.0');
      assert.ok(doc.components.securitySchemes.bearer && doc.components.securitySchemes.basic);

      const registered = routes
        .flatMap((r) => (Array.isArray(r.method) ? r.method : [r.method]).map((m) => [String(m), r.url] as const))
        .filter(([method, url]) => url.startsWith('/api/') && method !== 'HEAD' && url !== '/api/test/boom');
      assert.ok(registered.length >= 21, `found ${registered.length} routes`);
      for (const [method, url] of registered) {
        const path = url.replace(/:(\w+)/g, '{$1}');
        const op = doc.paths[path]?.[method.toLowerCase()];
        assert.ok(op, `${method} ${url} is documented`);
        assert.ok(op.summary && op.responses);
        for (const name of path.match(/\{(\w+)\}/g) ?? []) {
          assert.ok(op.parameters.some((p: { name: string; in: string }) => p.in === 'path' && `{${p.name}}` === name), `${method} ${path} documents ${name}`);
        }
      }
      const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p}`));
      assert.equal(documented.length, registered.length, 'nothing documented that is not served');

      // A few spot checks of the generated content.
      assert.deepEqual(doc.paths['/api/session'].post.security, []);
      assert.deepEqual(doc.paths['/api/me/mode'].put.requestBody.content['application/json'].schema.properties.mode.enum, ['open', 'screen', 'strict']);
      assert.ok(doc.paths['/api/contacts/cards/{uid}'].put.requestBody.content['text/vcard']);
      assert.ok(doc.paths['/api/messages/{id}/raw'].get.responses['200'].content['message/rfc822']);
      assert.ok(doc.paths['/api/messages'].get.parameters.some((p: { name: string }) => p.name === 'limit'));
      assert.equal(doc.paths['/api/me'].get.responses['401'].content['application/problem+json'].schema.$ref, '#/components/schemas/Problem');
    });
  });
});
