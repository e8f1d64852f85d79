/**
 * 0007_spam: what the spam filter needs (spam/, core/spam.ts).
 *
 * - A `Junk` mailbox for every existing account (new accounts get it at
 *   creation with the others).
 * - `contact_requests.spam_score` (the latest scanned score, null if never
 *   scanned) and `likely_spam` (0/1: the latest attempt was judged likely
 *   spam; the Screener lists these apart).
 * - `spam_learning`: learning as work in the store. One row per (user,
 *   message): the class to teach rspamd, a copy of the message (the message
 *   itself may be dropped before the worker gets to it; since migration 0029
 *   kept only until the row is done or failed), and the retry
 *   state. A row is `pending` until rspamd has it, then `done`; teaching the
 *   other class later sets it back to `pending` with the new class, so each
 *   change of class reaches rspamd exactly once.
 * - An index on contact_entries (kind, value): the Screener's reputation asks
 *   whether anyone on the server allows a sender or its domain.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function spamMigration(dialect: Dialect): Migration {
  const pg = dialect === 'postgres';
  const idType = pg ? ('serial' as const) : ('integer' as const);
  const time = pg ? ('bigint' as const) : ('integer' as const);
  const blob = pg ? ('bytea' as const) : ('blob' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // The same UIDVALIDITY rule as a new account (user-repository.ts): seconds since the epoch.
      const uidValidity = Math.max(1, Math.floor(Date.now() / 1000) % 0x1_0000_0000);
      await sql`INSERT INTO mailboxes (user_id, name, uid_validity, uid_next)
                SELECT id, 'Junk', ${sql.lit(uidValidity)}, 1 FROM users u
                WHERE NOT EXISTS (SELECT 1 FROM mailboxes m WHERE m.user_id = u.id AND m.name = 'Junk')`.execute(db);

      await db.schema.alterTable('contact_requests').addColumn('spam_score', pg ? 'double precision' : 'real').execute();
      await db.schema.alterTable('contact_requests').addColumn('likely_spam', 'integer', (c) => c.notNull().defaultTo(0)).execute();

      await db.schema
        .createTable('spam_learning')
        .addColumn('id', idType, (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('message_id', 'integer', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('raw', blob, (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', time, (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('outcome', 'text')
        .addColumn('created_at', time, (c) => c.notNull())
        .addColumn('done_at', time)
        .addUniqueConstraint('spam_learning_user_message', ['user_id', 'message_id'])
        .execute();
      // The Screener's "is this sender anyone's contact here" lookup is across users.
      await db.schema.createIndex('contact_entries_value').on('contact_entries').columns(['kind', 'value']).execute();
      await db.schema.createIndex('spam_learning_due').on('spam_learning').columns(['state', 'next_attempt_at']).execute();
    },
  };
}
