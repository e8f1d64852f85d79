/**
 * 0027_spam_learning_leases: spam learning rows are claimed like the queue
 * and the TWM fetches (migration 0010), so that any number of processes on
 * any number of machines run the learning worker without two of them
 * sending one row to rspamd (store/spam-learning-claims.ts).
 *
 * - `lease_owner`, `lease_until` on `spam_learning`: the worker claims due
 *   pending rows by a conditional update (free, or the lease expired) and
 *   records an outcome only while it still owns them.
 * - `spam_learning_due` becomes (next_attempt_at, id) over the pending rows
 *   only, instead of (state, next_attempt_at) over every row: the claim takes
 *   the first due rows in (next_attempt_at, id) order, which this index
 *   holds, so the scan stops after LIMIT free rows on both SQLite and
 *   PostgreSQL, and the done and failed rows (one per message ever taught,
 *   never pruned) are left out of it. The queries on it say
 *   `state = 'pending'` with a literal, which both planners need to use a
 *   partial index.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';
import { types } from './migrations.ts';

export function spamLearningLeasesMigration(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // One column per statement: SQLite's ALTER TABLE adds one at a time.
      await db.schema.alterTable('spam_learning').addColumn('lease_owner', 'text').execute();
      await db.schema.alterTable('spam_learning').addColumn('lease_until', t.time).execute();
      await db.schema.dropIndex('spam_learning_due').execute();
      await db.schema
        .createIndex('spam_learning_due')
        .on('spam_learning')
        .columns(['next_attempt_at', 'id'])
        .where(sql.ref('state'), '=', sql.lit('pending'))
        .execute();
    },
  };
}
