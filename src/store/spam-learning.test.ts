/**
 * Learning for the spam filter as work in the store: queued in the move's
 * transaction, one row per message, each change of class once; a row keeps
 * its copy of the message only until rspamd has it or it failed for good
 * (migration 0029 releases the copies of the rows finished before it).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { openStore } from './open.ts';
import { testBackends } from './test-backends.ts';
import { learnKindOfMove } from './message-repository.ts';

const backends = await testBackends();
after(() => Promise.all(backends.map((b) => b.cleanup())));
const T0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const lease = { owner: 'w', until: at(3_600_000) };

/** A user with one message per body, each queued to teach spam at T0; returns the user and the messages' ids. */
async function queuedSpam(store: Store, ...bodies: string[]): Promise<{ user: number; ids: number[] }> {
  const user = (await store.users.create({ address: 'a@example.test', passwordHash: 'x', mode: 'open' })).id;
  const stored = await store.messages.deliver(
    bodies.map((body, i) => ({ userId: user, mailbox: 'INBOX' as const, raw: Buffer.from(body), flags: [], sender: null, from: null, subject: `m${i}`, receivedAt: T0, firstContact: true })),
  );
  const ids = stored.map((m) => m.id);
  await store.spamLearning.queue(
    user,
    ids.map((messageId) => ({ messageId, kind: 'spam' as const })),
    T0,
  );
  return { user, ids };
}

