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
import { Worker } from 'node:worker_threads';
import type { Kysely } from 'kysely';
import type { MessageSummary } from '../core/types.ts';
import type { Database } from './schema.ts';
import type { NewMessage } from './types.ts';
import { fromWire, type FromWriter, type ToWriter, type WriterStart } from './message-writer-protocol.ts';

export interface MessageWriter {
  /** Stores `items` in one transaction in the thread; resolves once it committed (not yet durable: `sync`). */
  commit(items: NewMessage[]): Promise<MessageSummary[]>;
  /** Resolves once the last round committed is on stable storage. */
  sync(): Promise<void>;
  /**
   * Starts the thread (unreferenced: it keeps no process alive). A server does, once it listens;
   * a short-lived store (a CLI command, a test of the store) keeps its rounds on the main
   * connection rather than pay for a thread's start (message-repository.ts).
   */
  warm(): void;
  /** Whether `warm` was called: rounds go to the thread from then on. */
  started(): boolean;
  /** Ends the thread after the rounds in flight; before the store's own connection closes. */
  close(): Promise<void>;
}

interface Round {
  committed: Deferred<MessageSummary[]>;
  synced: Deferred<void>;
}

/** Starts the writer's thread on the SQLite file at `path`. */
export type StartWriterThread = (path: string) => Worker;

/**
 * Built (dist/), the entry is message-writer-worker.js beside this file (scripts/build.mjs checks
 * it). From the TypeScript sources (tests, `npm run twoway`), a worker does not inherit the tsx
 * loader registered in the main thread, so a small bootstrap registers it first (as
 * mail/auth-pool.ts does for its workers).
 */
export const startThread: StartWriterThread = (path) => {
  const options = { workerData: { path } satisfies WriterStart, stdout: false, stderr: false };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./message-writer-worker.js', import.meta.url), options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./message-writer-worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
};

/**
 * `db`: the store's main connection, held during each round; `beforeFirstRound`: starts the WAL
 * checkpointer; `startWriter`: only tests pass their own, to reach the thread.
 */
export function createMessageWriter(path: string, db: Kysely<Database>, beforeFirstRound: () => void, startWriter = startThread): MessageWriter {
  return new ThreadWriter(path, db, beforeFirstRound, startWriter);
}

class ThreadWriter implements MessageWriter {
  private worker: Worker | null = null;
  /** Resolves when the thread has its connection open; rejects if it died first. */
  private ready: Promise<void> = Promise.resolve();
  private exited: Promise<void> = Promise.resolve();
  private nextId = 0;
  private readonly rounds = new Map<number, Round>();
  /** Rounds not yet settled, posted or still waiting: the thread keeps the process alive only while there are some. */
  private pending = 0;
  private lastSynced: Promise<void> | null = null;
  private closed = false;
  private warmed = false;

  constructor(
    private readonly path: string,
    private readonly db: Kysely<Database>,
    private readonly beforeFirstRound: () => void,
    private readonly startWriter: StartWriterThread,
  ) {}

  commit(items: NewMessage[]): Promise<MessageSummary[]> {
    if (this.closed) return Promise.reject(new Error('the message store is closed'));
    const round: Round = { committed: deferred(), synced: deferred() };
    // The thread is referenced from here until the round is settled, including the waits for it and for the connection.
    this.pending++;
    const settled = () => {
      this.pending--;
      this.refresh();
    };
    round.synced.promise.then(settled, settled);
    this.lastSynced = round.synced.promise;
    const id = ++this.nextId;
    let posted = false;
    return this.thread()
      .then((w) =>
        this.db.connection().execute(async () => {
          // It may have died while this round waited for the connection: a message to it would be lost.
          if (this.worker !== w) throw new Error('message writer thread exited');
          this.rounds.set(id, round);
          w.postMessage({ type: 'round', id, items } satisfies ToWriter);
          posted = true;
          return round.committed.promise;
        }),
      )
      .catch((err: unknown) => {
        // Never posted: no answer will settle it. (A posted round's `synced` settles with its answer.)
        if (!posted) round.synced.reject(err instanceof Error ? err : new Error(String(err)));
        throw err;
      });
  }

  warm(): void {
    this.warmed = true;
    if (this.closed || this.worker) return;
    this.worker = this.start();
    this.refresh();
  }

  started(): boolean {
    return this.warmed;
  }

  sync(): Promise<void> {
    const synced = this.lastSynced ?? Promise.resolve();
    this.lastSynced = null;
    return synced;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    if (!w) return;
    w.postMessage({ type: 'close' } satisfies ToWriter);
    w.ref();
    const timer = setTimeout(() => void w.terminate(), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** The thread, started if need be, once its connection is open: a round holds the main connection only from then on. */
  private async thread(): Promise<Worker> {
    this.worker ??= this.start();
    const w = this.worker;
    this.refresh();
    await this.ready;
    return w;
  }

  private start(): Worker {
    this.beforeFirstRound();
    const w = this.startWriter(this.path);
    let isReady!: () => void;
    w.on('message', (m: FromWriter) => (m.type === 'ready' ? isReady() : this.onMessage(m)));
    w.on('error', (err) => this.failAll(new Error(`message writer thread failed: ${err.message}`, { cause: err })));
    this.exited = new Promise((resolve) =>
      w.once('exit', (code) => {
        if (this.worker === w) this.worker = null;
        this.failAll(new Error(`message writer thread exited (code ${code})`));
        resolve();
      }),
    );
    const died = this.exited.then(() => {
      throw new Error('message writer thread exited before it was ready');
    });
    this.ready = Promise.race([new Promise<void>((resolve) => (isReady = resolve)), died]);
    this.ready.catch(() => undefined);
    return w;
  }

  private onMessage(m: Exclude<FromWriter, { type: 'ready' }>): void {
    const r = this.rounds.get(m.id);
    if (!r) return;
    if (m.type === 'committed') {
      r.committed.resolve(m.summaries);
      return;
    }
    this.rounds.delete(m.id);
    if (m.type === 'synced') {
      r.synced.resolve();
      return;
    }
    const err = fromWire(m.error);
    if (m.type === 'failed') r.committed.reject(err);
    r.synced.reject(err);
  }

  private refresh(): void {
    if (this.pending > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  private failAll(err: Error): void {
    for (const r of this.rounds.values()) {
      r.committed.reject(err);
      r.synced.reject(err);
    }
    this.rounds.clear();
  }
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
