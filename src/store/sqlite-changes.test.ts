/**
 * The change bus of a SQLite file hears other connections' writes
 * (sqlite-changes.ts): two stores opened on one file, as two processes (or a
 * server and the CLI) would, a listener on one, writes through the other.
 * SQLite only: on PostgreSQL the same events travel by LISTEN/NOTIFY
 * (pg-notify.ts, src/store/leases.test.ts).
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { User } from '../core/types.ts';
import type { NewMessage, Store, TwmInNotice } from './types.ts';
import type { Database as Tables } from './schema.ts';
import { openStore } from './open.ts';
import { createChangeBus } from './change-bus.ts';
import { SQLITE_CHANGE_POLL_MS, startSqliteChangePoll } from './sqlite-changes.ts';
import { testBackends } from './test-backends.ts';

const sqlite = (await testBackends()).find((b) => b.name === 'sqlite')!;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
after(() => sqlite.cleanup());

/** A few polls: long enough for an event to arrive, and for a wrong one to show. */
const WAIT_MS = 4 * SQLITE_CHANGE_POLL_MS;

function msg(user: User, subject: string): NewMessage {
  return {
    userId: user.id,
    mailbox: 'INBOX',
    raw: Buffer.from(`From: a@b.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`),
    flags: [],
    sender: 'a@b.test',
    from: 'a@b.test',
    subject,
    receivedAt: new Date(),
    firstContact: false,
  };
}

function notice(id: string, to: string): TwmInNotice {
  const now = Date.now();
  return {
    senderDomain: 'example.org',
    id,
    contentSha256: 'cd'.repeat(32),
    from: 'stranger@example.org',
    to: [to],
    size: 10,
    sha256: 'ef'.repeat(32),
    createdAt: new Date(now),
    expiresAt: new Date(now + 86_400_000),
    intro: 'hello',
    purpose: null,
    listId: null,
    receivedAt: new Date(now),
  };
}

/** Counts a user's events on a bus. */
function counter(store: Store, user: User): { n: number; off: () => void } {
  const c = { n: 0, off: () => {} };
  c.off = store.changes.on(user.id, () => c.n++);
  return c;
}

/** Resolves once the count passed `from`; fails after WAIT_MS. */
async function heard(c: { n: number }, from: number, what: string): Promise<void> {
  const until = Date.now() + WAIT_MS;
  while (c.n <= from) {
    if (Date.now() > until) assert.fail(`not heard within ${WAIT_MS} ms: ${what}`);
    await sleep(50);
  }
}

describe("change bus on a SQLite file: other connections' writes", () => {
  let here: Store;
  let there: Store;
  let alice: User;
  let bob: User;
  beforeEach(async () => {
    here = await sqlite.open();
    there = await openStore(sqlite.url());
    alice = await there.users.create({ address: 'alice@recv.test', passwordHash: 'h', mode: 'open' });
    bob = await there.users.create({ address: 'bob@recv.test', passwordHash: 'h', mode: 'open' });
  });
  afterEach(async () => {
    await there.close();
    await here.close();
  });

  test('a delivery, a flag change, an expunge and a TWM notice made through the other connection are heard, for that user only', async () => {
    const a = counter(here, alice);
    const b = counter(here, bob);
    const [m] = await there.messages.deliver([msg(alice, 'one')]);
    await heard(a, 0, 'a delivery');
    const inbox = (await there.imap.mailbox(alice.id, 'INBOX'))!;
    let before = a.n;
    await there.imap.setFlags(alice.id, inbox.id, [{ id: m!.id, flags: ['\\Seen'] }]);
    await heard(a, before, 'a flag change');
    before = a.n;
    assert.equal(await there.imap.expunge(alice.id, inbox.id, [m!.id]), 1);
    await heard(a, before, 'an expunge');
    before = a.n;
    // A stranger's notice: the Screener shows a stand-in for it, though no mailbox changed yet.
    const n = notice('n1', 'alice@recv.test');
    await there.twmIn.record(n, [{ senderDomain: n.senderDomain, noticeId: n.id, rcpt: 'alice@recv.test', userId: alice.id, state: 'pending', receipt: null, receiptError: null, nextAttemptAt: null }], []);
    await heard(a, before, 'a pending TWM notice');
    await sleep(2 * SQLITE_CHANGE_POLL_MS);
    assert.equal(b.n, 0, 'bob, whose mailboxes did not change, heard nothing');
    a.off();
    b.off();
  });

  test('a mailbox renamed, and one deleted then another created within one tick, through the other connection are heard', async () => {
    await there.imap.create(alice.id, 'Old');
    const a = counter(here, alice);
    await sleep(2 * SQLITE_CHANGE_POLL_MS); // the baseline is read
    assert.equal(await there.imap.rename(alice.id, 'Old', 'New'), true);
    await heard(a, 0, 'a rename');
    const before = a.n;
    await sleep(2 * SQLITE_CHANGE_POLL_MS);
    // Deleted and created again between two polls: the mailbox count and the modseq sum may come back the same.
    assert.equal(await there.imap.remove(alice.id, 'New'), true);
    await there.imap.create(alice.id, 'New');
    await heard(a, before, 'a mailbox deleted and created again');
    a.off();
  });

  test('a write through the other connection while nobody listens is not announced to a later listener', async () => {
    await there.messages.deliver([msg(alice, 'before anyone listened')]);
    const a = counter(here, alice);
    // Another connection's write for bob moves data_version: the poll looks, and finds alice as she was.
    await there.messages.deliver([msg(bob, 'for bob')]);
    const b = counter(here, bob);
    await sleep(WAIT_MS);
    assert.equal(a.n, 0, 'alice had no change since she started listening');
    await there.messages.deliver([msg(alice, 'now')]);
    await heard(a, 0, 'the next delivery');
    a.off();
    b.off();
  });
});

describe('the SQLite change poll runs only while someone listens', () => {
  test('one statement a tick while listened to, none once the last listener left; its timer keeps no process alive', async () => {
    const store = await sqlite.open();
    let reads = 0;
    const raw = new Database(sqlite.url().slice('sqlite:'.length));
    const db = new Kysely<Tables>({
      dialect: new SqliteDialect({ database: raw }),
      log: (e) => {
        if (e.query.sql.includes('data_version')) reads++;
      },
    });
    const poll = startSqliteChangePoll({ db, log: () => {} });
    const bus = poll.bus(createChangeBus());
    try {
      const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      const idle = timers();
      const offA = bus.on(1, () => {});
      const offB = bus.on(2, () => {});
      assert.equal(timers(), idle, 'the poll timer is unref()ed');
      await sleep(3.5 * SQLITE_CHANGE_POLL_MS);
      assert.ok(reads >= 2 && reads <= 4, `about one data_version read a second while listened to (${reads})`);
      offA();
      offA(); // twice: harmless
      const one = reads;
      await sleep(2.5 * SQLITE_CHANGE_POLL_MS);
      assert.ok(reads > one, 'still polling while bob listens');
      offB();
      const none = reads;
      await sleep(2.5 * SQLITE_CHANGE_POLL_MS);
      assert.equal(reads, none, 'no reads once the last listener left');
    } finally {
      await poll.close();
      await db.destroy();
      await store.close();
    }
  });
});
