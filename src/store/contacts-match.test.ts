/**
 * The address-book match (contacts.match), which every accepted message and every stranger's
 * notice runs once per recipient, against every backend: with thousands of entries for the
 * user it answers exactly the entries of the probes, and on SQLite its plan searches the index
 * (user_id, kind, value) by all three columns even in a store that was never ANALYZEd. The
 * plan of the OR it replaced searched by user_id alone and read every entry of the user.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { matchQuery } from './contact-repository.ts';
import { sqlitePlanOf, testBackends } from './test-backends.ts';

const backends = await testBackends();
const ENTRIES = 3000;

for (const backend of backends) {
  describe(`contacts.match (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: number;
    let bob: number;
    beforeEach(async () => {
      store = await backend.open();
      alice = (await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'screen' })).id;
      bob = (await store.users.create({ address: 'bob@example.com', passwordHash: 'h', mode: 'screen' })).id;
      // Many cards for alice (one address entry each, a domain entry on every tenth), as an import leaves them.
      const series = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ENTRIES})`;
      await backend.query(`INSERT INTO contacts (user_id, book, uid, vcard, etag, updated_at) ${series} SELECT ${alice}, 'default', 'u' || i, 'x', 'e', 0 FROM n`);
      await backend.query(
        `INSERT INTO contact_entries (contact_id, user_id, kind, value, action) SELECT id, user_id, 'address', 'p' || substr(uid, 2) || '@d' || substr(uid, 2) || '.test', 'allow' FROM contacts WHERE user_id = ${alice} ORDER BY id`,
      );
      await backend.query(
        `INSERT INTO contact_entries (contact_id, user_id, kind, value, action) SELECT id, user_id, 'domain', 'd' || substr(uid, 2) || '.test', 'block' FROM contacts WHERE user_id = ${alice} AND CAST(substr(uid, 2) AS integer) % 10 = 0 ORDER BY id`,
      );
      await store.contacts.put(bob, { book: 'default', uid: 'b1', vcard: 'x', entries: [{ kind: 'address', value: 'p7@d7.test', action: 'allow' }] });
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('answers exactly the entries of the probes, in entry order, the user’s own only', async () => {
      const probes = [
        { kind: 'address' as const, value: 'p20@d20.test' },
        { kind: 'domain' as const, value: 'd20.test' },
        { kind: 'address' as const, value: 'p7@d7.test' },
        { kind: 'domain' as const, value: 'p7@d7.test' },
        { kind: 'address' as const, value: 'nobody@d7.test' },
        { kind: 'address' as const, value: 'p20@d20.test' },
      ];
      const got = await store.contacts.match(alice, probes);
      assert.deepEqual(
        got.map((e) => `${e.kind} ${e.value} ${e.action} ${e.uid}`),
        ['address p7@d7.test allow u7', 'address p20@d20.test allow u20', 'domain d20.test block u20'],
        'each entry once, ordered by entry id (addresses first: the domain entries were added after them)',
      );
      assert.deepEqual((await store.contacts.match(bob, probes)).map((e) => e.uid), ['b1']);
      assert.deepEqual(await store.contacts.match(alice, [{ kind: 'address', value: 'nobody@d7.test' }]), []);
    });

    if (backend.name === 'sqlite') {
      test('searches the index by user, kind and value without statistics', async () => {
        for (const count of [1, 3]) {
          const plan = await sqlitePlanOf(backend, (db) => matchQuery(db, count, <T>(i: number) => i as T));
          assert.ok(plan.some((d) => /SEARCH e USING INDEX contact_entries_lookup \(user_id=\? AND kind=\? AND value=\?\)/.test(d)), plan.join('\n'));
        }
      });
    }
  });
}
