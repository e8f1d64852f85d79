/**
 * 0018_twm_pending_sender: the index `twm_in_notices_from (from_addr)`
 * behind the pending-notice caps (docs/protocol.md 12.7). Each stranger's
 * notice asks how many notices of that sender are pending for the user;
 * without the index that count joined every pending notice of the user,
 * so a user with 10,000 pending strangers cost each new notice a join over
 * 10,000 rows (4.6 ms of CPU per notice in bench/twm-stranger-cost.ts).
 */
import type { Kysely, Migration } from 'kysely';

export function twmPendingSenderMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createIndex('twm_in_notices_from').on('twm_in_notices').column('from_addr').execute();
    },
  };
}
