/**
 * Profiling experiments for the twoway benchmark child: each one changes ONE
 * thing at run time, so that a benchmark can show what a hot spot costs
 * before anyone changes src/. None of them is for production; several reach
 * into private fields and third-party prototypes on purpose.
 *
 *   commit-yield  GroupCommit waits one event-loop turn (setImmediate) instead of
 *                 one microtask before taking a batch, so deliveries that finish
 *                 in the same turn share a transaction.
 *   stmt-cache    better-sqlite3 `prepare` memoised per (database, SQL text);
 *                 kysely's SQLite driver prepares every query afresh.
 *   no-hold       smtp-server greets at once instead of after its fixed 100 ms
 *                 early-talker hold.
 *   no-fsync      SQLite synchronous=OFF: commits are not flushed (NOT durable),
 *                 to show what the fsync costs.
 *   async-fsync   durable group commit without blocking the event loop: SQLite
 *                 synchronous=NORMAL (in WAL mode: no fsync at commit, the WAL is
 *                 fsynced before every checkpoint), and after each group commit an
 *                 fdatasync of the -wal file on libuv's thread pool before the
 *                 callers' promises resolve. While that fsync runs, the event loop
 *                 keeps reading DATA and the next batch fills up.
 *   checkpoint-4000  SQLite wal_autocheckpoint 4000 pages instead of 1000: pages a
 *                 commit rewrites every time (index leaves, the mailbox row) are copied
 *                 to the database once per checkpoint, so fewer copies per message.
 *                 Since session 7 the store's own setting (open.ts): a no-op there, kept
 *                 for older checkouts and as the record of how it was measured.
 *   commit-window GroupCommit waits up to 1 ms more (one timer) before a batch of
 *                 fewer than 8 callers, so that more messages share a round's
 *                 pages (page 1, the sequence, the mailbox row, index leaves):
 *                 less CPU per message against a longer wait for each 250.
 *   nice-threads  every thread of the process but the main one (the authentication workers, the
 *                 message writer, the checkpointer, V8's and libuv's helpers) at nice
 *                 BENCH_NICE (default 8), one second after the start, so that waking one of them
 *                 does not preempt the event loop. Since session 16 the server does this itself
 *                 (src/platform/thread-priority.ts, 8 below the event loop): kept for older
 *                 checkouts, other nice values, and as the record of how it was measured.
 *   batch-threads the same threads under SCHED_BATCH (`chrt -b`) instead: no wakeup preemption,
 *                 the same share of the CPU.
 *   no-auth       SPF/DKIM/DMARC skipped (applied in twoway-server.ts by composing
 *                 the server without mailauth).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { GroupCommit } from '../../src/store/group-commit.ts';

export const EXPERIMENTS = ['commit-yield', 'commit-window', 'stmt-cache', 'no-hold', 'no-fsync', 'async-fsync', 'no-auth', 'checkpoint-4000', 'nice-threads', 'batch-threads'] as const;
export type Experiment = (typeof EXPERIMENTS)[number];

export function parseExperiments(value: string | undefined): Set<Experiment> {
  const names = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(EXPERIMENTS as readonly string[]).includes(n)) throw new Error(`unknown experiment "${n}": expected ${EXPERIMENTS.join(', ')}`);
  }
  return new Set(names as Experiment[]);
}

/** Patches applied before the server starts. */
export async function applyBeforeStart(experiments: Set<Experiment>): Promise<void> {
  if (experiments.has('commit-yield')) {
    const proto = GroupCommit.prototype as unknown as {
      run(this: GcInternals): Promise<void>;
    };
    proto.run = async function (this: GcInternals) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        while (this.waiting.length > 0) await this.commitBatch(this.takeBatch());
      } finally {
        this.running = undefined;
      }
    };
  }
  if (experiments.has('commit-window')) {
    const proto = GroupCommit.prototype as unknown as { run(this: GcInternals): Promise<void> };
    proto.run = async function (this: GcInternals) {
      try {
        while (this.waiting.length > 0) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (this.waiting.length < 8) await new Promise<void>((resolve) => setTimeout(resolve, 1));
          await this.commitBatch(this.takeBatch());
        }
      } finally {
        this.running = undefined;
      }
    };
  }
  if (experiments.has('stmt-cache')) {
    const proto = Database.prototype as unknown as { prepare(this: object, source: string): unknown };
    const original = proto.prepare;
    const caches = new WeakMap<object, Map<string, unknown>>();
    proto.prepare = function (this: object, source: string) {
      let cache = caches.get(this);
      if (!cache) {
        cache = new Map();
        caches.set(this, cache);
      }
      let stmt = cache.get(source);
      if (!stmt) {
        stmt = original.call(this, source);
        cache.set(source, stmt);
      }
      return stmt;
    };
  }
  if (experiments.has('no-hold')) {
    const entry = createRequire(import.meta.url).resolve('smtp-server');
    const file = join(dirname(entry), '..', 'esm', 'smtp-connection.js');
    const mod = (await import(pathToFileURL(file).href)) as { SMTPConnection: { prototype: SmtpConnInternals } };
    mod.SMTPConnection.prototype.init = function (this: SmtpConnInternals) {
      this._setListeners(() => {
        if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
          return this.send(421, this.name + ' Too many connected clients, try again in a moment', false);
        }
        this.connectionReady();
      });
    };
  }
}

