/** The outbound queue, against every backend (test-backends.ts). */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Database as Tables } from './schema.ts';
import { StoreConflictError, type Store } from './types.ts';
import { testBackends } from './test-backends.ts';
import { claimShape, claimValues } from './queue-prepared.ts';

const backends = await testBackends();

for (const backend of backends) {
  describe(`queue (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    beforeEach(async () => {
      store = await backend.open();
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    const raw = Buffer.from('From: a@example.com\r\nSubject: out\r\n\r\nhello\r\n');
    const at = new Date('2024-06-01T12:00:00.000Z');

    test('enqueue stores the message once and one scheduled entry per recipient', async () => {
      const entries = await store.queue.enqueue({
        messageId: '<m1@example.com>',
        sender: 'a@example.com',
        recipients: ['x@one.test', 'y@two.test', 'z@two.test'],
        raw,
        at,
      });
      assert.deepEqual(
        entries.map((e) => [e.messageId, e.sender, e.recipient, e.status]),
        ['x@one.test', 'y@two.test', 'z@two.test'].map((r) => ['<m1@example.com>', 'a@example.com', r, { state: 'scheduled', nextAttemptAt: at }]),
      );
      assert.ok(entries.every((e) => e.createdAt instanceof Date && typeof e.id === 'number'));
      assert.equal(await backend.count('queue_messages'), 1);
      assert.ok((await store.queue.raw('<m1@example.com>'))?.equals(raw));
      assert.equal(await store.queue.raw('<nope@example.com>'), undefined);
      await assert.rejects(
        store.queue.enqueue({ messageId: '<m1@example.com>', sender: 'a@example.com', recipients: ['q@q.test'], raw, at }),
        StoreConflictError,
      );
      assert.equal((await store.queue.list()).length, 3);
    });

    test('due returns scheduled and deferred entries whose time has come, oldest first, up to limit', async () => {
      const [e1] = await store.queue.enqueue({ messageId: '<a@x>', sender: 's@x', recipients: ['r1@x'], raw, at: new Date(at.getTime() + 2000) });
      const [e2, e3] = await store.queue.enqueue({ messageId: '<b@x>', sender: 's@x', recipients: ['r2@x', 'r3@x'], raw, at });
      assert.deepEqual(await store.queue.due(new Date(at.getTime() - 1), 10), []);
      assert.deepEqual(
        (await store.queue.due(at, 10)).map((e) => e.id),
        [e2!.id, e3!.id],
      );
      assert.deepEqual(
        (await store.queue.due(new Date(at.getTime() + 5000), 10)).map((e) => e.id),
        [e2!.id, e3!.id, e1!.id],
      );
      assert.equal((await store.queue.due(new Date(at.getTime() + 5000), 1)).length, 1);

      const later = new Date(at.getTime() + 60_000);
      await store.queue.update(e2!.id, { state: 'deferred', nextAttemptAt: later, attempts: 1, lastError: '451 try later' });
      await store.queue.update(e3!.id, { state: 'delivered', deliveredAt: at, reply: '250 ok' });
      assert.deepEqual(
        (await store.queue.due(new Date(at.getTime() + 5000), 10)).map((e) => e.id),
        [e1!.id],
      );
      assert.deepEqual(
        (await store.queue.due(later, 10)).map((e) => e.id),
        [e1!.id, e2!.id],
      );
    });

    test('update maps every state exactly; list filters by state', async () => {
      const [a, b, c, d] = await store.queue.enqueue({ messageId: '<s@x>', sender: 's@x', recipients: ['a@x', 'b@x', 'c@x', 'd@x'], raw, at });
      const t = new Date(at.getTime() + 1234);
      await store.queue.update(b!.id, { state: 'deferred', nextAttemptAt: t, attempts: 3, lastError: '421 busy' });
      await store.queue.update(c!.id, { state: 'delivered', deliveredAt: t, reply: '250 2.0.0 queued' });
      await store.queue.update(d!.id, { state: 'deferred', nextAttemptAt: t, attempts: 2, lastError: '451' });
      await store.queue.update(d!.id, { state: 'failed', failedAt: t, lastError: '550 5.1.1 no such user' });
      const byId = new Map((await store.queue.list()).map((e) => [e.id, e.status]));
      assert.deepEqual(byId.get(a!.id), { state: 'scheduled', nextAttemptAt: at });
      assert.deepEqual(byId.get(b!.id), { state: 'deferred', nextAttemptAt: t, attempts: 3, lastError: '421 busy', warnedAt: null });
      assert.deepEqual(byId.get(c!.id), { state: 'delivered', deliveredAt: t, reply: '250 2.0.0 queued' });
      assert.deepEqual(byId.get(d!.id), { state: 'failed', failedAt: t, lastError: '550 5.1.1 no such user' });
      // Rescheduling a deferred entry.
      await store.queue.update(b!.id, { state: 'scheduled', nextAttemptAt: at });
      assert.deepEqual((await store.queue.list({ state: 'scheduled' })).map((e) => e.id), [a!.id, b!.id]);
      assert.deepEqual((await store.queue.list({ state: 'failed' })).map((e) => e.recipient), ['d@x']);
      assert.deepEqual((await store.queue.list({ state: 'deferred' })), []);
    });

    test('remove deletes an entry; the message goes with its last recipient', async () => {
      const [a, b] = await store.queue.enqueue({ messageId: '<r@x>', sender: 's@x', recipients: ['a@x', 'b@x'], raw, at });
      assert.equal(await store.queue.remove(a!.id), true);
      assert.equal(await store.queue.remove(a!.id), false);
      assert.ok(await store.queue.raw('<r@x>'));
      assert.equal(await store.queue.remove(b!.id), true);
      assert.equal(await store.queue.raw('<r@x>'), undefined);
      assert.equal(await backend.count('queue_messages'), 0);
      assert.deepEqual(await store.queue.list(), []);
    });

    test('enqueue keeps the given arrival time; get and message read one entry and the message', async () => {
      const createdAt = new Date(at.getTime() - 3_600_000);
      const [a] = await store.queue.enqueue({ messageId: '<c@x>', sender: '', recipients: ['a@x'], raw, at, createdAt });
      assert.deepEqual(a!.createdAt, createdAt);
      assert.deepEqual(await store.queue.get(a!.id), a);
      assert.equal(await store.queue.get(a!.id + 1000), undefined);
      const message = await store.queue.message('<c@x>');
      assert.deepEqual({ ...message, raw: message?.raw.toString() }, { messageId: '<c@x>', sender: '', raw: raw.toString(), createdAt });
      assert.equal(await store.queue.message('<nope@x>'), undefined);
      // Without createdAt: the current time.
      const before = Date.now();
      const [b] = await store.queue.enqueue({ messageId: '<d@x>', sender: 's@x', recipients: ['b@x'], raw, at });
      assert.ok(b!.createdAt.getTime() >= before && b!.createdAt.getTime() <= Date.now());
    });

    test('warnedAt: stored with a deferred state, kept when a writer leaves it out, cleared with null', async () => {
      const [a] = await store.queue.enqueue({ messageId: '<w@x>', sender: 's@x', recipients: ['a@x'], raw, at });
      const t = new Date(at.getTime() + 1000);
      const warned = new Date(at.getTime() + 500);
      const deferred = { state: 'deferred', nextAttemptAt: t, attempts: 1, lastError: '451' } as const;
      await store.queue.update(a!.id, { ...deferred, warnedAt: warned });
      assert.deepEqual((await store.queue.get(a!.id))?.status, { ...deferred, warnedAt: warned });
      await store.queue.update(a!.id, { ...deferred, attempts: 2 });
      assert.deepEqual((await store.queue.get(a!.id))?.status, { ...deferred, attempts: 2, warnedAt: warned });
      // Rescheduled and deferred again: still warned, so no second warning.
      await store.queue.update(a!.id, { state: 'scheduled', nextAttemptAt: at });
      await store.queue.update(a!.id, { ...deferred, attempts: 3 });
      assert.deepEqual((await store.queue.get(a!.id))?.status, { ...deferred, attempts: 3, warnedAt: warned });
      await store.queue.update(a!.id, { ...deferred, warnedAt: null });
      assert.deepEqual((await store.queue.get(a!.id))?.status, { ...deferred, warnedAt: null });
    });

    test('due leaves out excluded ids and recipient domains (any case, LIKE wildcards taken literally)', async () => {
      const [a, b, c, d, e] = await store.queue.enqueue({
        messageId: '<e@x>',
        sender: 's@x',
        recipients: ['a@One.test', 'b@one.test', 'c@two.test', 'd@t_o.test', 'e@sub.one.test'],
        raw,
        at,
      });
      const ids = async (options: { excludeIds?: number[]; excludeDomains?: string[] }) =>
        (await store.queue.due(at, 10, options)).map((entry) => entry.recipient);
      assert.deepEqual(await ids({}), ['a@One.test', 'b@one.test', 'c@two.test', 'd@t_o.test', 'e@sub.one.test']);
      assert.deepEqual(await ids({ excludeIds: [a!.id, c!.id] }), ['b@one.test', 'd@t_o.test', 'e@sub.one.test']);
      assert.deepEqual(await ids({ excludeDomains: ['one.test'] }), ['c@two.test', 'd@t_o.test', 'e@sub.one.test']);
      assert.deepEqual(await ids({ excludeDomains: ['ONE.test', 'two.test'], excludeIds: [e!.id] }), ['d@t_o.test']);
      // '_' must not match any character: 'two.test' is not excluded by 't_o.test'.
      assert.deepEqual(await ids({ excludeDomains: ['t_o.test'] }), ['a@One.test', 'b@one.test', 'c@two.test', 'e@sub.one.test']);
      assert.deepEqual(await ids({ excludeDomains: ['%'] }), await ids({}));
      // The limit counts only what is left.
      assert.deepEqual((await store.queue.due(at, 1, { excludeIds: [a!.id, b!.id] })).map((entry) => entry.id), [c!.id]);
      assert.ok(d);
    });

    test('an outcome with dropBodyOf drops the body in its commit once every recipient is final', async () => {
      const [a, b] = await store.queue.enqueue({ messageId: '<g@x>', sender: 's@x', recipients: ['a@x', 'b@x'], raw, at });
      const t = new Date(at.getTime() + 1000);
      await store.queue.update(a!.id, { state: 'delivered', deliveredAt: t, reply: '250 ok' }, undefined, '<g@x>');
      assert.ok(await store.queue.raw('<g@x>'), 'b@x is still to deliver');
      await store.queue.update(b!.id, { state: 'deferred', nextAttemptAt: t, attempts: 1, lastError: '451' }, undefined, '<g@x>');
      assert.ok(await store.queue.raw('<g@x>'), 'a deferral drops nothing');
      await store.queue.update(b!.id, { state: 'failed', failedAt: t, lastError: '550 no' }, undefined, '<g@x>');
      assert.equal(await store.queue.raw('<g@x>'), undefined);
      assert.equal(await store.queue.message('<g@x>'), undefined);
      assert.deepEqual((await store.queue.list()).map((entry) => [entry.recipient, entry.status.state]), [
        ['a@x', 'delivered'],
        ['b@x', 'failed'],
      ]);
    });

    test('prune deletes finished entries older than the cutoff, then messages without entries', async () => {
      const [a, b] = await store.queue.enqueue({ messageId: '<g@x>', sender: 's@x', recipients: ['a@x', 'b@x'], raw, at });
      const [c] = await store.queue.enqueue({ messageId: '<h@x>', sender: 's@x', recipients: ['c@x'], raw, at });
      const [d] = await store.queue.enqueue({ messageId: '<i@x>', sender: 's@x', recipients: ['d@x'], raw, at });
      const old = new Date(at.getTime() + 1000);
      const recent = new Date(at.getTime() + 100_000);
      await store.queue.update(a!.id, { state: 'delivered', deliveredAt: old, reply: '250' });
      await store.queue.update(b!.id, { state: 'failed', failedAt: old, lastError: '550' });
      await store.queue.update(c!.id, { state: 'delivered', deliveredAt: recent, reply: '250' });
      await store.queue.update(d!.id, { state: 'deferred', nextAttemptAt: old, attempts: 1, lastError: '451' });
      const cutoff = new Date(at.getTime() + 50_000);
      assert.equal(await store.queue.prune(cutoff), 2);
      assert.deepEqual((await store.queue.list()).map((entry) => entry.recipient), ['c@x', 'd@x']);
      assert.equal(await backend.count('queue_messages'), 2);
      assert.equal(await store.queue.raw('<g@x>'), undefined);
      assert.ok(await store.queue.raw('<i@x>'), 'unfinished messages stay');
      assert.equal(await store.queue.prune(cutoff), 0);
      assert.equal(await store.queue.prune(new Date(recent.getTime() + 1)), 1);
      assert.deepEqual((await store.queue.list()).map((entry) => entry.recipient), ['d@x']);
      assert.equal(await backend.count('queue_messages'), 1);
    });
    test('history: every state an entry entered, oldest first, with its error or reply; a lost lease records nothing; pruned with the entry', async () => {
      const created = new Date(at.getTime() - 5000);
      const [a, b] = await store.queue.enqueue({ messageId: '<hist@x>', sender: 's@x', recipients: ['a@x', 'b@x'], raw, at, createdAt: created });
      const t1 = new Date(at.getTime() + 60_000);
      const t2 = new Date(at.getTime() + 120_000);
      const before = Date.now();
      await store.queue.update(a!.id, { state: 'deferred', nextAttemptAt: t1, attempts: 1, lastError: '451 4.2.1 mailbox busy' });
      const after = Date.now();
      await store.queue.update(a!.id, { state: 'delivered', deliveredAt: t2, reply: '250 2.0.0 ok' });
      await store.queue.update(b!.id, { state: 'failed', failedAt: t2, lastError: '550 5.1.1 no such user' });
      // An update under a lease another owner holds changes nothing, and records nothing.
      assert.equal(await store.queue.update(b!.id, { state: 'delivered', deliveredAt: t2, reply: '250' }, 'someone-else'), false);
      const history = await store.queue.history([a!.id, b!.id, 999_999]);
      const ofA = history.get(a!.id)!;
      assert.deepEqual(
        ofA.map((e) => [e.state, e.detail]),
        [
          ['scheduled', null],
          ['deferred', '451 4.2.1 mailbox busy'],
          ['delivered', '250 2.0.0 ok'],
        ],
      );
      assert.equal(ofA[0]!.at.getTime(), created.getTime());
      assert.ok(ofA[1]!.at.getTime() >= before && ofA[1]!.at.getTime() <= after, 'a deferral is recorded when it is written');
      assert.equal(ofA[2]!.at.getTime(), t2.getTime());
      assert.deepEqual(
        history.get(b!.id)!.map((e) => [e.state, e.detail, e.at.getTime()]),
        [
          ['scheduled', null, created.getTime()],
          ['failed', '550 5.1.1 no such user', t2.getTime()],
        ],
      );
      assert.equal(history.has(999_999), false);
      assert.equal(await backend.count('recipient_events'), 5);
      assert.equal(await store.queue.prune(new Date(t2.getTime() + 1)), 2);
      assert.equal(await backend.count('recipient_events'), 0, 'the history goes with the pruned entries');
    });

    test('flush makes every scheduled and deferred entry due now, or only the given ids; finished entries stay', async () => {
      const later = new Date(at.getTime() + 3_600_000);
      const [s1, d1, ok, bad, s2] = await store.queue.enqueue({ messageId: '<f@x>', sender: 's@x', recipients: ['s1@x', 'd1@x', 'ok@x', 'bad@x', 's2@x'], raw, at: later });
      await store.queue.update(d1!.id, { state: 'deferred', nextAttemptAt: later, attempts: 2, lastError: '451 later', warnedAt: at });
      await store.queue.update(ok!.id, { state: 'delivered', deliveredAt: at, reply: '250 ok' });
      await store.queue.update(bad!.id, { state: 'failed', failedAt: at, lastError: '550 no' });
      assert.deepEqual(await store.queue.due(at, 10), [], 'nothing due before the flush');

      assert.deepEqual(await store.queue.flush(at, [s2!.id, ok!.id]), [s2!.id], 'only the named pending entry');
      assert.deepEqual((await store.queue.due(at, 10)).map((e) => e.id), [s2!.id]);
      assert.deepEqual(await store.queue.flush(at, []), []);

      assert.deepEqual(await store.queue.flush(at), [s1!.id, d1!.id, s2!.id]);
      const byId = new Map((await store.queue.list()).map((e) => [e.id, e.status]));
      assert.deepEqual(byId.get(s1!.id), { state: 'scheduled', nextAttemptAt: at });
      assert.deepEqual(byId.get(d1!.id), { state: 'deferred', nextAttemptAt: at, attempts: 2, lastError: '451 later', warnedAt: at }, 'a deferred entry keeps its history');
      assert.deepEqual(byId.get(ok!.id), { state: 'delivered', deliveredAt: at, reply: '250 ok' });
      assert.deepEqual(byId.get(bad!.id), { state: 'failed', failedAt: at, lastError: '550 no' });
      assert.deepEqual((await store.queue.due(at, 10)).map((e) => e.id).sort((a, b) => a - b), [s1!.id, d1!.id, s2!.id]);
    });

    test('claim takes the oldest due entries of both states through queue_recipients_due, in its order', async () => {
      // The index (migration 0026) holds the entries still to deliver in the claim's order.
      const rows =
        backend.name === 'sqlite'
          ? await backend.query("SELECT sql AS def FROM sqlite_master WHERE name = 'queue_recipients_due'")
          : await backend.query("SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'queue_recipients_due' AND schemaname = current_schema()");
      const def = String(rows[0]?.def ?? '');
      assert.match(def, /\(\s*"?next_attempt_at"?\s*,\s*"?id"?\s*\)/i, def);
      assert.match(def, /where \(?"?next_attempt_at"? is not null/i, def);
      // A deferred entry older than a scheduled one is claimed first, a finished one never.
      const [s1] = await store.queue.enqueue({ messageId: '<c1@x>', sender: 's@x', recipients: ['r1@x'], raw, at: new Date(at.getTime() + 3000) });
      const [d1] = await store.queue.enqueue({ messageId: '<c2@x>', sender: 's@x', recipients: ['r2@x'], raw, at });
      const [done] = await store.queue.enqueue({ messageId: '<c3@x>', sender: 's@x', recipients: ['r3@x'], raw, at });
      await store.queue.update(d1!.id, { state: 'deferred', nextAttemptAt: new Date(at.getTime() + 1000), attempts: 1, lastError: '451 later' });
      await store.queue.update(done!.id, { state: 'delivered', deliveredAt: at, reply: '250 ok' });
      const lease = { owner: 'node/1', until: new Date(at.getTime() + 60_000) };
      const later = new Date(at.getTime() + 5000);
      assert.deepEqual((await store.queue.claim(later, 1, lease)).map((e) => e.id), [d1!.id]);
      assert.deepEqual((await store.queue.claim(later, 5, lease)).map((e) => e.id), [s1!.id]);
      assert.deepEqual(await store.queue.claim(later, 5, lease), []);
    });

    test('the claim reads due entries in index order and stops at its limit, no sort (SQLite plan)', { skip: backend.name !== 'sqlite' && 'SQLite only' }, async () => {
      // A young store has no statistics: the planner must not start from (state, done_at) and sort.
      const handle = new Database(backend.url().slice('sqlite:'.length), { readonly: true });
      try {
        const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: handle }) });
        for (const [domains, ids] of [[[], []], [['busy.test'], [1, 2]]] as const) {
          // The statement claimDue prepares, with this call's values in its slots.
          const values = claimValues(at.getTime(), 10, { owner: 'node/1', until: at.getTime() + 60_000 }, domains, ids);
          const compiled = claimShape(db, 'sqlite', domains.length, ids.length, <T>(i: number) => values[i] as T).compile();
          const plan = (handle.prepare(`EXPLAIN QUERY PLAN ${compiled.sql}`).all(...compiled.parameters) as Array<{ detail: string }>).map((r) => r.detail);
          const text = plan.join('\n');
          assert.doesNotMatch(text, /TEMP B-TREE/, text);
          // The first entries due: a range of the index, in its order; their messages' other entries: by message.
          assert.match(text, /SEARCH queue_recipients USING INDEX queue_recipients_due \(next_attempt_at<\?\)/, text);
          assert.match(text, /SEARCH queue_recipients USING INDEX queue_recipients_message \(queue_message=\?\)/, text);
        }
      } finally {
        handle.close();
      }
    });
  });
}
