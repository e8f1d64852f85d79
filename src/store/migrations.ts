/**
 * Schema migrations, in code so that nothing needs to exist on disk at
 * runtime. One definition serves both dialects; the few type differences are
 * chosen by `types(dialect)`:
 * - ids: `integer primary key autoincrement` on SQLite, `serial` on
 *   PostgreSQL (int4, so ids come back as JS numbers, not strings);
 * - timestamps: integer milliseconds, `bigint` on PostgreSQL (int8 is parsed
 *   to a number by the pool's type parser, see open.ts);
 * - blobs: `blob` / `bytea`; booleans: integer 0/1; flags: JSON text.
 *
 * Never edit a migration that has shipped: add a new one.
 */
import type { ColumnDefinitionBuilder, Kysely, Migration } from 'kysely';
import type { Dialect } from './schema.ts';
import { carddavMigration } from './migration-0004-carddav.ts';
import { twm } from './migration-0003-twm.ts';
import { spamMigration } from './migration-0007-spam.ts';
import { allowlistChangesMigration } from './migration-0005-allowlist-changes.ts';
import { appPasswordsMigration } from './migration-0006-app-passwords.ts';
import { webSessionsMigration } from './migration-0008-web-sessions.ts';
import { imapMigration } from './migration-0009-imap.ts';
import { leasesMigration } from './migration-0010-leases.ts';
import { requestDmarcMigration } from './migration-0011-request-dmarc.ts';
import { contactsPagingMigration } from './migration-0013-contacts-paging.ts';
import { twmPendingSenderMigration } from './migration-0018-twm-pending-sender.ts';
import { twmRolloutMigration } from './migration-0017-twm-rollout.ts';
import { imapWireMigration } from './migration-0019-imap-wire.ts';
import { recipientEventsMigration } from './migration-0020-recipient-events.ts';
import { requestRankMigration } from './migration-0021-request-rank.ts';
import { twmBodyInQueueMigration } from './migration-0022-twm-body-in-queue.ts';
import { twmLeanIndexesMigration } from './migration-0024-twm-lean-indexes.ts';
import { partialMessageIndexesMigration } from './migration-0025-partial-message-indexes.ts';
import { queueDueOrderMigration } from './migration-0026-queue-due-order.ts';
import { spamLearningLeasesMigration } from './migration-0027-spam-learning-leases.ts';
import { sentBySenderMigration } from './migration-0028-sent-by-sender.ts';
import { spamLearningReleaseMigration } from './migration-0029-spam-learning-release.ts';

export function types(dialect: Dialect) {
  const pg = dialect === 'postgres';
  return {
    /** The auto-increment primary key column, added with `.addColumn('id', t.idType, t.idBuild)`. */
    idType: pg ? ('serial' as const) : ('integer' as const),
    idBuild: (c: ColumnDefinitionBuilder) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()),
    time: pg ? ('bigint' as const) : ('integer' as const),
    blob: pg ? ('bytea' as const) : ('blob' as const),
  };
}

