/**
 * 0025_partial_message_indexes: `messages_twm_key` (user_id, twm_key) and
 * `messages_request` (request_id) hold only the rows that have a value.
 *
 * Why: every stored message wrote an entry into both, though only a message
 * fetched over TWM has a `twm_key` and only one held in the Screener has a
 * `request_id`; each entry is an index leaf rewritten by every group commit
 * round of the accept path (bench/accept-round.ts counts a round's WAL
 * pages). Every query on these columns compares them with a value
 * (`twm_key = ?`, `twm_key IN (...)`, `request_id = ...`, and the foreign
 * key's ON DELETE SET NULL), which both SQLite and PostgreSQL take as
 * implying IS NOT NULL, so they use the partial index as before.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export function partialMessageIndexesMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('messages_twm_key').execute();
      await db.schema
        .createIndex('messages_twm_key')
        .on('messages')
        .columns(['user_id', 'twm_key'])
        .where(sql.ref('twm_key'), 'is not', null)
        .execute();
      await db.schema.dropIndex('messages_request').execute();
      await db.schema
        .createIndex('messages_request')
        .on('messages')
        .column('request_id')
        .where(sql.ref('request_id'), 'is not', null)
        .execute();
    },
  };
}
