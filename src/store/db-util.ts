/**
 * Small helpers shared by the repositories: driver error classification and
 * row value conversions that must behave the same on both dialects.
 */
import { CompiledQuery, type Kysely, type Transaction } from 'kysely';
import type { Database, Dialect } from './schema.ts';
import type { WalSync } from './wal-sync.ts';
import type { MessageWriter } from './message-writer.ts';

/** What every repository is built from. */
export interface Db {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** SQLite on a file: fsyncs the WAL off the event loop (wal-sync.ts). Absent otherwise. */
  readonly walSync?: WalSync;
  /** SQLite on a file: runs the message group commit's rounds in a thread of their own (message-writer.ts). */
  readonly messageWriter?: MessageWriter;
}

/**
 * Runs a write transaction that must be durable when it resolves. On a
 * SQLite file the transaction commits without its fsync and the WAL is then
 * fsynced on the thread pool (wal-sync.ts), so the event loop keeps serving
 * meanwhile; elsewhere it is a plain transaction (PostgreSQL waits for its
 * WAL flush off our thread anyway).
 */
// Compiled once: every group commit runs both (a template compiled per call before).
const SYNC_NORMAL = CompiledQuery.raw('PRAGMA synchronous = NORMAL');
const SYNC_FULL = CompiledQuery.raw('PRAGMA synchronous = FULL');

export async function durableTransaction<T>(s: Db, fn: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
  const result = await unsyncedTransaction(s, fn);
  await s.walSync?.();
  return result;
}

/**
 * The transaction of `durableTransaction` without the WAL fsync after it:
 * on a SQLite file it is durable only once `s.walSync()` has been called
 * after it and has resolved (the message group commit does so itself, so
 * that a failed fsync fails its round instead of committing it again:
 * group-commit.ts).
 * Elsewhere it is durable when it resolves.
 */
export async function unsyncedTransaction<T>(s: Db, fn: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
  if (!s.walSync) return runTransaction(s.db, fn);
  // One connection for the pragma, the transaction and the pragma back: other writes keep synchronous=FULL.
  return s.db.connection().execute(async (conn) => {
    await conn.executeQuery(SYNC_NORMAL);
    try {
      return await runTransaction(conn, fn);
    } finally {
      await conn.executeQuery(SYNC_FULL);
    }
  });
}

/**
 * Runs a transaction and, when it fails, throws the error that failed it.
 * SQLite rolls a transaction back by itself on some errors (SQLITE_FULL,
 * SQLITE_IOERR, SQLITE_NOMEM), often at COMMIT; kysely's `transaction()`
 * then sends ROLLBACK, which fails with "no transaction is active", and
 * throws that instead of the cause: a full disk was a generic 451 rather
 * than 452 4.3.1 (test/faults-disk.test.ts). A controlled transaction lets
 * that one rollback error be ignored; any other rollback error may mean a
 * broken connection and is thrown.
 */
export async function runTransaction<T>(db: Kysely<Database>, fn: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
  const tx = await db.startTransaction().execute();
  let result: T;
  try {
    result = await fn(tx);
    await tx.commit().execute();
  } catch (error) {
    await tx
      .rollback()
      .execute()
      .catch((rollbackError: unknown) => {
        if (!(rollbackError instanceof Error && /no transaction is active/.test(rollbackError.message))) throw rollbackError;
      });
    throw error;
  }
  return result;
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** A UNIQUE / PRIMARY KEY violation (better-sqlite3 and pg report them differently). */
export function isUniqueViolation(err: unknown): boolean {
  const code = errorCode(err);
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** A FOREIGN KEY violation. */
export function isForeignKeyViolation(err: unknown): boolean {
  const code = errorCode(err);
  return code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

/**
 * Integers from the database as numbers. int8 is already parsed by the pool
 * (open.ts), but counts and affected-row numbers can still arrive as bigint or
 * string depending on the driver path, so every numeric read goes through here.
 */
export function num(value: number | bigint | string | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : Number(value);
}

export function toDate(ms: number | bigint | string): Date {
  return new Date(num(ms));
}

/** Splits work into pieces small enough for the bound-parameter limits of both dialects. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function unique<T>(items: Iterable<T>): T[] {
  return [...new Set(items)];
}
