/**
 * Claims take no more than their limit however PostgreSQL plans them (PostgreSQL only). A claim
 * is an UPDATE of the rows a `... LIMIT n FOR UPDATE SKIP LOCKED` picks; were the pick a
 * subquery that the planner put on the inner side of a nested loop, it would run again for every
 * outer row, and each run's SKIP LOCKED passes over the rows this statement already updated and
 * picks the next ones: a claim of one message leased every due entry. The planner chooses that
 * plan by its estimates (no statistics yet, or stale ones); here the plan settings of the
 * connection leave it nothing else, and the claims, run on that connection, must still keep to
 * their limit.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Store, TwmInNotice } from './types.ts';
import type { Database } from './schema.ts';
import type { Db } from './db-util.ts';
import { claimQueueEntries } from './queue-claims.ts';
import { claimTwmRows } from './twm-inbound-claims.ts';
import { claimSpamLearning } from './spam-learning-claims.ts';
import { testBackends } from './test-backends.ts';

const backend = (await testBackends()).find((b) => b.name === 'postgres')!;
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);
const lease = (owner: string) => ({ owner, until: at(600) });
const raw = Buffer.from('From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n');

/** Every join but a nested loop off, no materialising of its inner side, no unique-ifying of the picked rows to put them outside. */
const NESTED_LOOP_ONLY = ['enable_hashjoin', 'enable_mergejoin', 'enable_material', 'enable_hashagg', 'enable_sort'].map((s) => `-c ${s}=off`).join(' ');

describe('claims keep to their limit under a nested-loop plan (postgres)', { skip: backend.skip }, () => {
  let store: Store;
  let forced: Db;
  let pool: pg.Pool;
  beforeEach(async () => {
    store = await backend.open();
    const url = new URL(backend.url());
    const schema = url.searchParams.get('schema');
    url.searchParams.delete('schema');
    pool = new pg.Pool({ connectionString: url.toString(), max: 1, options: `-c search_path=${schema} ${NESTED_LOOP_ONLY}` });
    forced = { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), dialect: 'postgres' };
  });
  afterEach(async () => {
    await forced.db.destroy();
    await store.close();
  });
  after(() => backend.cleanup());

  test('a queue claim of one message leases that message only, all its entries', async () => {
    const queued = [];
    for (let i = 0; i < 6; i++) queued.push(await store.queue.enqueue({ messageId: `<m${i}@x>`, sender: 's@x', recipients: ['a@one.test', 'b@two.test'], raw, at: at(i) }));
    const ids = queued.map((entries) => entries.map((e) => e.id));
    const first = await claimQueueEntries(forced, at(10), 1, lease('a'), []);
    assert.deepEqual([...first].sort((x, y) => x - y), ids[0], 'the first message, both its entries');
    const next = await claimQueueEntries(forced, at(10), 2, lease('b'), []);
    assert.deepEqual([...next].sort((x, y) => x - y), [...ids[1]!, ...ids[2]!], 'the next two messages');
    const leased = await backend.query('SELECT count(*)::int AS n FROM queue_recipients WHERE lease_owner IS NOT NULL');
    assert.equal(leased[0]?.n, 6, 'nothing else leased');
  });

  test('a TWM claim of one row leases its notice only', async () => {
    const user = await store.users.create({ address: 'alice@recv.test', passwordHash: 'h', mode: 'open' });
    for (let i = 0; i < 4; i++) {
      const n: TwmInNotice = { senderDomain: 'example.org', id: `n${i}`, contentSha256: 'x', from: 's@example.org', to: ['alice@recv.test'], size: 1, sha256: 'x', createdAt: at(0), expiresAt: at(9e6), intro: null, purpose: null, listId: null, receivedAt: at(0) };
      const row = (rcpt: string) => ({ senderDomain: 'example.org', noticeId: n.id, rcpt, userId: user.id, state: 'scheduled' as const, receipt: null, receiptError: null, nextAttemptAt: at(i) });
      await store.twmIn.record(n, [row('alice@recv.test'), row('bob@recv.test')], []);
    }
    const got = await claimTwmRows(forced, at(10), 1, lease('a'));
    assert.deepEqual([...got].sort(), ['example.org n0 alice@recv.test', 'example.org n0 bob@recv.test']);
    const leased = await backend.query('SELECT count(*)::int AS n FROM twm_in_recipients WHERE lease_owner IS NOT NULL');
    assert.equal(leased[0]?.n, 2, 'nothing else leased');
  });

  test('a spam learning claim of one row leases that row only', async () => {
    const user = (await store.users.create({ address: 'a@example.test', passwordHash: 'x', mode: 'open' })).id;
    const stored = await store.messages.deliver(
      Array.from({ length: 4 }, (_, i) => ({ userId: user, mailbox: 'INBOX' as const, raw: Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`), flags: [], sender: null, from: null, subject: `m${i}`, receivedAt: at(0), firstContact: true })),
    );
    await store.spamLearning.queue(
      user,
      stored.map((m) => ({ messageId: m.id, kind: 'spam' as const })),
      at(0),
    );
    const got = await claimSpamLearning(forced, at(10), 1, lease('a'));
    assert.equal(got.length, 1);
    const leased = await backend.query('SELECT count(*)::int AS n FROM spam_learning WHERE lease_owner IS NOT NULL');
    assert.equal(leased[0]?.n, 1, 'nothing else leased');
  });
});
