/**
 * One account's sent mail by `sender_key` (migration 0028, sent-queries.ts) on every backend:
 * queue.listBySender and twmOut.listBySender answer the account's own messages only (its
 * address and `+tag` subaddresses, in any case), newest first, the limit counting messages
 * (each with all its recipients or notices), or only the messages asked for; the migration fills
 * the key of rows written before it; and on SQLite, never ANALYZEd, every read searches its
 * index by the key and reads no other sender's rows.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store, TwmOutNotice } from './types.ts';
import { openStore } from './open.ts';
import { queueSentByKey, queueSentOfMessages, twmSentNotices, twmSentOfMessages, twmSentPage } from './sent-queries.ts';
import { sqlitePlanOf, testBackends } from './test-backends.ts';

const backends = await testBackends();
const T0 = Date.UTC(2026, 0, 1);
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const raw = Buffer.from('Subject: x\r\n\r\nx\r\n');

/** alice's and the others' senders: every one of alice's is hers by owns(), none of the others. */
const ALICE = ['alice@x.test', 'alice+list@x.test', 'Alice@X.TEST', 'ALICE+Tag@x.test', '"alice"@x.test'];
const OTHERS = ['bob@x.test', 'alice@y.test', 'alicex@x.test', 'alice.b@x.test', 'bob+alice@x.test', '', 'not an address'];

function notice(id: string, messageId: string, sender: string, seconds: number, domain = 'peer.test'): Omit<TwmOutNotice, 'bodyRemoved' | 'expiryReported'> {
  return {
    id,
    messageId,
    sender,
    domain,
    content: Buffer.from('{}'),
    subject: `about ${messageId}`,
    messageIdHeader: null,
    size: raw.length,
    sha256: 'ab'.repeat(32),
    createdAt: at(seconds),
    expiresAt: at(seconds + 86_400),
  };
}