/** Each row's message, class, state and copy, by message. */
async function rowsOf(store: Store): Promise<Array<[number, string, string, string]>> {
  return (await store.spamLearning.list()).map((r) => [r.messageId, r.kind, r.state, r.raw.toString()]);
}

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

    test('the copy of the message is released when rspamd has it and when the row fails for good, not at a retry', async () => {
      const store = await backend.open();
      try {
        const { user, ids } = await queuedSpam(store, 'Subject: a\r\n\r\na\r\n', 'Subject: b\r\n\r\nb\r\n');
        const [a, b] = await store.spamLearning.claim(at(0), 10, lease);
        assert.equal(await store.spamLearning.done(a!.id, 'spam', 'w', 'learned', at(1)), 'written');
        assert.equal(await store.spamLearning.retry(b!.id, 'spam', 'w', { attempts: 1, nextAttemptAt: at(10), error: 'down', failed: false }), 'written');
        assert.deepEqual(await rowsOf(store), [
          [ids[0], 'spam', 'done', ''],
          [ids[1], 'spam', 'pending', 'Subject: b\r\n\r\nb\r\n'],
        ]);
        await store.spamLearning.claim(at(10), 10, lease);
        assert.equal(await store.spamLearning.retry(b!.id, 'spam', 'w', { attempts: 2, nextAttemptAt: at(20), error: 'refused', failed: true }), 'written');
        assert.deepEqual(await rowsOf(store), [
          [ids[0], 'spam', 'done', ''],
          [ids[1], 'spam', 'failed', ''],
        ]);
        // The same class again leaves both as they are.
        await store.spamLearning.queue(
          user,
          ids.map((messageId) => ({ messageId, kind: 'spam' as const })),
          at(30),
        );
        assert.deepEqual((await rowsOf(store)).map((r) => r[2]), ['done', 'failed']);
      } finally {
        await store.close();
      }
    });

    test('a change of class after done takes the copy from the message again, and goes out once', async () => {
      const store = await backend.open();
      try {
        const raw = 'Subject: a\r\n\r\na\r\n';
        const { user, ids } = await queuedSpam(store, raw);
        const [row] = await store.spamLearning.claim(at(0), 10, lease);
        await store.spamLearning.done(row!.id, 'spam', 'w', 'learned', at(1));
        assert.equal(await store.messages.move(user, ids, 'Junk'), 1);
        assert.equal(await store.messages.move(user, ids, 'INBOX', 'auto'), 1);
        assert.deepEqual(await rowsOf(store), [[ids[0], 'ham', 'pending', raw]]);
        const claimed = await store.spamLearning.claim(at(2), 10, lease);
        assert.deepEqual(
          claimed.map((r) => [r.id, r.kind, r.raw.toString()]),
          [[row!.id, 'ham', raw]],
        );
        assert.equal(await store.spamLearning.done(row!.id, 'ham', 'w', 'learned', at(3)), 'written');
        assert.deepEqual(await store.spamLearning.claim(at(99_000), 10, lease), [], 'ham once');
        assert.deepEqual(await rowsOf(store), [[ids[0], 'ham', 'done', '']]);
      } finally {
        await store.close();
      }
    });

    test('a change of class after the message is gone leaves the row as it is: nothing to teach', async () => {
      const store = await backend.open();
      try {
        const { user, ids } = await queuedSpam(store, 'Subject: a\r\n\r\na\r\n', 'Subject: b\r\n\r\nb\r\n');
        const [row] = await store.spamLearning.claim(at(0), 1, lease);
        await store.spamLearning.done(row!.id, 'spam', 'w', 'learned', at(1));
        assert.equal(await store.messages.remove(user, ids), 2);
        await store.spamLearning.queue(
          user,
          ids.map((messageId) => ({ messageId, kind: 'ham' as const })),
          at(2),
        );
        assert.deepEqual(await rowsOf(store), [
          [ids[0], 'spam', 'done', ''],
          [ids[1], 'spam', 'pending', 'Subject: b\r\n\r\nb\r\n'],
        ]);
        const [pending] = await store.spamLearning.claim(at(2), 10, lease);
        assert.deepEqual([pending?.kind, pending?.raw.toString()], ['spam', 'Subject: b\r\n\r\nb\r\n'], 'the copy queued before the message went');
      } finally {
        await store.close();
      }
    });

    test('pruneGone deletes the finished rows of messages that are gone, and keeps pending rows and the rows of messages still there', async () => {
      const store = await backend.open();
      try {
        const { user, ids } = await queuedSpam(store, 'Subject: a\r\n\r\na\r\n', 'Subject: b\r\n\r\nb\r\n', 'Subject: c\r\n\r\nc\r\n', 'Subject: d\r\n\r\nd\r\n');
        const claimed = await store.spamLearning.claim(at(0), 10, lease);
        const byMessage = new Map(claimed.map((r) => [r.messageId, r]));
        // a: done, b: failed for good, c: done (its message stays), d: still pending (released, not sent).
        await store.spamLearning.done(byMessage.get(ids[0]!)!.id, 'spam', 'w', 'learned', at(1));
        await store.spamLearning.retry(byMessage.get(ids[1]!)!.id, 'spam', 'w', { attempts: 1, nextAttemptAt: at(2), error: '400', failed: true });
        await store.spamLearning.done(byMessage.get(ids[2]!)!.id, 'spam', 'w', 'learned', at(1));
        await store.spamLearning.release([byMessage.get(ids[3]!)!.id], 'w');
        assert.equal(await store.spamLearning.pruneGone(), 0, 'every message is still there');
        assert.equal(await store.messages.remove(user, [ids[0]!, ids[1]!, ids[3]!]), 3);
        assert.equal(await store.spamLearning.pruneGone(), 2);
        assert.deepEqual(await rowsOf(store), [
          [ids[2], 'spam', 'done', ''],
          [ids[3], 'spam', 'pending', 'Subject: d\r\n\r\nd\r\n'],
        ]);
        assert.equal(await store.spamLearning.pruneGone(), 0, 'nothing left to prune');
      } finally {
        await store.close();
      }
    });

    test('an empty message teaches nothing: no row pending without a copy', async () => {
      const store = await backend.open();
      try {
        const { ids } = await queuedSpam(store, '', 'Subject: b\r\n\r\nb\r\n');
        assert.deepEqual(await rowsOf(store), [[ids[1], 'spam', 'pending', 'Subject: b\r\n\r\nb\r\n']]);
        const [row] = await store.spamLearning.claim(at(0), 10, lease);
        await store.spamLearning.done(row!.id, 'spam', 'w', 'learned', at(1));
        assert.deepEqual(await rowsOf(store), [[ids[1], 'spam', 'done', '']]);
      } finally {
        await store.close();
      }
    });

    test('migration 0029 releases the copies of the rows done or failed before it, not of the pending ones', async () => {
      await backend.migrateTo('0028_sent_by_sender');
      await backend.query(`INSERT INTO users (address, password_hash, mode, created_at) VALUES ('a@example.test', 'x', 'open', 0)`);
      for (const [message, state] of [[1, 'done'], [2, 'failed'], [3, 'pending']] as const) {
        const hex = Buffer.from(`Subject: m${message}\r\n`).toString('hex');
        const blob = backend.name === 'sqlite' ? `X'${hex}'` : `'\\x${hex}'::bytea`;
        await backend.query(
          `INSERT INTO spam_learning (user_id, message_id, kind, raw, state, next_attempt_at, created_at) SELECT id, ${message}, 'spam', ${blob}, '${state}', 0, 0 FROM users`,
        );
      }
      const store = await openStore(backend.url());
      try {
        assert.deepEqual(await rowsOf(store), [
          [1, 'spam', 'done', ''],
          [2, 'spam', 'failed', ''],
          [3, 'spam', 'pending', 'Subject: m3\r\n'],
        ]);
      } finally {
        await store.close();
      }
    });
  });
}
