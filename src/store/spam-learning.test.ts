/**
 * Learning for the spam filter as work in the store: queued in the move's
 * transaction, one row per message, each change of class once.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testBackends } from './test-backends.ts';
import { learnKindOfMove } from './message-repository.ts';

const backends = await testBackends();
after(() => Promise.all(backends.map((b) => b.cleanup())));

test('what a move teaches', () => {
  assert.equal(learnKindOfMove('INBOX', 'Junk'), 'spam');
  assert.equal(learnKindOfMove('Screener', 'Junk'), 'spam');
  assert.equal(learnKindOfMove('Junk', 'INBOX'), 'ham');
  assert.equal(learnKindOfMove('Junk', 'Screener'), 'ham');
  assert.equal(learnKindOfMove('Junk', 'Trash'), null, 'deleting spam teaches nothing');
  assert.equal(learnKindOfMove('INBOX', 'Trash'), null);
  assert.equal(learnKindOfMove('INBOX', 'Screener'), null);
});

for (const backend of backends) {
  describe(`spam learning (${backend.name})`, { skip: backend.skip }, () => {
    test('a move queues one row per message; the same class again changes nothing; the other class re-queues it', async () => {
      const store = await backend.open();
      try {
        const u = await store.users.create({ address: 'a@example.test', passwordHash: 'x', mode: 'open' });
        const [m] = await store.messages.deliver([
          { userId: u.id, mailbox: 'INBOX', raw: Buffer.from('Subject: s\r\n\r\nbody\r\n'), flags: [], sender: null, from: null, subject: 's', receivedAt: new Date(), firstContact: true },
        ]);
        assert.equal(await store.messages.move(u.id, [m!.id], 'Junk'), 1, 'plain move without teach');
        assert.deepEqual(await store.spamLearning.list(), [], 'no teach: nothing queued');
        await store.messages.move(u.id, [m!.id], 'INBOX');
        assert.equal(await store.messages.move(u.id, [m!.id], 'Junk', 'auto'), 1);
        let rows = await store.spamLearning.list();
        assert.equal(rows.length, 1);
        assert.equal(rows[0]!.kind, 'spam');
        assert.equal(rows[0]!.raw.toString(), 'Subject: s\r\n\r\nbody\r\n', 'a copy of the message');
        const due = await store.spamLearning.due(new Date(Date.now() + 1000), 10);
        assert.equal(due.length, 1);
        const lease = () => ({ owner: 'w', until: new Date(Date.now() + 60_000) });
        assert.deepEqual((await store.spamLearning.claim(new Date(Date.now() + 1000), 10, lease())).map((r) => r.id), [due[0]!.id]);
        assert.equal(await store.spamLearning.done(due[0]!.id, 'spam', 'w', 'learned', new Date()), 'written');
        assert.equal((await store.spamLearning.due(new Date(Date.now() + 1000), 10)).length, 0);
        // Out and in again as spam: in/out flips the class; the same class twice in a row is one learn.
        await store.spamLearning.queue(u.id, [{ messageId: m!.id, kind: 'spam' }], new Date());
        assert.equal((await store.spamLearning.due(new Date(Date.now() + 1000), 10)).length, 0, 'spam again: already done');
        await store.messages.move(u.id, [m!.id], 'INBOX', 'auto');
        rows = await store.spamLearning.list();
        assert.equal(rows.length, 1);
        assert.deepEqual([rows[0]!.kind, rows[0]!.state], ['ham', 'pending']);
        // A stale worker finishing the old class does not mark the new one done.
        assert.equal(await store.spamLearning.done(rows[0]!.id, 'spam', 'w', 'learned', new Date()), 'lease-lost');
        assert.equal((await store.spamLearning.list())[0]!.state, 'pending');
        await store.spamLearning.claim(new Date(Date.now() + 1000), 10, lease());
        const retried = await store.spamLearning.retry(rows[0]!.id, 'ham', 'w', { attempts: 1, nextAttemptAt: new Date(Date.now() + 60_000), error: 'down', failed: false });
        assert.equal(retried, 'written');
        assert.equal((await store.spamLearning.due(new Date(), 10)).length, 0, 'backing off');
        assert.equal((await store.spamLearning.due(new Date(Date.now() + 120_000), 10)).length, 1);
        assert.deepEqual(await store.spamLearning.claim(new Date(), 10, lease()), [], 'nor claimed before its time');
        assert.equal((await store.spamLearning.claim(new Date(Date.now() + 120_000), 10, lease())).length, 1, 'the retry ended the lease');
        // The Junk mailbox exists for every account.
        assert.ok((await store.messages.mailboxes(u.id)).some((b) => b.name === 'Junk'));
      } finally {
        await store.close();
      }
    });
  });
}
