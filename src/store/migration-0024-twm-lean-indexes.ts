/**
 * 0024_twm_lean_indexes: fewer index entries written per sent message.
 *
 * - `twm_out_recipients_state` goes. Every query on the sender's TWM rows
 *   finds them by notice (the primary key: transitions, the body drop, the
 *   expiry sweep's and prune's subqueries; EXPLAIN QUERY PLAN on both
 *   backends), so the index on `state` alone was never read, yet each
 *   notice wrote it four times per recipient (the insert, then `accepted`,
 *   `fetched` and `delivered`, each a delete and an insert of its entry).
 * - The two indexes of `recipient_events` hold only the rows they serve:
 *   a row is either a queue recipient's (`queue_recipient_id`) or a TWM
 *   recipient's (`twm_notice_id`), the other column null, and each index
 *   also kept an entry for every null of its column. Partial indexes
 *   (`... is not null`) serve the same lookups (`= ?` and `in (...)` imply
 *   `is not null`, on SQLite and PostgreSQL) and the ON DELETE CASCADE of
 *   both parents.
 */
import type { Kysely, Migration } from 'kysely';

export function twmLeanIndexesMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('twm_out_recipients_state').execute();
      await db.schema.dropIndex('recipient_events_queue').execute();
      await db.schema.createIndex('recipient_events_queue').on('recipient_events').columns(['queue_recipient_id', 'id']).where('queue_recipient_id', 'is not', null).execute();
      await db.schema.dropIndex('recipient_events_twm').execute();
      await db.schema
        .createIndex('recipient_events_twm')
        .on('recipient_events')
        .columns(['twm_notice_id', 'recipient', 'id'])
        .where('twm_notice_id', 'is not', null)
        .execute();
    },
  };
}
