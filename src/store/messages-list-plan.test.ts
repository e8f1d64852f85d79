/**
 * A mailbox's page of messages (messages.list with a mailbox: the web mail's and the API's
 * listing, mail search's batches), against every backend: with thousands of messages for one
 * user it answers exactly the user's page of the mailbox, and on SQLite its plan looks the
 * mailbox up by (user_id, name) and reads its messages by (mailbox_id, uid), in UID order,
 * even in a store that was never ANALYZEd. The plan it replaced searched (user_id) alone: every
 * message of the user, sorted, on every page.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { listQuery } from './message-repository.ts';
import { sqlitePlanOf, testBackends } from './test-backends.ts';

const backends = await testBackends();
const MESSAGES = 3000;

for (const backend of backends) {
  describe(`messages.list of a mailbox (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: number;
    let bob: number;
    beforeEach(async () => {
      store = await backend.open();
      alice = (await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'screen' })).id;
      bob = (await store.users.create({ address: 'bob@example.com', passwordHash: 'h', mode: 'screen' })).id;
      await backend.query("INSERT INTO message_bodies (sha256, raw, size) VALUES ('x', 'x', 1)");
      // Alice's INBOX holds many messages (UIDs 1..MESSAGES), her Trash every tenth UID again; bob's INBOX three.
      const series = (to: number) => `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${to})`;
      const insert = (user: number, box: string, to: number, where: string) =>
        backend.query(
          `INSERT INTO messages (user_id, mailbox_id, uid, flags, size, subject, received_at, first_contact, body_id) ${series(to)} SELECT ${user}, (SELECT id FROM mailboxes WHERE user_id = ${user} AND name = '${box}'), i, '[]', 1, '${box} ' || i, i, 0, (SELECT min(id) FROM message_bodies) FROM n WHERE ${where}`,
        );
      await insert(alice, 'INBOX', MESSAGES, '1 = 1');
      await insert(alice, 'Trash', MESSAGES, 'i % 10 = 0');
      await insert(bob, 'INBOX', 3, '1 = 1');
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test("answers the user's page of the mailbox, by UID, newest first or oldest first", async () => {
      const subjects = (page: Array<{ subject: string | null }>) => page.map((m) => m.subject);
      assert.deepEqual(subjects(await store.messages.list(alice, { mailbox: 'INBOX', limit: 3, newestFirst: true })), ['INBOX 3000', 'INBOX 2999', 'INBOX 2998']);
      assert.deepEqual(subjects(await store.messages.list(alice, { mailbox: 'Trash', limit: 2, beforeUid: 2990 })), ['Trash 2980', 'Trash 2970']);
      assert.deepEqual(subjects(await store.messages.list(alice, { mailbox: 'INBOX', limit: 2, offset: 10 })), ['INBOX 11', 'INBOX 12']);
      assert.deepEqual(subjects(await store.messages.list(alice, { mailbox: 'Trash', limit: 2, text: 'trash 299' })), ['Trash 2990']);
      assert.deepEqual(subjects(await store.messages.list(bob, { mailbox: 'INBOX', newestFirst: true })), ['INBOX 3', 'INBOX 2', 'INBOX 1'], "bob's own only");
      assert.deepEqual(await store.messages.list(bob, { mailbox: 'Trash' }), []);
    });

    if (backend.name === 'sqlite') {
      test('looks the mailbox up by (user_id, name) and pages on (mailbox_id, uid) without statistics', async () => {
        const pages = [{ newestFirst: true }, { beforeUid: 10 }, { offset: 100 }, {}, { text: 'x', beforeUid: 10 }];
        for (const page of pages) {
          const plan = await sqlitePlanOf(backend, (db) => listQuery(db, 1, { mailbox: 'INBOX', limit: 50, ...page }), '1');
          const why = `${JSON.stringify(page)}\n${plan.join('\n')}`;
          assert.match(plan[0] ?? '', /^SEARCH mb USING COVERING INDEX sqlite_autoindex_mailboxes_1 \(user_id=\? AND name=\?\)/, why);
          assert.match(plan[1] ?? '', /^SEARCH m USING INDEX sqlite_autoindex_messages_1 \(mailbox_id=\?/, why);
          assert.ok(!plan.some((d) => /TEMP B-TREE|messages_user/.test(d)), why);
        }
      });
    }
  });
}