/** Changes applied to the running server's database (`sqlitePath`: the database file). */
export async function applyAfterStart(experiments: Set<Experiment>, store: object, sqlitePath: string): Promise<void> {
  const db = () => {
    const k = (store as { s?: { db?: Kysely<unknown> } }).s?.db;
    if (!k) throw new Error('cannot reach the store\'s Kysely instance');
    return k;
  };
  if (experiments.has('nice-threads')) {
    const nice = Number(process.env.BENCH_NICE ?? 8);
    setTimeout(() => {
      for (const tid of readdirSync(`/proc/${process.pid}/task`).map(Number)) if (tid !== process.pid) setPriority(tid, nice);
    }, 1000).unref();
  }
  if (experiments.has('batch-threads')) {
    setTimeout(() => {
      for (const tid of readdirSync(`/proc/${process.pid}/task`).map(Number)) if (tid !== process.pid) execFileSync('chrt', ['-b', '-p', '0', String(tid)]);
    }, 1000).unref();
  }
  if (experiments.has('no-fsync')) await sql`PRAGMA synchronous = OFF`.execute(db());
  if (experiments.has('checkpoint-4000')) await sql`PRAGMA wal_autocheckpoint = 4000`.execute(db());
  if (experiments.has('async-fsync')) {
    await sql`PRAGMA synchronous = NORMAL`.execute(db());
    const committer = (store as { messages?: { committer?: { commit?: (items: unknown[]) => Promise<unknown[]> } } }).messages?.committer;
    const original = committer?.commit;
    if (!committer || typeof original !== 'function') throw new Error('async-fsync: no committer.commit found');
    let wal: FileHandle | null = null;
    (committer as { commit: (items: unknown[]) => Promise<unknown[]> }).commit = async (items: unknown[]) => {
      const results = await original.call(committer, items);
      wal ??= await open(`${sqlitePath}-wal`, 'r');
      await wal.datasync();
      return results;
    };
  }
}

interface GcInternals {
  waiting: unknown[];
  running: Promise<void> | undefined;
  takeBatch(): unknown[];
  commitBatch(batch: unknown[]): Promise<void>;
}

interface SmtpConnInternals {
  init(this: SmtpConnInternals): void;
  _setListeners(cb: () => void): void;
  _server: { options: { maxClients?: number }; connections: { size: number } };
  send(code: number, text: string, context?: unknown): unknown;
  name: string;
  connectionReady(): void;
}
