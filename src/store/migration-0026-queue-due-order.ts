/**
 * 0026_queue_due_order: `queue_recipients_due` becomes (next_attempt_at, id)
 * over the entries still to deliver (the rows with a `next_attempt_at`:
 * 'scheduled' and 'deferred'; a delivered or failed entry has none), instead
 * of (state, next_attempt_at) over every entry.
 *
 * Why: the queue's claim (queue-prepared.ts claimShape) takes the first due
 * entries of both states in (next_attempt_at, id) order. The old index gave
 * that order within one state only, so the planners read every due entry and
 * sorted them (SQLite in a temporary B-tree) on every claim, and the worker
 * claims several times per poll: each claim cost O(backlog log backlog). The
 * new index holds the rows in the claim's order, so the scan stops after
 * LIMIT free rows; being partial, it also leaves out the delivered and failed
 * history. Every query on it compares `next_attempt_at` with a value, which
 * both SQLite and PostgreSQL take as implying IS NOT NULL. Queries by state
 * (`list({ state })`, prune, flush) have `queue_recipients_done` (state,
 * done_at).
 */
import { sql, type Kysely, type Migration } from 'kysely';

export function queueDueOrderMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('queue_recipients_due').execute();
      await db.schema
        .createIndex('queue_recipients_due')
        .on('queue_recipients')
        .columns(['next_attempt_at', 'id'])
        .where(sql.ref('next_attempt_at'), 'is not', null)
        .execute();
    },
  };
}
