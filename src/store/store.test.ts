/**
 * Users, credentials, address books and per-user isolation, against every
 * backend (test-backends.ts). Messages, requests and the queue have their own files.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAILBOXES } from '../core/types.ts';
import { StoreConflictError, type Store } from './types.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();

const CARD = (uid: string, email: string) =>
  `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:Someone\r\nEMAIL:${email}\r\nEND:VCARD\r\n`;

for (const backend of backends) {
  describe(`store (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    beforeEach(async () => {
      store = await backend.open();
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('kind names the dialect', () => {
      assert.equal(store.kind, backend.name);
    });

    describe('users', () => {
      test('create makes the account and its mailboxes', async () => {
        const before = Date.now();
        const user = await store.users.create({ address: 'Alice@Example.COM', passwordHash: 'h1', mode: 'open' });
        assert.equal(user.address, 'alice@example.com');
        assert.equal(user.mode, 'open');
        assert.equal(user.passwordHash, 'h1');
        assert.ok(user.createdAt instanceof Date);
        assert.ok(user.createdAt.getTime() >= before && user.createdAt.getTime() <= Date.now());
        assert.equal(typeof user.id, 'number');

        const boxes = await store.messages.mailboxes(user.id);
        assert.deepEqual(
          boxes.map((b) => b.name),
          [...MAILBOXES],
        );
        for (const b of boxes) {
          assert.equal(b.userId, user.id);
          assert.equal(b.uidNext, 1);
          assert.equal(b.count, 0);
          assert.equal(typeof b.uidValidity, 'number');
          assert.ok(b.uidValidity > 0 && b.uidValidity <= 0xffffffff);
        }
      });

      test('a duplicate address is a StoreConflictError and leaves nothing behind', async () => {
        await store.users.create({ address: 'bob@example.com', passwordHash: 'h', mode: 'open' });
        await assert.rejects(
          store.users.create({ address: 'BOB@example.com', passwordHash: 'h2', mode: 'screen' }),
          (err: unknown) => err instanceof StoreConflictError && /bob@example\.com/.test(err.message),
        );
        assert.equal((await store.users.list()).length, 1);
        assert.equal(await backend.count('mailboxes'), MAILBOXES.length);
      });

      test('find, list, setMode, setPasswordHash', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'ha', mode: 'open' });
        const b = await store.users.create({ address: 'b@example.com', passwordHash: 'hb', mode: 'strict' });
        assert.deepEqual(await store.users.findById(a.id), a);
        assert.deepEqual(await store.users.findByAddress('A@EXAMPLE.com'), a);
        assert.equal(await store.users.findByAddress('nobody@example.com'), undefined);
        assert.equal(await store.users.findById(999_999), undefined);
        assert.deepEqual(
          (await store.users.list()).map((u) => u.address),
          ['a@example.com', 'b@example.com'],
        );
        await store.users.setMode(a.id, 'screen');
        await store.users.setPasswordHash(a.id, 'new');
        const a2 = await store.users.findById(a.id);
        assert.equal(a2?.mode, 'screen');
        assert.equal(a2?.passwordHash, 'new');
        assert.equal((await store.users.findById(b.id))?.mode, 'strict');
      });

      test('app passwords are per user', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
        const b = await store.users.create({ address: 'b@example.com', passwordHash: 'h', mode: 'open' });
        const p1 = await store.users.addAppPassword(a.id, { publicId: '000000000001', name: 'phone', scope: 'all', passwordHash: 'hash1' }, 50);
        const p2 = await store.users.addAppPassword(a.id, { publicId: '000000000002', name: 'laptop', scope: 'contacts', passwordHash: 'hash2' }, 50);
        assert.notEqual(p1.id, p2.id);
        const list = await store.users.listAppPasswords(a.id);
        assert.deepEqual(
          list.map((p) => [p.id, p.publicId, p.name, p.scope, p.lastUsedAt]),
          [
            [p1.id, '000000000001', 'phone', 'all', null],
            [p2.id, '000000000002', 'laptop', 'contacts', null],
          ],
        );
        assert.ok(list[0]!.createdAt instanceof Date);
        // Looked up by the public id alone, with the owner and the hash.
        const found = await store.users.findAppPassword('000000000002');
        assert.equal(found?.userId, a.id);
        assert.equal(found?.passwordHash, 'hash2');
        assert.equal(await store.users.findAppPassword('00000000000f'), undefined);
        const used = new Date(Date.now() - 1000);
        await store.users.touchAppPassword(p1.id, used);
        assert.equal((await store.users.findAppPasswordById(a.id, p1.id))?.lastUsedAt?.getTime(), used.getTime());
        assert.equal(await store.users.findAppPasswordById(b.id, p1.id), undefined);
        assert.deepEqual(await store.users.listAppPasswords(b.id), []);
        assert.equal(await store.users.removeAppPassword(b.id, p1.id), false, 'B cannot remove A’s password');
        assert.equal(await store.users.removeAppPassword(a.id, p1.id), true);
        assert.equal(await store.users.removeAppPassword(a.id, p1.id), false);
        assert.deepEqual(
          (await store.users.listAppPasswords(a.id)).map((p) => p.name),
          ['laptop'],
        );
      });

      test('app passwords: at most `max` per user; revoking them ends their sessions', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
        const b = await store.users.create({ address: 'b@example.com', passwordHash: 'h', mode: 'open' });
        const add = (u: number, i: number) => store.users.addAppPassword(u, { publicId: `${u}`.padStart(6, '0') + `${i}`.padStart(6, '0'), name: `p${i}`, scope: 'all', passwordHash: 'x' }, 3);
        const ps = [await add(a.id, 1), await add(a.id, 2), await add(a.id, 3)];
        await assert.rejects(add(a.id, 4), StoreConflictError);
        await add(b.id, 1); // the limit is per user
        const expires = new Date(Date.now() + 3_600_000);
        await store.users.addToken(a.id, 'tok-app', expires, ps[0]!.id);
        await store.users.addToken(a.id, 'tok-main', expires);
        assert.equal((await store.users.findToken('tok-app'))?.appPasswordId, ps[0]!.id);
        assert.equal((await store.users.findToken('tok-main'))?.appPasswordId, null);
        await store.users.removeAppPassword(a.id, ps[0]!.id);
        assert.equal(await store.users.findToken('tok-app'), undefined);
        await store.users.addToken(a.id, 'tok-app2', expires, ps[1]!.id);
        assert.equal(await store.users.removeAppPasswords(a.id), 2);
        assert.equal(await store.users.findToken('tok-app2'), undefined);
        assert.ok(await store.users.findToken('tok-main'), 'the sessions of the account password stay');
        assert.equal((await store.users.listAppPasswords(b.id)).length, 1);
      });

      test('API tokens', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
        const expires = new Date(Date.now() + 3_600_000);
        await store.users.addToken(a.id, 'sha-of-token', expires);
        assert.deepEqual(await store.users.findToken('sha-of-token'), { userId: a.id, expiresAt: expires, appPasswordId: null });
        assert.equal(await store.users.findToken('other'), undefined);
        await assert.rejects(store.users.addToken(a.id, 'sha-of-token', expires), StoreConflictError);
        await store.users.removeToken('sha-of-token');
        assert.equal(await store.users.findToken('sha-of-token'), undefined);
      });
    });

    describe('contacts', () => {
      test('put stores the text as given with a quoted hex etag, get and list read it back', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
        const vcard = CARD('c1', 'Friend@Example.org');
        const c = await store.contacts.put(a.id, {
          book: 'default',
          uid: 'c1',
          vcard,
          entries: [{ kind: 'address', value: 'friend@example.org', action: 'allow' }],
        });
        assert.equal(c.vcard, vcard);
        assert.match(c.etag, /^"[0-9a-f]{32}"$/);
        assert.equal(c.userId, a.id);
        assert.ok(c.updatedAt instanceof Date);
        assert.deepEqual(await store.contacts.get(a.id, 'default', 'c1'), c);
        assert.equal(await store.contacts.get(a.id, 'other', 'c1'), undefined);

        await store.contacts.put(a.id, { book: 'work', uid: 'c2', vcard: CARD('c2', 'x@y.z'), entries: [] });
        assert.deepEqual(
          (await store.contacts.list(a.id)).map((x) => `${x.book}/${x.uid}`),
          ['default/c1', 'work/c2'],
        );
        assert.deepEqual(
          (await store.contacts.list(a.id, 'work')).map((x) => x.uid),
          ['c2'],
        );
      });

      test('put replaces the card and all its entries; the etag follows the text', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
        const first = await store.contacts.put(a.id, {
          book: 'default',
          uid: 'c1',
          vcard: CARD('c1', 'old@example.org'),
          entries: [
            { kind: 'address', value: 'old@example.org', action: 'allow' },
            { kind: 'domain', value: 'example.org', action: 'allow' },
          ],
        });
        const second = await store.contacts.put(a.id, {
          book: 'default',
          uid: 'c1',
          vcard: CARD('c1', 'new@example.net'),
          entries: [{ kind: 'address', value: 'new@example.net', action: 'block' }],
        });
        assert.equal(second.id, first.id);
        assert.notEqual(second.etag, first.etag);
        assert.equal((await store.contacts.list(a.id)).length, 1);
        assert.deepEqual(
          await store.contacts.match(a.id, [
            { kind: 'address', value: 'old@example.org' },
            { kind: 'domain', value: 'example.org' },
          ]),
          [],
        );
        assert.deepEqual(await store.contacts.match(a.id, [{ kind: 'address', value: 'new@example.net' }]), [
          { kind: 'address', value: 'new@example.net', action: 'block', uid: 'c1', book: 'default' },
        ]);
        assert.equal(await backend.count('contact_entries'), 1);
        // Same text, same etag.
        const third = await store.contacts.put(a.id, { book: 'default', uid: 'c1', vcard: CARD('c1', 'new@example.net'), entries: [] });
        assert.equal(third.etag, second.etag);
      });

      test('match returns every entry equal to one of the probes, nothing else', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
        await store.contacts.put(a.id, {
          book: 'default',
          uid: 'p',
          vcard: CARD('p', 'p@example.org'),
          entries: [
            { kind: 'address', value: 'p@example.org', action: 'allow' },
            { kind: 'list', value: 'news.example.org', action: 'allow' },
          ],
        });
        await store.contacts.put(a.id, {
          book: 'default',
          uid: 'spam',
          vcard: CARD('spam', 'x@spam.test'),
          entries: [{ kind: 'domain', value: 'spam.test', action: 'block' }],
        });
        const hits = await store.contacts.match(a.id, [
          { kind: 'address', value: 'p@example.org' },
          { kind: 'address', value: 'p@example.org' },
          { kind: 'domain', value: 'spam.test' },
          { kind: 'domain', value: 'p@example.org' }, // right value, wrong kind
          { kind: 'list', value: 'other.example.org' },
        ]);
        assert.deepEqual(
          hits.map((h) => `${h.kind}:${h.value}:${h.action}:${h.uid}`).sort(),
          ['address:p@example.org:allow:p', 'domain:spam.test:block:spam'],
        );
        assert.deepEqual(await store.contacts.match(a.id, []), []);
      });

      test('remove deletes the card and its entries', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
        await store.contacts.put(a.id, {
          book: 'default',
          uid: 'c1',
          vcard: CARD('c1', 'f@example.org'),
          entries: [{ kind: 'address', value: 'f@example.org', action: 'allow' }],
        });
        assert.equal(await store.contacts.remove(a.id, 'default', 'c1'), true);
        assert.equal(await store.contacts.remove(a.id, 'default', 'c1'), false);
        assert.equal(await store.contacts.get(a.id, 'default', 'c1'), undefined);
        assert.deepEqual(await store.contacts.match(a.id, [{ kind: 'address', value: 'f@example.org' }]), []);
        assert.equal(await backend.count('contact_entries'), 0);
      });
    });

    describe('isolation between users', () => {
      test('user B can neither see nor change A’s cards, messages or requests', async () => {
        const a = await store.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'screen' });
        const b = await store.users.create({ address: 'b@example.com', passwordHash: 'h', mode: 'screen' });
        await store.contacts.put(a.id, {
          book: 'default',
          uid: 'c1',
          vcard: CARD('c1', 'f@example.org'),
          entries: [{ kind: 'address', value: 'f@example.org', action: 'allow' }],
        });
        const [held] = await store.messages.deliver([
          {
            userId: a.id,
            mailbox: 'Screener',
            raw: Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
            flags: [],
            sender: 'stranger@example.net',
            from: 'stranger@example.net',
            subject: 'hi',
            receivedAt: new Date(),
            firstContact: true,
            request: { sender: 'stranger@example.net', authDomain: 'example.net', subject: 'hi' },
          },
        ]);
        const id = held!.id;

        // Cards
        assert.deepEqual(await store.contacts.list(b.id), []);
        assert.equal(await store.contacts.get(b.id, 'default', 'c1'), undefined);
        assert.deepEqual(await store.contacts.match(b.id, [{ kind: 'address', value: 'f@example.org' }]), []);
        assert.equal(await store.contacts.remove(b.id, 'default', 'c1'), false);
        assert.ok(await store.contacts.get(a.id, 'default', 'c1'));

        // Messages
        assert.equal(await store.messages.get(b.id, id), undefined);
        assert.deepEqual(await store.messages.list(b.id), []);
        assert.equal(await store.messages.setFlags(b.id, id, ['\\Seen']), false);
        assert.equal(await store.messages.move(b.id, [id], 'INBOX'), 0);
        assert.equal(await store.messages.remove(b.id, [id]), 0);
        const still = await store.messages.get(a.id, id);
        assert.equal(still?.mailbox, 'Screener');
        assert.deepEqual(still?.flags, []);

        // Requests
        assert.equal(await store.requests.get(b.id, 'stranger@example.net'), undefined);
        assert.deepEqual(await store.requests.list(b.id), []);
        assert.deepEqual(await store.requests.heldMessageIds(b.id, ['stranger@example.net']), []);
        assert.deepEqual(await store.requests.sendersOfDomain(b.id, 'example.net'), []);
        assert.equal(await store.requests.setStatus(b.id, ['stranger@example.net'], 'denied'), 0);
        assert.equal(await store.requests.remove(b.id, ['stranger@example.net']), 0);
        const req = await store.requests.get(a.id, 'stranger@example.net');
        assert.equal(req?.status, 'pending');
        assert.equal(req?.held, 1);
      });
    });
  });
}
