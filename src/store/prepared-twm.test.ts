/**
 * The notice path's prepared shapes (prepared-twm.ts) on every backend: each
 * call runs with its own values (a value baked into a shape would come back
 * for every later call, or be refused when the shape compiles: prepared.ts),
 * every recipient count from one to past the prepared ones, the pending
 * counts per user and per sender, and the nonce's insert-or-conflict.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store, TwmInNotice } from './types.ts';
import { PREPARED_RECIPIENT_ROWS } from './prepared-twm.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();
const T0 = Date.parse('2026-12-01T12:00:00.000Z');

function notice(n: number, to: string[]): TwmInNotice {
  return {
    senderDomain: `s${n % 3}.example`,
    id: `notice-${n}`,
    contentSha256: String(n % 10).repeat(64),
    from: `sender${n % 2}@s${n % 3}.example`,
    to,
    size: 100 + n,
    sha256: String((n + 1) % 10).repeat(64),
    createdAt: new Date(T0 + n * 1000),
    expiresAt: new Date(T0 + 86_400_000 + n),
    intro: n % 2 === 0 ? `intro ${n}` : null,
    purpose: n === 3 ? 'ownership-confirmation' : null,
    listId: n === 4 ? 'news.s1.example' : null,
    receivedAt: new Date(T0 + n * 1000 + 5),
  };
}

for (const backend of backends) {
  describe(`prepared TWM notice statements (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice = 0;
    let bob = 0;
    beforeEach(async () => {
      store = await backend.open();
      alice = (await store.users.create({ address: 'alice@recv.test', passwordHash: 'h', mode: 'screen' })).id;
      bob = (await store.users.create({ address: 'bob@recv.test', passwordHash: 'h', mode: 'screen' })).id;
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('every notice reads back with its own values, for one recipient up to past the prepared row counts', async () => {
      const counts = Array.from({ length: PREPARED_RECIPIENT_ROWS + 3 }, (_, i) => i + 1);
      for (const [n, count] of counts.entries()) {
        const to = Array.from({ length: count }, (_, i) => (i === 0 ? 'alice@recv.test' : `u${n}-${i}@recv.test`));
        const rows = to.map((rcpt, i) => ({
          senderDomain: 'ignored',
          noticeId: 'ignored',
          rcpt,
          userId: i === 0 ? alice : null,
          state: i === 0 ? ('pending' as const) : ('unknown' as const),
          receipt: null,
          receiptError: null,
          nextAttemptAt: i === 1 ? new Date(T0 + n) : null,
        }));
        await store.twmIn.record(notice(n, to), rows, []);
      }
      for (const [n, count] of counts.entries()) {
        const expected = notice(n, []);
        const found = await store.twmIn.find(expected.senderDomain, expected.id);
        assert.ok(found, `notice ${n}`);
        assert.deepEqual({ ...found.notice, to: [] }, expected);
        assert.equal(found.notice.to.length, count);
        assert.equal(found.recipients.length, count);
        const first = found.recipients.find((r) => r.rcpt === 'alice@recv.test');
        assert.equal(first?.userId, alice);
        assert.equal(first?.state, 'pending');
        // Rows carry the notice's key, whatever the row said.
        assert.ok(found.recipients.every((r) => r.senderDomain === expected.senderDomain && r.noticeId === expected.id));
        if (count > 1) assert.equal(found.recipients.find((r) => r.rcpt === `u${n}-1@recv.test`)?.nextAttemptAt?.getTime(), T0 + n);
      }
      assert.equal(await store.twmIn.find('s0.example', 'notice-1'), undefined, 'another domain, another notice');
    });

    test('pending counts per user and per sender, each call with its own values', async () => {
      for (let n = 0; n < 6; n++) {
        const userId = n < 4 ? alice : bob;
        const rcpt = n < 4 ? 'alice@recv.test' : 'bob@recv.test';
        await store.twmIn.record(notice(n, [rcpt]), [{ senderDomain: '', noticeId: '', rcpt, userId, state: n === 2 ? 'held' : 'pending', receipt: null, receiptError: null, nextAttemptAt: null }], []);
      }
      // alice: notices 0, 1, 3 pending (2 held); senders by n % 2: sender0 (0), sender1 (1, 3).
      assert.deepEqual(await store.twmIn.countPending(alice, 'sender1@s1.example'), { fromSender: 1, total: 3 });
      assert.equal(await store.twmIn.countPendingFrom(alice, 'sender1@s0.example'), 1);
      assert.equal(await store.twmIn.countPendingFrom(alice, 'sender0@s0.example'), 1);
      assert.equal(await store.twmIn.countPendingFrom(alice, 'nobody@s0.example'), 0);
      assert.deepEqual(await store.twmIn.countPending(bob, 'sender0@s1.example'), { fromSender: 1, total: 2 });
    });

    test('a nonce is fresh once until it expires, then taken over; other keys are their own', async () => {
      const now = new Date(T0);
      const until = new Date(T0 + 60_000);
      assert.equal(await store.twmNonces.remember('k1 n1', until, now), true);
      assert.equal(await store.twmNonces.remember('k1 n1', until, now), false, 'a replay');
      assert.equal(await store.twmNonces.remember('k1 n2', until, now), true);
      assert.equal(await store.twmNonces.remember('k1 n1', new Date(T0 + 120_000), new Date(T0 + 30_000)), false, 'still unexpired');
      assert.equal(await store.twmNonces.remember('k1 n1', new Date(T0 + 180_000), new Date(T0 + 60_000)), true, 'expired: taken over');
      assert.equal(await store.twmNonces.remember('k1 n1', new Date(T0 + 180_000), new Date(T0 + 90_000)), false, 'the takeover holds');
    });
  });
}
