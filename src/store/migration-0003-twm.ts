/**
 * Migration 0003: storage for Two-Way Mail (docs/protocol.md sections 5.5, 7
 * and 8) and the two per-user / per-request columns it needs.
 *
 * Sender side: one notice per (queue message, recipient domain), holding the
 * notice's exact octets and the message body (emptied once no recipient can
 * fetch it any more), and one state row per recipient.
 * Recipient side: the notice as received, keyed by (sender domain, id) for
 * the id rules, and one state row per (notice, rcpt). (Signature nonces are
 * kept in memory: services/twm-nonces.ts.)
 *
 * Foreign keys cascade so that pruning a notice removes its rows.
 */
import type { Kysely, Migration } from 'kysely';
import type { Dialect } from './schema.ts';
// A cycle with migrations.ts, which imports this file: harmless, `types` is a
// function declaration only called when a migration runs.
import { types } from './migrations.ts';

export function twm(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('users').addColumn('reveal_declined', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('contact_requests').addColumn('intro', 'text').execute();
      // A fetched TWM message remembers its notice, so a refetch after a crash stores nothing twice.
      await db.schema.alterTable('messages').addColumn('twm_key', 'text').execute();
      await db.schema.createIndex('messages_twm_key').on('messages').columns(['user_id', 'twm_key']).execute();

      await db.schema
        .createTable('twm_out_notices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('message_id', 'text', (c) => c.notNull())
        .addColumn('sender', 'text', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('content', t.blob, (c) => c.notNull())
        .addColumn('subject', 'text')
        .addColumn('message_id_header', 'text')
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addColumn('expires_at', t.time, (c) => c.notNull())
        .addColumn('body', t.blob, (c) => c.notNull())
        .addColumn('body_removed_at', t.time)
        .addColumn('expiry_reported_at', t.time)
        .execute();
      // A retried queue entry finds the notice that lists its recipient (a message may have several per domain).
      await db.schema.createIndex('twm_out_notices_message').on('twm_out_notices').columns(['message_id', 'domain']).execute();
      await db.schema.createIndex('twm_out_notices_sender').on('twm_out_notices').columns(['sender', 'created_at']).execute();
      await db.schema.createIndex('twm_out_notices_expires').on('twm_out_notices').column('expires_at').execute();

      await db.schema
        .createTable('twm_out_recipients')
        .addColumn('notice_id', 'text', (c) => c.notNull().references('twm_out_notices.id').onDelete('cascade'))
        .addColumn('recipient', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('updated_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('twm_out_recipients_pk', ['notice_id', 'recipient'])
        .execute();
      await db.schema.createIndex('twm_out_recipients_state').on('twm_out_recipients').column('state').execute();

      await db.schema
        .createTable('twm_in_notices')
        .addColumn('sender_domain', 'text', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('content_sha256', 'text', (c) => c.notNull())
        .addColumn('from_addr', 'text', (c) => c.notNull())
        .addColumn('to_addrs', 'text', (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addColumn('expires_at', t.time, (c) => c.notNull())
        .addColumn('intro', 'text')
        .addColumn('purpose', 'text')
        .addColumn('list_id', 'text')
        .addColumn('received_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('twm_in_notices_pk', ['sender_domain', 'id'])
        .execute();
      await db.schema.createIndex('twm_in_notices_expires').on('twm_in_notices').column('expires_at').execute();

      await db.schema
        .createTable('twm_in_recipients')
        .addColumn('sender_domain', 'text', (c) => c.notNull())
        .addColumn('notice_id', 'text', (c) => c.notNull())
        .addColumn('rcpt', 'text', (c) => c.notNull())
        .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('cascade'))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('receipt', 'text')
        .addColumn('receipt_error', 'text')
        .addColumn('next_attempt_at', t.time)
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_error', 'text')
        .addColumn('updated_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('twm_in_recipients_pk', ['sender_domain', 'notice_id', 'rcpt'])
        .addForeignKeyConstraint('twm_in_recipients_notice', ['sender_domain', 'notice_id'], 'twm_in_notices', ['sender_domain', 'id'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();
      // due(): the fetch and receipt workers' scan.
      await db.schema.createIndex('twm_in_recipients_due').on('twm_in_recipients').columns(['state', 'next_attempt_at']).execute();
      // forUser(): approvals and denials in the Screener.
      await db.schema.createIndex('twm_in_recipients_user').on('twm_in_recipients').columns(['user_id', 'state']).execute();
    },
  };
}
