/**
 * The held messages of requests (requests.heldMessageIds: a Screener decision moves them out of
 * the Screener), against every backend: with many messages for the user it answers exactly the
 * Screener messages of the given senders, and on SQLite its plan finds the requests by
 * (user_id, sender) and their messages by request_id, for one sender or several, even in a
 * store that was never ANALYZEd. With two senders or more the plan it replaced searched
 * messages by (user_id) alone: every message of the user.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { heldQuery } from './contact-request-repository.ts';
import { sqlitePlanOf, testBackends } from './test-backends.ts';

const backends = await testBackends();
const MESSAGES = 3000;

for (const backend of backends) {
  describe(`requests.heldMessageIds (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: number;
    let bob: number;
    beforeEach(async () => {
      store = await backend.open();
      alice = (await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'screen' })).id;
      bob = (await store.users.create({ address: 'bob@example.com', passwordHash: 'h', mode: 'screen' })).id;
      await backend.query("INSERT INTO message_bodies (sha256, raw, size) VALUES ('x', 'x', 1)");
      for (const user of [alice, bob]) {
        await backend.query(
          `INSERT INTO contact_requests (user_id, sender, first_seen, last_seen, count, status) VALUES (${user}, 's1@x.test', 0, 0, 1, 'pending'), (${user}, 's2@x.test', 0, 0, 1, 'pending'), (${user}, 's3@x.test', 0, 0, 1, 'pending')`,
        );
      }
      const box = (user: number, name: string) => `(SELECT id FROM mailboxes WHERE user_id = ${user} AND name = '${name}')`;
      const body = '(SELECT min(id) FROM message_bodies)';
      // Each request holds one message in the Screener; s2's other message was moved to the INBOX already.
      await backend.query(
        `INSERT INTO messages (user_id, mailbox_id, uid, flags, size, received_at, first_contact, body_id, request_id) SELECT user_id, ${box(alice, 'Screener')}, id, '[]', 1, 0, 1, ${body}, id FROM contact_requests WHERE user_id = ${alice}`,
      );
      await backend.query(
        `INSERT INTO messages (user_id, mailbox_id, uid, flags, size, received_at, first_contact, body_id, request_id) SELECT user_id, ${box(bob, 'Screener')}, id, '[]', 1, 0, 1, ${body}, id FROM contact_requests WHERE user_id = ${bob}`,
      );
      await backend.query(
        `INSERT INTO messages (user_id, mailbox_id, uid, flags, size, received_at, first_contact, body_id, request_id) SELECT ${alice}, ${box(alice, 'INBOX')}, 1, '[]', 1, 0, 1, ${body}, id FROM contact_requests WHERE user_id = ${alice} AND sender = 's2@x.test'`,
      );
      const series = `WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < ${MESSAGES})`;
      await backend.query(
        `INSERT INTO messages (user_id, mailbox_id, uid, flags, size, received_at, first_contact, body_id) ${series} SELECT ${alice}, ${box(alice, 'INBOX')}, i, '[]', 1, i, 0, ${body} FROM n`,
      );
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test("answers the user's Screener messages of the senders only", async () => {
      const screener = async (user: number, senders: string[]) =>
        (await backend.query(`SELECT m.id FROM messages m JOIN contact_requests r ON r.id = m.request_id JOIN mailboxes mb ON mb.id = m.mailbox_id WHERE m.user_id = ${user} AND mb.name = 'Screener' AND r.sender IN (${senders.map((s) => `'${s}'`).join(', ')}) ORDER BY m.id`)).map((r) => Number(r.id));
      const both = await screener(alice, ['s1@x.test', 's2@x.test']);
      assert.equal(both.length, 2);
      assert.deepEqual(await store.requests.heldMessageIds(alice, ['S1@x.test', 's2@x.test', 'nobody@x.test']), both, 'case-insensitive senders; the INBOX copy of s2 is not held');
      assert.deepEqual(await store.requests.heldMessageIds(alice, ['s3@x.test']), await screener(alice, ['s3@x.test']));
      assert.deepEqual(await store.requests.heldMessageIds(bob, ['s1@x.test', 's2@x.test', 's3@x.test']), await screener(bob, ['s1@x.test', 's2@x.test', 's3@x.test']), "bob's own");
      assert.deepEqual(await store.requests.heldMessageIds(alice, ['nobody@x.test', 'other@x.test']), []);
    });

    if (backend.name === 'sqlite') {
      test('finds the requests by (user_id, sender) and their messages by request_id without statistics', async () => {
        for (const senders of [['a'], ['a', 'b'], ['a', 'b', 'c', 'd', 'e']]) {
          const plan = await sqlitePlanOf(backend, (db) => heldQuery({ db, dialect: 'sqlite' }, 1, senders));
          const why = `${senders.length} senders\n${plan.join('\n')}`;
          assert.match(plan[0] ?? '', /^SEARCH r USING COVERING INDEX sqlite_autoindex_contact_requests_1 \(user_id=\? AND sender=\?\)/, why);
          assert.match(plan[1] ?? '', /^SEARCH m USING INDEX messages_request \(request_id=\?\)/, why);
        }
      });
    }
  });
}
