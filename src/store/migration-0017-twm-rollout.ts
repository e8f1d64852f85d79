/**
 * 0017_twm_rollout: the TWM testing mode (docs/protocol.md 6.6).
 *
 * `twm_copies`: which channel's copy of a message a user got first, keyed by
 * (user, authenticated sender domain, Message-ID). A testing-mode sender
 * sends every message twice (TWM and SMTP); the recipient keeps the first
 * copy and discards the second. The unique key decides between two copies
 * arriving at once: one insert wins. Rows older than the longest notice
 * lifetime (30 days) pair nothing any more and are pruned.
 *
 * `twm_report_counts`: the failure reports of 6.6, one counter per
 * (reporting domain, UTC day, result type); `success` counts the
 * exchanges that went through. Counters only: nothing of a request is kept.
 * The daily report job reads a finished day's rows, mails the report and
 * deletes them.
 */
import type { Kysely, Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function twmRolloutMigration(dialect: Dialect): Migration {
  const time = dialect === 'postgres' ? ('bigint' as const) : ('integer' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('twm_copies')
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('sender_domain', 'text', (c) => c.notNull())
        .addColumn('message_id', 'text', (c) => c.notNull())
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('created_at', time, (c) => c.notNull())
        .addPrimaryKeyConstraint('twm_copies_pk', ['user_id', 'sender_domain', 'message_id'])
        .execute();
      await db.schema.createIndex('twm_copies_created').on('twm_copies').column('created_at').execute();
      await db.schema
        .createTable('twm_report_counts')
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('day', 'text', (c) => c.notNull())
        .addColumn('result_type', 'text', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('twm_report_counts_pk', ['domain', 'day', 'result_type'])
        .execute();
      await db.schema.createIndex('twm_report_counts_day').on('twm_report_counts').column('day').execute();
    },
  };
}
