/**
 * 0013_contacts_paging: the index `contacts_user_id (user_id, id)` behind
 * the web app's key-paged contacts list (newest first, `id < before`):
 * without it both planners read every card of the user through the
 * (user_id, book, href) index and sort them, so each page of a 10,000-card
 * book cost a read of the whole book.
 */
import type { Kysely, Migration } from 'kysely';

export function contactsPagingMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createIndex('contacts_user_id').on('contacts').columns(['user_id', 'id']).execute();
    },
  };
}
