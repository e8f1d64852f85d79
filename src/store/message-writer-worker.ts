/**
 * The message writer's thread (message-writer.ts): one connection of its own to the SQLite file,
 * on which it runs each group-commit round of delivered messages (message-batch.ts, the same
 * statements as on the main thread), then fdatasyncs the WAL, and reports each step.
 *
 * The connection runs with `synchronous=NORMAL` throughout: a round's COMMIT writes its WAL
 * frames without an fsync, and this thread makes them durable with its own fdatasync, before it
 * reports `synced` (wal-sync.ts explains why a frame on disk in the WAL is a committed
 * transaction). Checkpoints stay with the checkpointer thread (wal-checkpointer.ts).
 */
import { closeSync, fdatasyncSync, fstatSync, openSync, statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Database as Tables } from './schema.ts';
import { runTransaction } from './db-util.ts';
import { storeMessages } from './message-batch.ts';
import { holdsConnectionOf, runsDirectlyOn } from './prepared.ts';
import { cacheStatements } from './sqlite-statements.ts';
import { toWire, type FromWriter, type ToWriter, type WriterStart } from './message-writer-protocol.ts';
import type { NewMessage } from './types.ts';
import { lowerThreadPriority } from '../platform/thread-priority.ts';

const port = parentPort;
if (!port) throw new Error('message-writer-worker.ts runs only as a worker thread (message-writer.ts)');
// Below the event loop: waking this thread must not take the CPU from it (platform/thread-priority.ts).
lowerThreadPriority();
const { path } = workerData as WriterStart;

const raw = new Database(path, { fileMustExist: true });
raw.pragma('synchronous = NORMAL');
raw.pragma('foreign_keys = ON');
// As the main connection (open.ts): the checkpointer thread checkpoints long before this.
raw.pragma('wal_autocheckpoint = 4000');
// The main thread's connection never writes during a round (message-writer.ts holds it); another process may.
raw.pragma('busy_timeout = 5000');
cacheStatements(raw);
const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: raw }) });
runsDirectlyOn(db, raw);

/** The WAL's descriptor, reopened when the file at the path is another one (wal-sync.ts: at most once a second). */
let wal: { fd: number; ino: number; checkedAt: number } | null = null;
function syncWal(): void {
  const now = performance.now();
  if (wal && now - wal.checkedAt >= 1000) {
    wal.checkedAt = now;
    if (statSync(`${path}-wal`).ino !== wal.ino) {
      closeSync(wal.fd);
      wal = null;
    }
  }
  if (!wal) {
    const fd = openSync(`${path}-wal`, 'r');
    wal = { fd, ino: fstatSync(fd).ino, checkedAt: now };
  }
  fdatasyncSync(wal.fd);
}

/** structured clone hands Buffers over as plain Uint8Arrays; the statements want Buffers. */
function revive(item: NewMessage): NewMessage {
  const bytes = item.raw as Uint8Array;
  return { ...item, raw: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

function send(message: FromWriter): void {
  port!.postMessage(message);
}

async function round(id: number, items: readonly NewMessage[]): Promise<void> {
  try {
    const summaries = await runTransaction(db, (tx) => {
      holdsConnectionOf(tx, db);
      return storeMessages(tx, 'sqlite', items.map(revive));
    });
    send({ type: 'committed', id, summaries });
  } catch (err) {
    send({ type: 'failed', id, error: toWire(err) });
    return;
  }
  try {
    syncWal();
    send({ type: 'synced', id });
  } catch (err) {
    send({ type: 'sync-failed', id, error: toWire(err) });
  }
}

// One round at a time, in the order they came (the main thread sends the next only after `synced`, but a queue costs nothing).
let chain = Promise.resolve();
port.on('message', (m: ToWriter) => {
  if (m.type === 'close') {
    chain = chain.then(async () => {
      await db.destroy();
      if (wal) closeSync(wal.fd);
      port.close();
    });
    return;
  }
  chain = chain.then(() => round(m.id, m.items));
});
send({ type: 'ready' });
