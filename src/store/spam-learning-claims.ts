/**
 * Claims on spam learning rows (migration 0027), as for the queue
 * (queue-claims.ts): one UPDATE whose subquery picks the first due, free
 * pending rows (FOR UPDATE SKIP LOCKED on PostgreSQL) and whose outer
 * condition checks again that they are free, so two processes never both
 * send one row to rspamd. Not fsynced on SQLite: a lost claim frees the row.
 *
 * An outcome is written only while the row's lease is still the writer's,
 * and the write ends the lease. A row whose class changed while it was
 * leased (spam-learning-repository.ts `queueLearning`) keeps its lease: no
 * other process sends the new class while the old one may still be on its
 * way to rspamd (rspamd keeps the class it learned last, so the order
 * matters). The holder's outcome for the old class is then not recorded;
 * the holder only frees the row, and the new class goes out next.
 */
import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import type { Database, Dialect, SpamLearningTable } from './schema.ts';
import type { LearnKind, LearnWrite, Lease } from './types.ts';
import { unsyncedWrite } from './lease-repository.ts';
import type { Db } from './db-util.ts';

/** `state = 'pending'` with a literal: both planners use the partial index `spam_learning_due` only so. */
const PENDING = sql.lit<'pending'>('pending');

/** Free at `at`: never leased, or its lease ended. */
function free(at: number) {
  return (eb: ExpressionBuilder<Database, 'spam_learning'>): Expression<SqlBool> => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]);
}

/**
 * The claim's statement (exported for the test of its plan). The rows are
 * picked in a MATERIALIZED CTE, evaluated once: as an `id IN (subquery)`,
 * PostgreSQL may plan a nested-loop semi join that runs the subquery again
 * for every candidate row, and each run's FOR UPDATE skips the rows this
 * statement already updated and so picks the next ones: a claim of one row
 * took every due row.
 */
export function claimQuery(db: Kysely<Database>, dialect: Dialect, at: number, limit: number, lease: { owner: string; until: number }) {
  return db
    .with(
      (cte) => cte('picked').materialized(),
      (q) => {
        const pick = q
          .selectFrom('spam_learning')
          .select('id')
          .where('state', '=', PENDING)
          .where('next_attempt_at', '<=', at)
          .where(free(at))
          .orderBy('next_attempt_at')
          .orderBy('id')
          .limit(limit);
        return dialect === 'postgres' ? pick.forUpdate().skipLocked() : pick;
      },
    )
    .updateTable('spam_learning')
    .set({ lease_owner: lease.owner, lease_until: lease.until })
    .where('id', 'in', (eb) => eb.selectFrom('picked').select('picked.id'))
    .where('state', '=', PENDING)
    .where(free(at))
    .returningAll();
}

/** Claims up to `limit` due pending rows for `lease`; returns them oldest due first. */
export async function claimSpamLearning(s: Db, now: Date, limit: number, lease: Lease): Promise<Array<Selectable<SpamLearningTable>>> {
  if (limit <= 0) return [];
  const rows = await unsyncedWrite(s, (db) => claimQuery(db, s.dialect, now.getTime(), limit, { owner: lease.owner, until: lease.until.getTime() }).execute());
  // RETURNING has no order.
  return rows.sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.id - b.id);
}

/**
 * Writes an attempt's outcome (`columns`) to row `id` if it still asks for
 * `kind` and `owner` holds its lease, ending the lease. Otherwise, if
 * `owner` still holds it (the class changed meanwhile), only frees it.
 */
export async function finishSpamLearning(s: Db, id: number, kind: LearnKind, owner: string, columns: Partial<Selectable<SpamLearningTable>>): Promise<LearnWrite> {
  const ended = { lease_owner: null, lease_until: null };
  const written = await s.db
    .updateTable('spam_learning')
    .set({ ...columns, ...ended })
    .where('id', '=', id)
    .where('kind', '=', kind)
    .where('state', '=', 'pending')
    .where('lease_owner', '=', owner)
    .executeTakeFirst();
  if (Number(written.numUpdatedRows) === 1) return 'written';
  const freed = await s.db.updateTable('spam_learning').set(ended).where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
  return Number(freed.numUpdatedRows) === 1 ? 'class-changed' : 'lease-lost';
}
