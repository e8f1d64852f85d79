/**
 * Group commit for small, unrelated writes (the TWM repositories): each
 * caller's operation runs inside one shared durable transaction with the
 * operations that queued up meanwhile, so concurrent notice, fetch and
 * receipt handlers share one commit (one fsync) instead of one each.
 *
 * An operation must do all its work through the `tx` it is given and must
 * not call back into a repository that uses this writer (it would wait for
 * its own batch). If a shared transaction fails, GroupCommit rolls it back
 * and re-runs each operation alone, so an operation may run more than once
 * and must not keep state outside the transaction between runs.
 */
import type { Transaction } from 'kysely';
import type { Database } from './schema.ts';
import { GroupCommit } from './group-commit.ts';
import { durableTransaction, type Db } from './db-util.ts';
import { holdsConnectionOf } from './prepared.ts';

export type WriteOp<T> = (tx: Transaction<Database>) => Promise<T>;

export class DurableWriter {
  private readonly committer: GroupCommit<WriteOp<unknown>, unknown>;

  constructor(s: Db) {
    this.committer = new GroupCommit(
      (ops) =>
        durableTransaction(s, async (tx) => {
          // The batch's transaction has the connection to itself: its prepared statements may skip kysely's driver (prepared.ts).
          holdsConnectionOf(tx, s.db);
          const results: unknown[] = [];
          for (const op of ops) results.push(await op(tx));
          return results;
        }),
      // Operations are small; a batch this size commits in milliseconds.
      200,
    );
  }

  /** Runs `op` in a durable transaction; resolves with its result after the commit is on stable storage. */
  async write<T>(op: WriteOp<T>): Promise<T> {
    const [result] = await this.committer.submit([op]);
    // The cast: GroupCommit hands back this op's own result, which `op` typed as T.
    return result as T;
  }

  /** Waits for queued operations to commit (Store.close). */
  drain(): Promise<void> {
    return this.committer.drain();
  }
}
