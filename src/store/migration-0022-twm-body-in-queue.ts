/**
 * 0022_twm_body_in_queue: `twm_out_notices.body_in_queue` (0 or 1). A
 * notice made from a queue message no longer keeps a copy of the octets:
 * with 1, its `body` is empty and fetches are served from
 * `queue_messages.raw` of its `message_id`, which then stays until that
 * notice's body is dropped too (twm-body-sharing.ts has the rule).
 *
 * Why: every TWM message was written twice on the sender (about 10 KB each
 * for bench/twm-delivery.ts's messages: the queue's copy, then the
 * notice's) and dropped twice. Existing notices keep their own copy (0).
 */
import type { Kysely, Migration } from 'kysely';

export function twmBodyInQueueMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable('twm_out_notices')
        .addColumn('body_in_queue', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  };
}
