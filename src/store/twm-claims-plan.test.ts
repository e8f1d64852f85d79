/**
 * The TWM fetch worker's claim (twmIn.claim, then the rows it holds) and lease renewal
 * (twmIn.renew), which run once per kick and per in-flight notice, against every backend:
 * with many delivered rows in the table they answer exactly the claimed rows (in claim order,
 * across more notices than one statement takes), and on SQLite their plans search the primary
 * key (sender_domain, notice_id) even in a store that was never ANALYZEd. The plans they
 * replaced (by lease owner, or by `sender_domain || ' ' || notice_id`) read the whole table.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { claimedQuery, renewQuery } from './twm-inbound-claims.ts';
import { sqlitePlanOf, testBackends } from './test-backends.ts';

const backends = await testBackends();
const OLD = 2000;

for (const backend of backends) {
  describe(`twmIn claim and renew (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: number;
    beforeEach(async () => {
      store = await backend.open();
      alice = (await store.users.create({ address: 'alice@recv.test', passwordHash: 'h', mode: 'open' })).id;
      const series = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${OLD})`;
      await backend.query(
        `INSERT INTO twm_in_notices (sender_domain, id, content_sha256, from_addr, to_addrs, size, sha256, created_at, expires_at, received_at) ${series} SELECT 'old.test', 'old' || i, 'x', 'a@old.test', '[]', 1, 'x', 0, 9999999999999, 0 FROM n`,
      );
      await backend.query(
        `INSERT INTO twm_in_recipients (sender_domain, notice_id, rcpt, user_id, state, updated_at, lease_owner, lease_until) SELECT sender_domain, id, 'alice@recv.test', ${alice}, 'delivered', 0, 'w', 100000 FROM twm_in_notices`,
      );
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('answers the claimed rows in claim order, over more notices than one statement; renew extends them', async () => {
      // 70 notices (more than the 64 a statement takes), two recipients each, due in reverse order of id.
      const ids = Array.from({ length: 70 }, (_, i) => `n${String(i).padStart(2, '0')}`);
      for (const [i, id] of ids.entries()) {
        const n = { senderDomain: 'new.test', id, contentSha256: 'x', from: 's@new.test', to: ['alice@recv.test', 'bob@recv.test'], size: 1, sha256: 'x', createdAt: new Date(0), expiresAt: new Date(9e12), intro: null, purpose: null, listId: null, receivedAt: new Date(1) };
        const row = (rcpt: string) => ({ senderDomain: 'new.test', noticeId: id, rcpt, userId: alice, state: 'scheduled' as const, receipt: null, receiptError: null, nextAttemptAt: new Date(1000 - i) });
        await store.twmIn.record(n, [row('bob@recv.test'), row('alice@recv.test')], []);
      }
      const lease = { owner: 'w', until: new Date(100000) };
      const got = await store.twmIn.claim(new Date(5000), 200, lease);
      const expected = [...ids].reverse().flatMap((id) => [`${id} alice@recv.test`, `${id} bob@recv.test`]);
      assert.deepEqual(got.map((r) => `${r.notice.id} ${r.recipient.rcpt}`), expected, 'every claimed row once, by next attempt then recipient; none of the delivered rows held under the same lease');
      assert.equal(got[0]?.notice.from, 's@new.test');
      assert.deepEqual(await store.twmIn.claim(new Date(5000), 100, { owner: 'x', until: new Date(100000) }), [], 'all held');
      assert.equal(await store.twmIn.renew(['new.test n03', 'new.test n07', 'old.test old1'], { owner: 'w', until: new Date(200000) }), 5, "two rows of each new notice, the old notice's one row");
      assert.equal(await store.twmIn.renew(['new.test n03'], { owner: 'x', until: new Date(300000) }), 0, 'only the owner renews');
    });

    if (backend.name === 'sqlite') {
      test('claimed rows and renewal search the primary key without statistics', async () => {
        for (const count of [1, 4]) {
          const lines = await sqlitePlanOf(backend, (db) => claimedQuery({ db }, count, <T>(i: number) => i as T));
          assert.ok(lines.some((d) => /SEARCH r USING INDEX sqlite_autoindex_twm_in_recipients_1 \(sender_domain=\? AND notice_id=\?\)/.test(d)), lines.join('\n'));
          assert.ok(!lines.some((d) => /^SCAN (r|n)\b/.test(d)), lines.join('\n'));
        }
        const lines = await sqlitePlanOf(backend, (db) => renewQuery(db, ['a.test n1', 'b.test n2'], { owner: 'w', until: new Date(1) }));
        assert.ok(lines.some((d) => /SEARCH twm_in_recipients USING INDEX sqlite_autoindex_twm_in_recipients_1 \(sender_domain=\? AND notice_id=\?\)/.test(d)), lines.join('\n'));
      });
    }
  });
}
