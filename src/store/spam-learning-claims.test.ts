/**
 * Spam learning rows claimed with leases (migration 0027), on every backend:
 * two stores on one database (two processes) claiming at once never get one
 * row; an expired lease is taken over and the old owner's late outcome is
 * refused; a change of class while a row is leased keeps the lease until its
 * holder finishes; the claim reads the partial index `spam_learning_due`.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { openStore } from './open.ts';
import { claimQuery } from './spam-learning-claims.ts';
import { postgresPlanOf, sqlitePlanOf, testBackends } from './test-backends.ts';

const backends = await testBackends();
const T0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const lease = (owner: string, untilMs: number) => ({ owner, until: at(untilMs) });

for (const backend of backends) {
  describe(`spam learning claims (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let user: number;
    beforeEach(async () => {
      store = await backend.open();
      user = (await store.users.create({ address: 'a@example.test', passwordHash: 'x', mode: 'open' })).id;
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    /** `n` messages, each queued to teach `kind` at T0; returns the rows' ids. */
    async function queued(n: number, kind: 'spam' | 'ham' = 'spam'): Promise<number[]> {
      const messages = Array.from({ length: n }, (_, i) => ({
        userId: user,
        mailbox: 'INBOX' as const,
        raw: Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`),
        flags: [],
        sender: null,
        from: null,
        subject: `m${i}`,
        receivedAt: T0,
        firstContact: true,
      }));
      const stored = await store.messages.deliver(messages);
      await store.spamLearning.queue(
        user,
        stored.map((m) => ({ messageId: m.id, kind })),
        T0,
      );
      return (await store.spamLearning.list({ userId: user })).map((r) => r.id);
    }

    test('two processes claiming at once never get the same row, and together get every row', async () => {
      const ids = await queued(60);
      const other = await openStore(backend.url());
      try {
        const claimer = async (s: Store, owner: string) => {
          const got: number[] = [];
          for (;;) {
            const rows = await s.spamLearning.claim(at(1000), 4, lease(owner, 60_000));
            if (rows.length === 0) return got;
            got.push(...rows.map((r) => r.id));
          }
        };
        const results = await Promise.all([claimer(store, 'a/1'), claimer(other, 'b/1'), claimer(store, 'a/2'), claimer(other, 'b/2')]);
        const all = results.flat();
        assert.equal(all.length, ids.length, `no row claimed twice (${results.map((r) => r.length).join('/')})`);
        assert.deepEqual(
          [...all].sort((x, y) => x - y),
          ids,
        );
      } finally {
        await other.close();
      }
    });

    test('a claim takes the oldest due rows first, nothing before its time, nothing leased', async () => {
      const [first, second, third] = await queued(3);
      await store.spamLearning.claim(at(1000), 1, lease('a', 60_000));
      await store.spamLearning.retry(first!, 'spam', 'a', { attempts: 1, nextAttemptAt: at(5000), error: 'down', failed: false });
      assert.deepEqual(
        (await store.spamLearning.claim(at(1000), 10, lease('b', 60_000))).map((r) => r.id),
        [second, third],
        'the retried row is not due yet',
      );
      assert.deepEqual(await store.spamLearning.claim(at(1000), 10, lease('c', 60_000)), [], 'all held');
      assert.deepEqual(
        (await store.spamLearning.claim(at(5000), 10, lease('c', 60_000))).map((r) => [r.id, r.attempts]),
        [[first, 1]],
      );
    });

    test('an expired lease is taken over; the old owner\'s late done and retry are refused', async () => {
      const [id] = await queued(1);
      const [claimed] = await store.spamLearning.claim(at(0), 10, lease('a', 1000));
      assert.equal(claimed?.id, id);
      assert.equal(claimed?.raw.toString(), 'Subject: m0\r\n\r\nbody 0\r\n');
      assert.deepEqual(await store.spamLearning.claim(at(999), 10, lease('b', 5000)), [], 'the lease holds until it ends');
      assert.deepEqual(
        (await store.spamLearning.claim(at(1000), 10, lease('b', 5000))).map((r) => r.id),
        [id],
        'taken over once it ended',
      );
      assert.equal(await store.spamLearning.done(id!, 'spam', 'a', 'learned', at(1500)), 'lease-lost');
      assert.equal(await store.spamLearning.retry(id!, 'spam', 'a', { attempts: 1, nextAttemptAt: at(9000), error: 'late', failed: true }), 'lease-lost');
      let [row] = await store.spamLearning.list();
      assert.deepEqual([row?.state, row?.attempts, row?.lastError, row?.outcome], ['pending', 0, null, null], 'nothing of the old owner written');
      assert.deepEqual(await store.spamLearning.claim(at(1500), 10, lease('c', 9000)), [], "still b's");
      assert.equal(await store.spamLearning.done(id!, 'spam', 'b', 'learned', at(2000)), 'written');
      [row] = await store.spamLearning.list();
      assert.deepEqual([row?.state, row?.outcome], ['done', 'learned']);
      assert.deepEqual(await store.spamLearning.claim(at(99_000), 10, lease('c', 999_000)), [], 'done: never claimed again');
    });

    test('renew keeps the rows of the owner only; release frees them at once', async () => {
      const ids = await queued(2);
      await store.spamLearning.claim(at(0), 10, lease('a', 1000));
      assert.deepEqual(
        (await store.spamLearning.renew(ids, lease('a', 9000))).sort((x, y) => x - y),
        ids,
      );
      assert.deepEqual(await store.spamLearning.renew(ids, lease('b', 9000)), [], 'only the owner renews');
      assert.deepEqual(await store.spamLearning.claim(at(5000), 10, lease('b', 9000)), [], 'renewed past 5 s');
      await store.spamLearning.release([ids[0]!], 'b');
      assert.deepEqual(await store.spamLearning.claim(at(5000), 10, lease('b', 9000)), [], "b cannot release a's rows");
      await store.spamLearning.release([ids[0]!], 'a');
      assert.deepEqual(
        (await store.spamLearning.claim(at(5000), 10, lease('b', 9000))).map((r) => r.id),
        [ids[0]],
      );
      assert.equal(await store.leases.releaseEarlier('node', 'node/new'), 0);
      await store.spamLearning.claim(at(20_000), 10, lease('node/old', 99_000));
      assert.equal(await store.leases.releaseEarlier('node', 'node/new'), 2, 'a restarted process takes back its spam learning leases');
    });

    test('a change of class while a row is leased keeps the lease: the holder frees it, the new class goes out next', async () => {
      const [id] = await queued(1, 'spam');
      await store.spamLearning.claim(at(0), 10, lease('a', 60_000));
      // The user moves the message out of Junk while a is sending spam.
      const [message] = (await store.spamLearning.list()).map((r) => r.messageId);
      await store.spamLearning.queue(user, [{ messageId: message!, kind: 'ham' }], at(100));
      let [row] = await store.spamLearning.list();
      assert.deepEqual([row?.kind, row?.state], ['ham', 'pending']);
      assert.deepEqual(await store.spamLearning.claim(at(200), 10, lease('b', 60_000)), [], 'no other process sends ham while spam may still be on its way');
      assert.equal(await store.spamLearning.done(id!, 'spam', 'a', 'learned', at(300)), 'class-changed');
      [row] = await store.spamLearning.list();
      assert.deepEqual([row?.kind, row?.state, row?.outcome], ['ham', 'pending', null], 'the old class is not recorded as done');
      const [next] = await store.spamLearning.claim(at(300), 10, lease('b', 60_000));
      assert.deepEqual([next?.id, next?.kind], [id, 'ham'], 'freed at once, with the new class');
      // The same while a retry is written: the old class's failure is not counted against the new one.
      await store.spamLearning.queue(user, [{ messageId: message!, kind: 'spam' }], at(400));
      assert.equal(await store.spamLearning.retry(id!, 'ham', 'b', { attempts: 1, nextAttemptAt: at(9000), error: 'down', failed: true }), 'class-changed');
      [row] = await store.spamLearning.list();
      assert.deepEqual([row?.kind, row?.state, row?.attempts], ['spam', 'pending', 0]);
      assert.equal(await store.spamLearning.done(id!, 'spam', 'b', 'learned', at(500)), 'lease-lost', 'the lease ended with the class-changed write');
      const [last] = await store.spamLearning.claim(at(500), 10, lease('c', 60_000));
      assert.equal(await store.spamLearning.done(last!.id, 'spam', 'c', 'learned', at(600)), 'written');
      [row] = await store.spamLearning.list();
      assert.deepEqual([row?.kind, row?.state], ['spam', 'done']);
    });

    test('the claim reads the pending rows through spam_learning_due, in its order', async () => {
      const build = (db: Parameters<typeof claimQuery>[0]) => claimQuery(db, backend.name, 1000, 20, { owner: 'a', until: 2000 });
      if (backend.name === 'sqlite') {
        const lines = await sqlitePlanOf(backend, build);
        const text = lines.join('\n');
        assert.match(text, /SEARCH spam_learning USING INDEX spam_learning_due \(next_attempt_at<\?\)/, text);
        assert.doesNotMatch(text, /TEMP B-TREE|SCAN spam_learning\b/, text);
        return;
      }
      // Many finished rows (history, never pruned) and a few pending ones, with statistics.
      await queued(3);
      await backend.query(
        "INSERT INTO spam_learning (user_id, message_id, kind, raw, state, next_attempt_at, created_at) SELECT user_id, message_id + 10 * i, kind, raw, 'done', 0, 0 FROM spam_learning, generate_series(1000, 6000) AS i",
      );
      await backend.query('ANALYZE spam_learning');
      const text = (await postgresPlanOf(backend, build)).join('\n');
      assert.match(text, /Index Scan using spam_learning_due on spam_learning/, text);
      assert.doesNotMatch(text, /Seq Scan on spam_learning/, text);
    });
  });
}
