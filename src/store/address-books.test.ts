/**
 * Address books for CardDAV (migration 0004) against every backend: books,
 * cards by href with conditional writes, UID conflicts, the change log and
 * sync tokens, and that writes by UID (contacts.put/remove) advance it too.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import type { ContactEntry } from '../core/types.ts';
import { StoreConflictError, type Store } from './types.ts';
import { testBackends } from './test-backends.ts';
import { migrations } from './migrations.ts';
import { openStore } from './open.ts';
import { conditionsHold } from './address-book-repository.ts';

const backends = await testBackends();

const CARD = (uid: string, email: string, extra = '') =>
  `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:Someone\r\nEMAIL:${email}\r\n${extra}END:VCARD\r\n`;
const entry = (email: string): ContactEntry[] => [{ kind: 'address', value: email, action: 'allow' }];

test('conditionsHold follows RFC 9110 (strong comparison)', () => {
  assert.equal(conditionsHold(undefined, undefined), true);
  assert.equal(conditionsHold({ ifMatch: '*' }, undefined), false);
  assert.equal(conditionsHold({ ifMatch: '*' }, '"a"'), true);
  assert.equal(conditionsHold({ ifMatch: ['"a"', '"b"'] }, '"b"'), true);
  assert.equal(conditionsHold({ ifMatch: ['"a"'] }, '"b"'), false);
  assert.equal(conditionsHold({ ifNoneMatch: '*' }, undefined), true);
  assert.equal(conditionsHold({ ifNoneMatch: '*' }, '"a"'), false);
  assert.equal(conditionsHold({ ifNoneMatch: ['"a"'] }, '"a"'), false);
  assert.equal(conditionsHold({ ifNoneMatch: ['"a"'] }, '"b"'), true);
});

for (const backend of backends) {
  describe(`address books (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: number;
    let bob: number;
    beforeEach(async () => {
      store = await backend.open();
      alice = (await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'open' })).id;
      bob = (await store.users.create({ address: 'bob@example.com', passwordHash: 'h', mode: 'open' })).id;
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('books: ensure is lazy and idempotent, create refuses a duplicate, update and list', async () => {
      assert.deepEqual(await store.addressBooks.list(alice), []);
      const d = await store.addressBooks.ensure(alice, 'default');
      assert.equal((await store.addressBooks.ensure(alice, 'default')).id, d.id);
      assert.equal(d.syncSeq, 0);
      const work = await store.addressBooks.create(alice, { name: 'work', displayName: 'Work' });
      assert.equal(work.displayName, 'Work');
      await assert.rejects(store.addressBooks.create(alice, { name: 'work' }), StoreConflictError);
      assert.equal(await store.addressBooks.update(alice, 'work', { displayName: 'Office', description: 'colleagues' }), true);
      assert.equal(await store.addressBooks.update(alice, 'nope', { displayName: 'x' }), false);
      assert.deepEqual(
        (await store.addressBooks.list(alice)).map((b) => [b.name, b.displayName, b.description]),
        [['default', null, null], ['work', 'Office', 'colleagues']],
      );
      assert.deepEqual(await store.addressBooks.list(bob), [], 'per user');
    });

    test('contacts.put creates the default book, gets <uid>.vcf as href, and advances the sync sequence', async () => {
      const c = await store.contacts.put(alice, { book: 'default', uid: 'u1', vcard: CARD('u1', 'a@x.test'), entries: entry('a@x.test') });
      assert.equal(c.href, 'u1.vcf');
      const b1 = await store.addressBooks.get(alice, 'default');
      assert.equal(b1?.syncSeq, 1);
      // A UID that is no plain file name gets a random href.
      const odd = await store.contacts.put(alice, { book: 'default', uid: 'urn:uuid:x/y', vcard: CARD('urn:uuid:x/y', 'b@x.test'), entries: entry('b@x.test') });
      assert.match(odd.href, /^[0-9a-f-]{36}\.vcf$/);
      // Replacing keeps the href and changes the etag.
      const c2 = await store.contacts.put(alice, { book: 'default', uid: 'u1', vcard: CARD('u1', 'a2@x.test'), entries: entry('a2@x.test') });
      assert.equal(c2.href, 'u1.vcf');
      assert.notEqual(c2.etag, c.etag);
      const ch = await store.addressBooks.changes(alice, 'default', 1);
      assert.deepEqual(ch, { seq: 3, changes: [{ href: odd.href, deleted: false }, { href: 'u1.vcf', deleted: false }] });
      assert.equal(await store.contacts.remove(alice, 'default', 'u1'), true);
      assert.equal(await store.contacts.remove(alice, 'default', 'u1'), false);
      assert.deepEqual(await store.addressBooks.changes(alice, 'default', 3), { seq: 4, changes: [{ href: 'u1.vcf', deleted: true }] });
    });

    test('putCard: the client\'s href, If-None-Match and If-Match, UID conflicts, no book', async () => {
      await store.addressBooks.ensure(alice, 'default');
      const put = (href: string, uid: string | null, email: string, cond?: Parameters<Store['addressBooks']['putCard']>[2]) =>
        store.addressBooks.putCard(alice, { book: 'default', href, uid, vcard: CARD(uid ?? 'none', email), entries: entry(email) }, cond);

      const r1 = await put('Card One.vcf', 'uid-1', 'one@x.test', { ifNoneMatch: '*' });
      assert.equal(r1.status, 'ok');
      if (r1.status !== 'ok') return;
      assert.equal(r1.created, true);
      assert.equal(r1.contact.href, 'Card One.vcf');
      assert.equal(r1.contact.uid, 'uid-1');
      assert.deepEqual(await put('Card One.vcf', 'uid-1', 'one@x.test', { ifNoneMatch: '*' }), { status: 'precondition-failed' });
      assert.deepEqual(await put('Card One.vcf', 'uid-1', 'x@x.test', { ifMatch: ['"nope"'] }), { status: 'precondition-failed' });
      assert.deepEqual(await put('missing.vcf', 'uid-9', 'x@x.test', { ifMatch: '*' }), { status: 'precondition-failed' });
      const r2 = await put('Card One.vcf', 'uid-1', 'one2@x.test', { ifMatch: [r1.contact.etag] });
      assert.equal(r2.status, 'ok');
      if (r2.status !== 'ok') return;
      assert.equal(r2.created, false);
      assert.notEqual(r2.contact.etag, r1.contact.etag);
      // The index follows the card; the failed writes changed nothing.
      assert.deepEqual((await store.contacts.match(alice, [{ kind: 'address', value: 'one@x.test' }])).length, 0);
      assert.deepEqual((await store.contacts.match(alice, [{ kind: 'address', value: 'one2@x.test' }])).length, 1);
      assert.equal((await store.addressBooks.get(alice, 'default'))?.syncSeq, 2);

      assert.deepEqual(await put('other.vcf', 'uid-1', 'dup@x.test'), { status: 'uid-conflict', href: 'Card One.vcf' });
      assert.equal(await store.addressBooks.getCard(alice, 'default', 'other.vcf'), undefined);
      // A card without UID keeps the key it was given first.
      const r3 = await put('nouid.vcf', null, 'n@x.test');
      const r4 = await put('nouid.vcf', null, 'n2@x.test');
      assert.ok(r3.status === 'ok' && r4.status === 'ok' && r3.contact.uid === r4.contact.uid);
      // The UID of a resource may change.
      const r5 = await put('Card One.vcf', 'uid-1b', 'one3@x.test');
      assert.ok(r5.status === 'ok' && !r5.created && r5.contact.uid === 'uid-1b');

      assert.deepEqual(
        await store.addressBooks.putCard(alice, { book: 'work', href: 'a.vcf', uid: 'a', vcard: CARD('a', 'a@x.test'), entries: [] }),
        { status: 'no-book' },
      );
      assert.equal(await store.addressBooks.get(alice, 'work'), undefined, 'a PUT does not create a book');
    });

    test('removeCard with conditions; per-user isolation', async () => {
      await store.addressBooks.ensure(alice, 'default');
      await store.addressBooks.ensure(bob, 'default');
      const r = await store.addressBooks.putCard(alice, { book: 'default', href: 'a.vcf', uid: 'a', vcard: CARD('a', 'a@x.test'), entries: entry('a@x.test') });
      assert.equal(r.status, 'ok');
      assert.equal(await store.addressBooks.getCard(bob, 'default', 'a.vcf'), undefined);
      assert.equal(await store.addressBooks.removeCard(bob, 'default', 'a.vcf'), 'not-found');
      assert.equal(await store.addressBooks.removeCard(alice, 'default', 'a.vcf', { ifMatch: ['"stale"'] }), 'precondition-failed');
      assert.equal(await store.addressBooks.removeCard(alice, 'default', 'a.vcf', { ifMatch: '*' }), 'deleted');
      assert.equal(await store.addressBooks.removeCard(alice, 'default', 'a.vcf'), 'not-found');
      assert.deepEqual(await store.contacts.match(alice, [{ kind: 'address', value: 'a@x.test' }]), []);
      assert.equal(await store.addressBooks.changes(bob, 'nope', 0), undefined);
      assert.deepEqual(await store.addressBooks.changes(bob, 'default', 0), { seq: 0, changes: [] });
    });

    test('sync tokens: invalid numbers, pruned tombstones', async () => {
      await store.addressBooks.ensure(alice, 'default');
      for (const n of [1, 2, 3]) {
        await store.addressBooks.putCard(alice, { book: 'default', href: `${n}.vcf`, uid: `${n}`, vcard: CARD(`${n}`, `${n}@x.test`), entries: [] });
      }
      await store.addressBooks.removeCard(alice, 'default', '2.vcf');
      assert.equal(await store.addressBooks.changes(alice, 'default', 5), 'invalid');
      assert.equal(await store.addressBooks.changes(alice, 'default', -1), 'invalid');
      assert.deepEqual(await store.addressBooks.changes(alice, 'default', 0), {
        seq: 4,
        changes: [{ href: '1.vcf', deleted: false }, { href: '3.vcf', deleted: false }, { href: '2.vcf', deleted: true }],
      });
      assert.equal(await store.addressBooks.pruneTombstones(new Date(Date.now() - 60_000)), 0, 'too recent');
      assert.equal(await store.addressBooks.pruneTombstones(new Date(Date.now() + 1000)), 1);
      assert.equal(await store.addressBooks.changes(alice, 'default', 3), 'invalid', 'could miss the forgotten deletion');
      assert.deepEqual(await store.addressBooks.changes(alice, 'default', 4), { seq: 4, changes: [] });
    });

    test('removing a book removes its cards, index entries and change log', async () => {
      await store.addressBooks.create(alice, { name: 'work' });
      await store.addressBooks.putCard(alice, { book: 'work', href: 'w.vcf', uid: 'w', vcard: CARD('w', 'w@x.test'), entries: entry('w@x.test') });
      await store.contacts.put(alice, { book: 'default', uid: 'd', vcard: CARD('d', 'd@x.test'), entries: entry('d@x.test') });
      assert.equal((await store.contacts.match(alice, [{ kind: 'address', value: 'w@x.test' }]))[0]?.book, 'work');
      assert.equal(await store.addressBooks.remove(alice, 'work'), true);
      assert.equal(await store.addressBooks.remove(alice, 'work'), false);
      assert.deepEqual(await store.contacts.match(alice, [{ kind: 'address', value: 'w@x.test' }]), []);
      assert.equal((await store.contacts.list(alice)).length, 1);
      assert.equal(await backend.count('contact_changes'), 1);
    });

    test('cardsWithEntryKind lists cards across users', async () => {
      const expect: ContactEntry = { kind: 'expect', value: 'shop.test', action: 'allow' };
      await store.contacts.put(alice, { book: 'default', uid: 'e', vcard: CARD('e', 'e@x.test'), entries: [expect, ...entry('e@x.test')] });
      await store.contacts.put(bob, { book: 'default', uid: 'f', vcard: CARD('f', 'f@x.test'), entries: [expect] });
      await store.contacts.put(bob, { book: 'default', uid: 'g', vcard: CARD('g', 'g@x.test'), entries: entry('g@x.test') });
      assert.deepEqual(await store.addressBooks.cardsWithEntryKind('expect'), [
        { userId: alice, book: 'default', href: 'e.vcf' },
        { userId: bob, book: 'default', href: 'f.vcf' },
      ]);
    });
  });
}

test('migration 0004 gives existing cards an href and their books a row', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-0004-'));
  const path = join(dir, 'old.db');
  try {
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new Database(path) }) });
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations('sqlite') } });
    const { error } = await migrator.migrateTo('0002_queue_worker');
    assert.ifError(error);
    const raw = new Database(path);
    raw.prepare(`INSERT INTO users (address, password_hash, mode, created_at) VALUES ('old@example.com', 'h', 'open', 0)`).run();
    raw.prepare(`INSERT INTO contacts (user_id, book, uid, vcard, etag, updated_at) VALUES (1, 'default', 'old-1', 'x', '"e"', 0)`).run();
    raw.close();
    await db.destroy();

    const store = await openStore(`sqlite:${path}`);
    try {
      const [card] = await store.contacts.list(1);
      assert.equal(card?.href, 'old-1.vcf');
      const book = await store.addressBooks.get(1, 'default');
      assert.equal(book?.syncSeq, 0);
      assert.deepEqual(await store.addressBooks.changes(1, 'default', 0), { seq: 0, changes: [] });
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
