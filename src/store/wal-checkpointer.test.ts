/**
 * The WAL checkpointer (wal-checkpointer.ts): once messages are delivered,
 * their pages reach the database file within a few checkpoint intervals,
 * without a COMMIT reaching `wal_autocheckpoint` (4,000 pages); closing the
 * store ends the worker and removes the WAL, and closes the WAL sync's own
 * handle (wal-sync.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore } from './open.ts';
import { CHECKPOINT_EVERY_MS } from './wal-checkpointer.ts';

test('delivered messages are checkpointed into the database file off the event loop; close removes the WAL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-ckpt-'));
  const path = join(dir, 'store.db');
  try {
    const store = await openStore(`sqlite:${path}`);
    const user = await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'open' });
    // Whatever the migrations left in the WAL is checkpointed first, so that only the messages grow the file.
    await store.messages.deliver([message(user.id, 0)]);
    await sleep(CHECKPOINT_EVERY_MS * 3);
    const before = statSync(path).size;
    // 40 messages of 16 KB: about 160 pages, far below the automatic checkpoint's 4,000.
    for (let i = 1; i <= 40; i++) await store.messages.deliver([message(user.id, i)]);
    let after = statSync(path).size;
    for (let waited = 0; after < before + 40 * 16_384 && waited < 20 * CHECKPOINT_EVERY_MS; waited += 50) {
      await sleep(50);
      after = statSync(path).size;
    }
    assert.ok(after >= before + 40 * 16_384, `database file ${before} -> ${after} bytes: the messages were not checkpointed`);
    await store.close();
    assert.equal(existsSync(`${path}-wal`), false, 'the store closed last and removed its WAL');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function message(userId: number, i: number) {
  return {
    userId,
    mailbox: 'INBOX' as const,
    // Distinct bodies: bodies are content-addressed, equal ones would be stored once.
    raw: Buffer.from(`Subject: ${i}\r\n\r\n${String(i).padEnd(16_384, 'x')}\r\n`),
    flags: [],
    sender: 'sender@example.org',
    from: 'sender@example.org',
    subject: String(i),
    receivedAt: new Date(),
    firstContact: false,
  };
}

/** Descriptors of this process open on `path`, deleted since or not (Linux /proc). */
function openOn(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === path || target === `${path} (deleted)`) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

test('closing the store closes the handle the WAL sync opened', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-walfd-'));
  const path = join(dir, 'store.db');
  try {
    const store = await openStore(`sqlite:${path}`);
    const user = await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'open' });
    await store.messages.deliver([message(user.id, 0)]);
    // Not an exact count: the checkpointer thread opens its own connection when it gets to it,
    // which under load can be before or after this line.
    assert.ok(openOn(`${path}-wal`) >= 1, 'the WAL is open once a message was delivered');
    await store.close();
    assert.equal(openOn(`${path}-wal`), 0, 'no handle of the WAL left open after close');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
