/**
 * 0028_sent_by_sender: a user's sent mail found by one index on each side.
 *
 * - `queue_messages.sender_key` and `twm_out_notices.sender_key`: the account
 *   the envelope sender belongs to (core/address.ts senderKey: the normal
 *   form, lower-case, without a `+tag`), null for a sender that does not
 *   parse (the null sender `''`). `sender` stays as the client gave it: it is
 *   the reverse-path the message goes out with.
 * - Indexes (sender_key, created_at, message_id) on the queue's messages and
 *   (sender_key, created_at, id) on the notices, which replaces
 *   `twm_out_notices_sender` (sender, created_at): the Sent view
 *   (services/sent.ts) reads the newest messages of one account, subaddresses
 *   and any case included, by an equality on the key and in the index's order,
 *   and stops at its page. Before, it read every queue entry of the server and
 *   matched `sender = ? OR sender LIKE 'local+%@domain'` on the notices, which
 *   no index serves (PostgreSQL's LIKE needs a pattern operator class or the
 *   C collation; SQLite's is case-insensitive, which no plain index serves
 *   either) and missed a sender written in another case than the account's.
 *
 * Existing rows are filled here: each distinct sender's key computed once by
 * the same function the repositories use, written by one UPDATE per table
 * through a temporary table (the queue has no index on `sender`).
 */
import { sql, type Kysely, type Migration } from 'kysely';
import { senderKey } from '../core/address.ts';
import { chunks } from './db-util.ts';

/** Rows per INSERT into the temporary table: two parameters each, far under both dialects' limits. */
const PER_STATEMENT = 500;

export function sentBySenderMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('queue_messages').addColumn('sender_key', 'text').execute();
      await db.schema.alterTable('twm_out_notices').addColumn('sender_key', 'text').execute();
      await fillSenderKeys(db, 'queue_messages');
      await fillSenderKeys(db, 'twm_out_notices');
      await db.schema.createIndex('queue_messages_sender_key').on('queue_messages').columns(['sender_key', 'created_at', 'message_id']).execute();
      await db.schema.dropIndex('twm_out_notices_sender').execute();
      await db.schema.createIndex('twm_out_notices_sender_key').on('twm_out_notices').columns(['sender_key', 'created_at', 'id']).execute();
    },
  };
}

async function fillSenderKeys(db: Kysely<unknown>, table: 'queue_messages' | 'twm_out_notices'): Promise<void> {
  const senders = await sql<{ sender: string }>`select distinct sender from ${sql.table(table)}`.execute(db);
  const keys = senders.rows.flatMap((r) => {
    const key = senderKey(r.sender);
    return key === null ? [] : [{ sender: r.sender, key }];
  });
  if (keys.length === 0) return;
  // A failure fails the migration: PostgreSQL rolls the temporary table back with it, and SQLite's goes with the connection the failed open closes.
  await sql`create temporary table sender_keys (sender text primary key, sender_key text not null)`.execute(db);
  for (const part of chunks(keys, PER_STATEMENT)) {
    await sql`insert into sender_keys (sender, sender_key) values ${sql.join(part.map((k) => sql`(${k.sender}, ${k.key})`))}`.execute(db);
  }
  await sql`update ${sql.table(table)} set sender_key = (select k.sender_key from sender_keys k where k.sender = ${sql.ref(`${table}.sender`)})`.execute(db);
  await sql`drop table sender_keys`.execute(db);
}
