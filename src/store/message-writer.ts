/**
 * The message group commit's rounds off the event loop (SQLite on a file).
 *
 * Why: a round's statements, its COMMIT (which writes each WAL frame with its own system calls)
 * and the dispatch of its fsync were about a fifth of the event loop's busy time per accepted
 * message, and the event loop is what bounds the accept rate (bench/accept-cpu.ts). Here a
 * thread with a connection of its own (message-writer-worker.ts) runs the round and fdatasyncs
 * the WAL; the event loop only hands the messages over and gets the summaries back.
 *
 * The rules:
 * - while a round runs in the thread, the main connection is held (kysely's connection mutex),
 *   so no write of the main thread meets the thread's write lock: that would wait in SQLite's busy
 *   handler, which sleeps on the event loop. Statements queued meanwhile wait for the round's
 *   commit, not its fsync. Prepared reads that run on the connection directly (prepared.ts) may
 *   still run: in WAL mode a read never waits for a writer;
 * - `commit` resolves once the round committed, `sync` once it is on stable storage: group-commit.ts
 *   acknowledges nothing before its `sync`, and a failed fsync fails the round (never retried, as
 *   it did commit);
 * - a thread that dies fails its rounds in flight (the messages get a temporary SMTP error and are
 *   sent again; one that had committed is then stored twice, as after a crash) and the next round
 *   starts a new thread.
 */
import type { Worker } from 'node:worker_threads';
import type { Kysely } from 'kysely';
import type { MessageSummary } from '../core/types.ts';
import { startModuleWorker } from '../core/module-worker.ts';
import type { Database } from './schema.ts';
import type { NewMessage } from './types.ts';
import { fromWire, type FromWriter, type ToWriter, type WriterStart } from './message-writer-protocol.ts';

export interface MessageWriter {
  /** Stores `items` in one transaction in the thread; resolves once it committed (not yet durable: `sync`). */
  commit(items: NewMessage[]): Promise<MessageSummary[]>;
  /** Resolves once the last round committed is on stable storage. */
  sync(): Promise<void>;
  /** Ends the thread after the rounds in flight; before the store's own connection closes. */
  close(): Promise<void>;
}

interface Round {
  committed: Deferred<MessageSummary[]>;
  synced: Deferred<void>;
}

/** Starts the writer's thread on the SQLite file at `path`. */
export type StartWriterThread = (path: string) => Worker;

const startThread: StartWriterThread = (path) =>
  startModuleWorker(import.meta.url, 'message-writer-worker', { workerData: { path } satisfies WriterStart, stdout: false, stderr: false });

/**
 * `db`: the store's main connection, held during each round; `beforeFirstRound`: starts the WAL
 * checkpointer; `startWriter`: only tests pass their own, to reach the thread.
 */
export function createMessageWriter(path: string, db: Kysely<Database>, beforeFirstRound: () => void, startWriter = startThread): MessageWriter {
  let worker: Worker | null = null;
  /** Resolves when the thread has its connection open; rejects if it died first. */
  let ready: Promise<void> = Promise.resolve();
  let exited: Promise<void> = Promise.resolve();
  let nextId = 0;
  const rounds = new Map<number, Round>();
  let lastSynced: Promise<void> | null = null;
  let closed = false;

  const failAll = (err: Error): void => {
    for (const r of rounds.values()) {
      r.committed.reject(err);
      r.synced.reject(err);
    }
    rounds.clear();
  };

  const onMessage = (m: FromWriter): void => {
    if (m.type === 'ready') return;
    const r = rounds.get(m.id);
    if (!r) return;
    if (m.type === 'committed') {
      r.committed.resolve(m.summaries);
      return;
    }
    rounds.delete(m.id);
    if (rounds.size === 0) worker?.unref();
    if (m.type === 'synced') {
      r.synced.resolve();
      return;
    }
    const err = fromWire(m.error);
    if (m.type === 'failed') r.committed.reject(err);
    r.synced.reject(err);
  };

  const start = (): Worker => {
    beforeFirstRound();
    const w = startWriter(path);
    w.on('message', onMessage);
    w.on('error', (err) => failAll(new Error(`message writer thread failed: ${err.message}`, { cause: err })));
    exited = new Promise((resolve) =>
      w.once('exit', (code) => {
        if (worker === w) worker = null;
        failAll(new Error(`message writer thread exited (code ${code})`));
        resolve();
      }),
    );
    const died = exited.then(() => {
      throw new Error('message writer thread exited before it was ready');
    });
    ready = Promise.race([new Promise<void>((resolve) => w.on('message', (m: FromWriter) => m.type === 'ready' && resolve())), died]);
    ready.catch(() => undefined);
    return w;
  };

  /** The thread, started if need be, once its connection is open: a round holds the main connection only from then on. */
  const thread = async (): Promise<Worker> => {
    worker ??= start();
    const w = worker;
    await ready;
    return w;
  };

  return {
    commit(items) {
      if (closed) return Promise.reject(new Error('the message store is closed'));
      const round: Round = { committed: deferred(), synced: deferred() };
      // Awaited by `sync` only after a successful commit; a failed round's rejection is its commit's.
      round.synced.promise.catch(() => undefined);
      lastSynced = round.synced.promise;
      const id = ++nextId;
      return thread().then((w) =>
        db.connection().execute(async () => {
          // It may have died while this round waited for the connection: a message to it would be lost.
          if (worker !== w) throw new Error('message writer thread exited');
          rounds.set(id, round);
          w.ref();
          w.postMessage({ type: 'round', id, items } satisfies ToWriter);
          return round.committed.promise;
        }),
      );
    },
    sync() {
      const synced = lastSynced ?? Promise.resolve();
      lastSynced = null;
      return synced;
    },
    async close() {
      closed = true;
      const w = worker;
      if (!w) return;
      w.postMessage({ type: 'close' } satisfies ToWriter);
      w.ref();
      const timer = setTimeout(() => void w.terminate(), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}