// The schema builder does not depend on the database's table types, so the
// migrations take `Kysely<unknown>` (kysely's own docs use `Kysely<any>`).
function initial(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('users')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('address', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('mode', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('app_passwords')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('app_passwords_user').on('app_passwords').column('user_id').execute();

      await db.schema
        .createTable('api_tokens')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('expires_at', t.time, (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('api_tokens_user').on('api_tokens').column('user_id').execute();

      await db.schema
        .createTable('mailboxes')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        // bigint: UIDVALIDITY is an unsigned 32-bit value, beyond int4's range.
        .addColumn('uid_validity', 'bigint', (c) => c.notNull())
        .addColumn('uid_next', 'integer', (c) => c.notNull())
        .addUniqueConstraint('mailboxes_user_name', ['user_id', 'name'])
        .execute();

      await db.schema
        .createTable('message_bodies')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('sha256', 'text', (c) => c.notNull().unique())
        .addColumn('raw', t.blob, (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('contact_requests')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('sender', 'text', (c) => c.notNull())
        .addColumn('auth_domain', 'text')
        .addColumn('first_seen', t.time, (c) => c.notNull())
        .addColumn('last_seen', t.time, (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addColumn('sample_subject', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addUniqueConstraint('contact_requests_user_sender', ['user_id', 'sender'])
        .execute();
      await db.schema.createIndex('contact_requests_status').on('contact_requests').columns(['user_id', 'status']).execute();

      await db.schema
        .createTable('messages')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('mailbox_id', 'integer', (c) => c.notNull().references('mailboxes.id').onDelete('cascade'))
        .addColumn('uid', 'integer', (c) => c.notNull())
        .addColumn('flags', 'text', (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('sender', 'text')
        .addColumn('from_addr', 'text')
        .addColumn('subject', 'text')
        .addColumn('received_at', t.time, (c) => c.notNull())
        .addColumn('first_contact', 'integer', (c) => c.notNull())
        // Forgetting a request must not lose the messages it held: the link goes, the message stays.
        .addColumn('request_id', 'integer', (c) => c.references('contact_requests.id').onDelete('set null'))
        // No cascade: a body is deleted only by the garbage collection in messages.remove().
        .addColumn('body_id', 'integer', (c) => c.notNull().references('message_bodies.id'))
        .addUniqueConstraint('messages_mailbox_uid', ['mailbox_id', 'uid'])
        .execute();
      await db.schema.createIndex('messages_user').on('messages').columns(['user_id', 'received_at']).execute();
      await db.schema.createIndex('messages_request').on('messages').column('request_id').execute();
      await db.schema.createIndex('messages_body').on('messages').column('body_id').execute();

      await db.schema
        .createTable('contacts')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('book', 'text', (c) => c.notNull())
        .addColumn('uid', 'text', (c) => c.notNull())
        .addColumn('vcard', 'text', (c) => c.notNull())
        .addColumn('etag', 'text', (c) => c.notNull())
        .addColumn('updated_at', t.time, (c) => c.notNull())
        .addUniqueConstraint('contacts_user_book_uid', ['user_id', 'book', 'uid'])
        .execute();

      await db.schema
        .createTable('contact_entries')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('contact_id', 'integer', (c) => c.notNull().references('contacts.id').onDelete('cascade'))
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .execute();
      // The policy lookup (contacts.match) is served by this index alone.
      await db.schema.createIndex('contact_entries_lookup').on('contact_entries').columns(['user_id', 'kind', 'value']).execute();
      // PostgreSQL does not index foreign keys itself; the cascade and the replace in put() need it.
      await db.schema.createIndex('contact_entries_contact').on('contact_entries').column('contact_id').execute();

      await db.schema
        .createTable('queue_messages')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('message_id', 'text', (c) => c.notNull().unique())
        .addColumn('sender', 'text', (c) => c.notNull())
        .addColumn('raw', t.blob, (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('queue_recipients')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('queue_message', 'integer', (c) => c.notNull().references('queue_messages.id').onDelete('cascade'))
        .addColumn('recipient', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('next_attempt_at', t.time)
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_error', 'text')
        .addColumn('reply', 'text')
        .addColumn('done_at', t.time)
        .execute();
      await db.schema.createIndex('queue_recipients_due').on('queue_recipients').columns(['state', 'next_attempt_at']).execute();
      await db.schema.createIndex('queue_recipients_message').on('queue_recipients').column('queue_message').execute();
    },
  };
}

/**
 * What the queue worker needs: the time of the one "delayed" DSN per
 * recipient, the time a finished message's body was dropped (the row stays
 * as history until pruned), and an index for pruning finished entries.
 */
function queueWorker(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // One column per statement: SQLite's ALTER TABLE adds one at a time.
      await db.schema.alterTable('queue_recipients').addColumn('warned_at', t.time).execute();
      await db.schema.alterTable('queue_messages').addColumn('body_removed_at', t.time).execute();
      await db.schema.createIndex('queue_recipients_done').on('queue_recipients').columns(['state', 'done_at']).execute();
    },
  };
}

/** All migrations by name; names sort in the order they must run. */
export function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_initial': initial(dialect),
    '0002_queue_worker': queueWorker(dialect),
    '0003_twm': twm(dialect),
    '0004_carddav': carddavMigration(dialect),
    '0005_allowlist_changes': allowlistChangesMigration(dialect),
    '0006_app_passwords': appPasswordsMigration(dialect),
    '0007_spam': spamMigration(dialect),
    '0008_web_sessions': webSessionsMigration(dialect),
    '0009_imap': imapMigration(dialect),
    '0010_leases': leasesMigration(dialect),
    '0011_request_dmarc': requestDmarcMigration(),
    '0013_contacts_paging': contactsPagingMigration(),
    '0017_twm_rollout': twmRolloutMigration(dialect),
    '0018_twm_pending_sender': twmPendingSenderMigration(),
    '0019_imap_wire': imapWireMigration(),
    '0020_recipient_events': recipientEventsMigration(dialect),
    '0021_request_rank': requestRankMigration(dialect),
    '0022_twm_body_in_queue': twmBodyInQueueMigration(),
    '0024_twm_lean_indexes': twmLeanIndexesMigration(),
    '0025_partial_message_indexes': partialMessageIndexesMigration(),
    '0026_queue_due_order': queueDueOrderMigration(),
    '0027_spam_learning_leases': spamLearningLeasesMigration(dialect),
    '0028_sent_by_sender': sentBySenderMigration(),
    '0029_spam_learning_release': spamLearningReleaseMigration(),
  };
}