for (const backend of backends) {
  describe(`sent mail by sender key (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    beforeEach(async () => {
      store = await backend.open();
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    /** One queued message per sender, alice's and the others' interleaved in time, two recipients each. */
    async function queueAll(): Promise<void> {
      const senders = ALICE.flatMap((a, i) => [a, OTHERS[i]!]).concat(OTHERS.slice(ALICE.length));
      for (const [i, sender] of senders.entries()) {
        await store.queue.enqueue({ messageId: `m${i}`, sender, recipients: [`r${i}a@dest.test`, `r${i}b@dest.test`], raw, at: at(i), createdAt: at(i) });
      }
    }

    test('queue: the account’s messages only, any case or tag, newest first, each with all its recipients', async () => {
      await queueAll();
      const all = await store.queue.listBySender('alice@x.test');
      assert.deepEqual(
        all.map((e) => [e.messageId, e.sender, e.recipient]),
        [4, 3, 2, 1, 0].flatMap((j) => [
          [`m${2 * j}`, ALICE[j], `r${2 * j}a@dest.test`],
          [`m${2 * j}`, ALICE[j], `r${2 * j}b@dest.test`],
        ]),
      );
      assert.deepEqual(
        (await store.queue.listBySender('alice@x.test', { limit: 2 })).map((e) => `${e.messageId} ${e.recipient}`),
        ['m8 r8a@dest.test', 'm8 r8b@dest.test', 'm6 r6a@dest.test', 'm6 r6b@dest.test'],
        'the limit counts messages, not recipients',
      );
      assert.deepEqual(
        (await store.queue.listBySender('ALICE+other@X.test', { limit: 1 })).map((e) => e.messageId),
        ['m8', 'm8'],
        'asked by a subaddress in another case: the same account',
      );
      assert.deepEqual((await store.queue.listBySender('bob@x.test')).map((e) => e.messageId).filter((id, i, ids) => ids.indexOf(id) === i), ['m9', 'm1']);
      assert.deepEqual(await store.queue.listBySender('nobody@x.test'), []);
      assert.deepEqual(await store.queue.listBySender('not an address'), [], 'a sender that does not parse is nobody’s');
      assert.deepEqual(await store.queue.listBySender(''), []);
    });

    test('queue: only the messages asked for, and only the account’s among them', async () => {
      await queueAll();
      assert.deepEqual(
        (await store.queue.listBySender('alice@x.test', { messageIds: ['m2', 'm1', 'm6', 'nothing'] })).map((e) => `${e.messageId} ${e.recipient}`),
        ['m6 r6a@dest.test', 'm6 r6b@dest.test', 'm2 r2a@dest.test', 'm2 r2b@dest.test'],
        'm1 is bob’s',
      );
      assert.deepEqual((await store.queue.listBySender('alice@x.test', { messageIds: ['m2', 'm6'], limit: 1 })).map((e) => e.messageId), ['m6', 'm6']);
      assert.deepEqual(await store.queue.listBySender('alice@x.test', { messageIds: [] }), []);
      const many = Array.from({ length: 1200 }, (_, i) => `none-${i}`).concat('m4');
      assert.deepEqual((await store.queue.listBySender('alice@x.test', { messageIds: many })).map((e) => e.messageId), ['m4', 'm4'], 'more ids than one statement takes');
    });

    test('twm: the account’s notices only, any case or tag; the limit counts messages, across pages of notices', async () => {
      // X: five notices (domains) at one second, ids x1..x5; Y: one notice at that second with a smaller id; Z older.
      for (const i of [1, 2, 3, 4, 5]) await store.twmOut.create({ notice: notice(`x${i}`, 'X', 'Alice+list@X.test', 10, `d${i}.test`), recipients: [`a@d${i}.test`], raw });
      await store.twmOut.create({ notice: notice('a1', 'Y', 'alice@x.test', 10), recipients: ['a@peer.test'], raw });
      await store.twmOut.create({ notice: notice('z1', 'Z', 'ALICE@x.test', 5), recipients: ['a@peer.test', 'b@peer.test'], raw });
      for (const [i, sender] of OTHERS.entries()) await store.twmOut.create({ notice: notice(`o${i}`, `O${i}`, sender, 20 + i), recipients: ['a@peer.test'], raw });
      const ids = async (options: { limit?: number; messageIds?: string[] }) => (await store.twmOut.listBySender('alice@x.test', options)).map((n) => n.id);
      assert.deepEqual(await ids({}), ['x5', 'x4', 'x3', 'x2', 'x1', 'a1', 'z1']);
      // A page of notices holds 2 * limit: X's five fill the first, Y is on the second (after x2 at the same second).
      assert.deepEqual(await ids({ limit: 2 }), ['x5', 'x4', 'x3', 'x2', 'x1', 'a1']);
      assert.deepEqual(await ids({ limit: 1 }), ['x5', 'x4', 'x3', 'x2', 'x1']);
      assert.deepEqual(await ids({ limit: 3 }), ['x5', 'x4', 'x3', 'x2', 'x1', 'a1', 'z1']);
      assert.deepEqual(await ids({ messageIds: ['Z', 'O0', 'Y'] }), ['a1', 'z1'], 'O0 is bob’s');
      assert.deepEqual(await ids({ messageIds: ['Z', 'Y'], limit: 1 }), ['a1']);
      const [z] = await store.twmOut.listBySender('alice+x@x.test', { messageIds: ['Z'] });
      assert.deepEqual([z?.sender, z?.recipients.map((r) => r.recipient)], ['ALICE@x.test', ['a@peer.test', 'b@peer.test']]);
      assert.deepEqual(await store.twmOut.listBySender('bob@x.test'), (await store.twmOut.listBySender('bob@x.test', { limit: 10 })));
      assert.deepEqual((await store.twmOut.listBySender('bob@x.test')).map((n) => n.id), ['o4', 'o0']);
      assert.deepEqual(await store.twmOut.listBySender('not an address'), []);
    });

    test('migration 0028 fills the key of the queue’s messages and the notices written before it', async () => {
      await backend.migrateTo('0026_queue_due_order');
      const senders = [...ALICE, ...OTHERS];
      for (const [i, sender] of senders.entries()) {
        const q = sender.replaceAll("'", "''");
        await backend.query(`INSERT INTO queue_messages (message_id, sender, raw, created_at) VALUES ('old${i}', '${q}', '', ${T0 + i})`);
        await backend.query(`INSERT INTO queue_recipients (queue_message, recipient, state, next_attempt_at) SELECT id, 'r@dest.test', 'scheduled', 0 FROM queue_messages WHERE message_id = 'old${i}'`);
        await backend.query(
          `INSERT INTO twm_out_notices (id, message_id, sender, domain, content, subject, message_id_header, size, sha256, created_at, expires_at, body, body_removed_at, expiry_reported_at, body_in_queue) VALUES ('n${i}', 'old${i}', '${q}', 'peer.test', '', NULL, NULL, 0, 'ab', ${T0 + i}, ${T0 + 86_400_000}, '', NULL, NULL, 0)`,
        );
      }
      const old = await openStore(backend.url());
      try {
        const alices = ALICE.map((_, i) => `old${i}`).reverse();
        assert.deepEqual((await old.queue.listBySender('alice@x.test')).map((e) => e.messageId), alices);
        assert.deepEqual((await old.twmOut.listBySender('alice@x.test')).map((n) => n.messageId), alices);
        assert.deepEqual((await old.queue.listBySender('bob@x.test')).map((e) => e.messageId), ['old9', 'old5']);
        const nulls = await backend.query(`SELECT count(*) AS n FROM queue_messages WHERE sender_key IS NULL`);
        assert.equal(Number(nulls[0]?.n), 2, 'the null sender and the one that does not parse have no key');
      } finally {
        await old.close();
      }
    });

    if (backend.name === 'sqlite') {
      test('plans: every read searches its index by the key, the pages without a sort', async () => {
        const byKey = await sqlitePlanOf(backend, (db) => queueSentByKey(db, 'alice@x.test', 100));
        assert.ok(byKey.some((d) => /SEARCH queue_messages USING COVERING INDEX queue_messages_sender_key \(sender_key=\?\)/.test(d)), byKey.join('\n'));
        assert.ok(byKey.some((d) => /SEARCH r USING INDEX queue_recipients_message \(queue_message=\?\)/.test(d)), byKey.join('\n'));
        assert.ok(!byKey.some((d) => /^SCAN /.test(d)), byKey.join('\n'));
        // One sort: the outer one, of the page's entries; the subquery's limit is read in the index's order.
        assert.equal(byKey.filter((d) => /TEMP B-TREE/.test(d)).length, 1, byKey.join('\n'));
        const all = await sqlitePlanOf(backend, (db) => queueSentByKey(db, 'alice@x.test', undefined));
        assert.ok(all.some((d) => /SEARCH q USING INDEX queue_messages_sender_key \(sender_key=\?\)/.test(d)), all.join('\n'));
        const ofMessages = await sqlitePlanOf(backend, (db) => queueSentOfMessages(db, 'alice@x.test', ['m1', 'm2']));
        assert.deepEqual(ofMessages, ['SEARCH q USING INDEX sqlite_autoindex_queue_messages_1 (message_id=?)', 'SEARCH r USING INDEX queue_recipients_message (queue_message=?)']);
        for (const before of [undefined, { createdAt: 1, id: 'x' }]) {
          const page = await sqlitePlanOf(backend, (db) => twmSentPage(db, 'alice@x.test', 10, before));
          const range = before ? /\(sender_key=\? AND \(created_at,id\)<\(\?,\?\)\)/ : /\(sender_key=\?\)/;
          assert.ok(page.some((d) => d.startsWith('SEARCH twm_out_notices USING INDEX twm_out_notices_sender_key') && range.test(d)), page.join('\n'));
          assert.ok(!page.some((d) => /TEMP B-TREE/.test(d)), page.join('\n'));
        }
        const notices = await sqlitePlanOf(backend, (db) => twmSentNotices(db, 'alice@x.test'));
        assert.ok(notices.some((d) => /SEARCH twm_out_notices USING INDEX twm_out_notices_sender_key \(sender_key=\?\)/.test(d)), notices.join('\n'));
        assert.ok(!notices.some((d) => /TEMP B-TREE/.test(d)), notices.join('\n'));
        // By message, not by the key: the key's index would read every notice of the account.
        const noticesOf = await sqlitePlanOf(backend, (db) => twmSentOfMessages(db, 'sqlite', 'alice@x.test', ['m1', 'm2']));
        assert.deepEqual(noticesOf, ['SEARCH twm_out_notices USING INDEX twm_out_notices_message (message_id=?)']);
      });
    }
  });
}
