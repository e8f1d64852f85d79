/**
 * The message writer's thread (message-writer.ts) on a real SQLite file: rounds interleaved with
 * the main connection's own writes, an error's code across the thread boundary, a thread that dies
 * in the middle of a round.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { User } from '../core/types.ts';
import { openStore } from './open.ts';
import { createMessageWriter, startThread, type StartWriterThread } from './message-writer.ts';
import type { Database as Schema } from './schema.ts';
import type { NewMessage } from './types.ts';
import { fromWire, toWire } from './message-writer-protocol.ts';
import { ExpectUsedUpError, isStorageFull } from '../core/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'twoway-writer-'));
/** A writer thread that is ready, then exits as the first round reaches it. */
const DIES_ON_ROUND = `const { parentPort } = require('node:worker_threads');
parentPort.postMessage({ type: 'ready' });
parentPort.on('message', () => process.exit(3));`;
after(() => rmSync(dir, { recursive: true, force: true }));

/** The process's operating-system threads (Linux): a worker thread adds some. */
const osThreads = () => readdirSync('/proc/self/task').length;

function message(user: User, body: string): NewMessage {
  return {
    userId: user.id,
    mailbox: 'INBOX',
    raw: Buffer.from(`Subject: test\r\n\r\n${body}\r\n`),
    flags: [],
    sender: 'sender@example.org',
    from: 'sender@example.org',
    subject: 'test',
    receivedAt: new Date(),
    firstContact: false,
  };
}

test('deliveries in the thread interleave with the main connection writes: all stored, UIDs distinct and consecutive', async () => {
  const store = await openStore(`sqlite:${join(dir, 'interleave.db')}`);
  try {
    const alice = await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'screen' });
    // Before warm, on the main connection: no thread of its own (this first one starts libuv's pool and the checkpointer).
    await store.messages.deliver([message(alice, 'inline 1')]);
    const before = osThreads();
    await store.messages.deliver([message(alice, 'inline 2')]);
    assert.equal(osThreads(), before, 'no writer thread before warm');
    store.messages.warm();
    const deliveries = Array.from({ length: 120 }, (_, i) => store.messages.deliver([message(alice, `m${i}`)]));
    // Writes on the main connection (their own durable transactions) while rounds run in the thread.
    const contacts = Array.from({ length: 40 }, (_, i) =>
      store.contacts.put(alice.id, {
        book: 'default',
        uid: `u${i}`,
        vcard: `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u${i}\r\nEMAIL:c${i}@example.net\r\nEND:VCARD\r\n`,
        entries: [{ kind: 'address', value: `c${i}@example.net`, action: 'allow' }],
      }),
    );
    const stored = (await Promise.all(deliveries)).flat();
    await Promise.all(contacts);
    assert.equal(stored.length, 120);
    const uids = stored.map((m) => m.uid).sort((a, b) => a - b);
    assert.deepEqual(uids, Array.from({ length: 120 }, (_, i) => uids[0]! + i));
    assert.ok(osThreads() > before, 'a writer thread ran the rounds');
    assert.equal((await store.messages.list(alice.id, { mailbox: 'INBOX' })).length, 122);
    assert.equal((await store.contacts.list(alice.id)).length, 40);
  } finally {
    await store.close();
  }
});

test('a round that fails in the thread fails its own caller with its error; the others are stored', async () => {
  const store = await openStore(`sqlite:${join(dir, 'failing.db')}`);
  try {
    const alice = await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'screen' });
    store.messages.warm();
    const nobody = { ...alice, id: 999_999 };
    const results = await Promise.allSettled([store.messages.deliver([message(alice, 'a')]), store.messages.deliver([message(nobody, 'x')]), store.messages.deliver([message(alice, 'b')])]);
    assert.equal(results[0]!.status, 'fulfilled');
    assert.equal(results[2]!.status, 'fulfilled');
    assert.equal(results[1]!.status, 'rejected');
    // No mailbox for that user: message-batch.ts throws before any insert; the message crosses the boundary.
    assert.match(String((results[1] as PromiseRejectedResult).reason), /No mailbox INBOX for user 999999/);
    assert.equal((await store.messages.list(alice.id)).length, 2);
  } finally {
    await store.close();
  }
});

test('a thread that dies fails the round in flight; the next round starts a new thread', async () => {
  const path = join(dir, 'dies.db');
  const store = await openStore(`sqlite:${path}`);
  const alice = await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'screen' });
  await store.close();

  const raw = new Database(path);
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: raw }) });
  // The second thread dies as a round reaches it, before it touches the file (a real thread that
  // really exits: terminating the real one mid-round would race its answer); the others are real.
  const threads: Worker[] = [];
  const start: StartWriterThread = (p) => {
    const w = threads.length === 1 ? new Worker(DIES_ON_ROUND, { eval: true }) : startThread(p);
    threads.push(w);
    return w;
  };
  const writer = createMessageWriter(path, db, () => undefined, start);
  try {
    writer.warm();
    assert.equal(threads.length, 1, 'warm starts the thread before any round');
    const first = await writer.commit([message(alice, 'first')]);
    assert.equal(threads.length, 1, 'the first round uses the warmed thread');
    await writer.sync();
    assert.equal(first.length, 1);

    // The real thread ends (as a crash would, between rounds); the next one dies with the round in flight.
    await threads[0]!.terminate();
    await assert.rejects(writer.commit([message(alice, 'doomed')]), /message writer thread exited/);
    assert.equal(threads.length, 2);

    const next = await writer.commit([message(alice, 'next')]);
    await writer.sync();
    assert.equal(threads.length, 3, 'the round after a death starts a new thread');
    assert.ok(next[0]!.uid > first[0]!.uid);
    const stored = raw.prepare("SELECT count(*) AS n FROM messages WHERE subject = 'test'").get() as { n: number };
    assert.equal(stored.n, 2, 'the doomed round stored nothing');
  } finally {
    await writer.close();
    await db.destroy();
  }
});

test('errors cross the thread as callers classify them: the driver code, and ExpectUsedUpError as itself', () => {
  const full = fromWire(toWire(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })));
  assert.equal((full as { code?: string }).code, 'SQLITE_FULL');
  assert.ok(isStorageFull(full));
  const usedUp = fromWire(toWire(new ExpectUsedUpError('no use left')));
  assert.ok(usedUp instanceof ExpectUsedUpError);
  assert.equal(usedUp.message, 'no use left');
});
