/**
 * 0009_imap: what the IMAP server needs on top of mailboxes and messages.
 *
 * - `mailboxes.highest_modseq` (RFC 7162): raised by one per change to the
 *   mailbox; `messages.modseq`: the mailbox's modseq of the message's last
 *   change (arrival or flags). Existing rows start at 1.
 * - `mailboxes.subscribed` (0/1): LSUB and LIST (SUBSCRIBED); every mailbox
 *   starts subscribed.
 * - `messages.structure`: ENVELOPE and BODYSTRUCTURE as JSON
 *   (core/mime-structure.ts), computed when the message is stored; null for
 *   messages stored before this migration until they are first fetched.
 * - `imap_expunges`: the UIDs that left a mailbox and at which modseq, for
 *   QRESYNC's VANISHED and for other sessions to catch up.
 * - Every user gets `Drafts` besides INBOX, Screener, Junk, Sent, Trash (and
 *   `Junk` where 0007_spam left none: a mailbox that exists is skipped).
 *   Existing messages already have their UIDs (assigned at delivery).
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function imapMigration(dialect: Dialect): Migration {
  const pg = dialect === 'postgres';
  const idType = pg ? ('serial' as const) : ('integer' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // For a user without mailbox rows (only hand-made databases): the time, as at account creation.
      const uidValidity = Math.max(1, Math.floor(Date.now() / 1000) % 0x1_0000_0000);
      await db.schema.alterTable('mailboxes').addColumn('highest_modseq', 'bigint', (c) => c.notNull().defaultTo(1)).execute();
      await db.schema.alterTable('mailboxes').addColumn('subscribed', 'integer', (c) => c.notNull().defaultTo(1)).execute();
      await db.schema.alterTable('messages').addColumn('modseq', 'bigint', (c) => c.notNull().defaultTo(1)).execute();
      await db.schema.alterTable('messages').addColumn('structure', 'text').execute();
      await db.schema.createIndex('messages_mailbox_modseq').on('messages').columns(['mailbox_id', 'modseq']).execute();
      await db.schema
        .createTable('imap_expunges')
        .addColumn('id', idType, (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('mailbox_id', 'integer', (c) => c.notNull().references('mailboxes.id').onDelete('cascade'))
        .addColumn('uid', 'integer', (c) => c.notNull())
        .addColumn('modseq', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('imap_expunges_mailbox').on('imap_expunges').columns(['mailbox_id', 'modseq']).execute();
      for (const name of ['Drafts', 'Junk']) {
        await sql`INSERT INTO mailboxes (user_id, name, uid_validity, uid_next)
                  SELECT u.id, ${name}, COALESCE((SELECT MIN(b.uid_validity) FROM mailboxes b WHERE b.user_id = u.id), ${sql.lit(uidValidity)}), 1 FROM users u
                  WHERE NOT EXISTS (SELECT 1 FROM mailboxes x WHERE x.user_id = u.id AND x.name = ${name})`.execute(db);
      }
    },
  };
}
