/**
 * WAL checkpoints off the event loop (SQLite).
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses
 * `wal_autocheckpoint`, on the connection that commits: Node's only thread.
 * It copies the WAL's pages into the database and fsyncs both files, which
 * on a busy disk stalled the event loop for 30-100 ms a few times a second
 * at 500 accepted messages/s, and every SMTP session waited through each
 * stall (bench/lib/accept-trace.ts). Here a worker thread with a connection
 * of its own runs a PASSIVE checkpoint every `everyMs` instead: it never
 * waits for or blocks the writer, and the automatic checkpoint
 * (`wal_autocheckpoint`, open.ts) stays as the backstop should this thread
 * fall behind or die. A checkpoint only moves committed pages from the WAL
 * into the database; it has no part in a commit's durability.
 *
 * The worker is plain JavaScript evaluated in the thread (it needs nothing
 * of ours but better-sqlite3), unreferenced so that it keeps no process
 * alive, and closed before the store's own connection, so that connection
 * is the last one and SQLite checkpoints and removes the WAL as it closes.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export interface WalCheckpointer {
  /** Closes the worker's connection and ends the thread. */
  close(): Promise<void>;
}

/** Checkpoints well before `wal_autocheckpoint` (4,000 pages) fills at the benchmarks' rates (~11,000 pages/s at 500 msg/s). */
export const CHECKPOINT_EVERY_MS = 250;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
// A checkpoint fsyncs the WAL before copying it and the database after (WAL with FULL or NORMAL).
db.pragma('synchronous = FULL');
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // SQLITE_BUSY: another connection (another process's checkpointer) is checkpointing; the next tick retries.
  }
};
const timer = setInterval(checkpoint, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
parentPort.postMessage('ready');
`;

export function startWalCheckpointer(databasePath: string, everyMs = CHECKPOINT_EVERY_MS): WalCheckpointer {
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER, { eval: true, workerData: { module, path: databasePath, everyMs }, stdout: false, stderr: false });
  worker.unref();
  // A worker that cannot open the database leaves checkpoints to the automatic one; nothing else depends on it.
  worker.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    async close() {
      worker.postMessage('close');
      const timer = setTimeout(() => void worker.terminate(), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
