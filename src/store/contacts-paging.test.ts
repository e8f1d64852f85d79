/**
 * The web app's reads of the address book against every backend: one card
 * by id (only the owner's), key-paged pages newest first with a search over
 * the card text (% and _ literal), and the count (migration 0013's index).
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();
const CARD = (uid: string, fn: string) => `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:${fn}\r\nEMAIL:${uid}@example.org\r\nEND:VCARD\r\n`;

for (const backend of backends) {
  describe(`contacts paging (${backend.name})`, { skip: backend.skip }, () => {
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

    test('byId, page (newest first, beforeId, text) and count see only the owner’s cards', async () => {
      const ids: number[] = [];
      for (let i = 0; i < 7; i++) {
        const uid = `c${i}`;
        ids.push((await store.contacts.put(alice, { book: 'default', uid, vcard: CARD(uid, i === 3 ? 'Ann 100%_done' : `Person ${i}`), entries: [] })).id);
        await store.contacts.put(bob, { book: 'default', uid: `b${i}`, vcard: CARD(`b${i}`, `Bob friend ${i}`), entries: [] });
      }
      assert.equal(await store.contacts.count(alice), 7);
      assert.equal((await store.contacts.byId(alice, ids[2]!))?.uid, 'c2');
      const bobsCard = (await store.contacts.page(bob, { limit: 1 }))[0]!;
      assert.equal(await store.contacts.byId(alice, bobsCard.id), undefined, "another user's id reads as absent");

      // limit + 1 rows: the caller learns that an older page exists.
      const first = await store.contacts.page(alice, { limit: 3 });
      assert.deepEqual(first.map((c) => c.uid), ['c6', 'c5', 'c4', 'c3']);
      const second = await store.contacts.page(alice, { limit: 3, beforeId: first[2]!.id });
      assert.deepEqual(second.map((c) => c.uid), ['c3', 'c2', 'c1', 'c0']);
      const last = await store.contacts.page(alice, { limit: 3, beforeId: second[2]!.id });
      assert.deepEqual(last.map((c) => c.uid), ['c0']);

      assert.deepEqual((await store.contacts.page(alice, { limit: 10, text: 'PERSON' })).map((c) => c.uid), ['c6', 'c5', 'c4', 'c2', 'c1', 'c0']);
      assert.deepEqual((await store.contacts.page(alice, { limit: 10, text: '100%_' })).map((c) => c.uid), ['c3']);
      assert.deepEqual((await store.contacts.page(alice, { limit: 10, text: '1%0' })).map((c) => c.uid), [], '% is literal');
      assert.deepEqual((await store.contacts.page(alice, { limit: 10, text: 'bob friend' })).map((c) => c.uid), [], "never another user's card");
    });
  });
}
