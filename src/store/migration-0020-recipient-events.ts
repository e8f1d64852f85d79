/**
 * 0020_recipient_events: the history of each sent message's recipient, for
 * the Sent page's timeline (services/sent.ts): one row per state a queue
 * recipient (`queue_recipient_id`: scheduled, deferred with its error,
 * delivered with the reply, failed with the DSN text) or a Two-Way Mail
 * recipient (`twm_notice_id` and `recipient`: queued, accepted, pending,
 * fetched, delivered, declined, expired, failed, with the reason) entered,
 * written by the queue and TWM repositories in the transaction that changes
 * the state (recipient-events.ts). Rows go with their recipient or notice
 * (ON DELETE CASCADE), so the queue's and notices' pruning prunes them.
 * Recipients that exist already get one row: their current state.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';
// A cycle with migrations.ts, as in migration-0003-twm.ts: harmless, `types` is only called later.
import { types } from './migrations.ts';

export function recipientEventsMigration(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('recipient_events')
        .addColumn('id', t.idType, t.idBuild)
        .addColumn('queue_recipient_id', 'integer', (c) => c.references('queue_recipients.id').onDelete('cascade'))
        .addColumn('twm_notice_id', 'text', (c) => c.references('twm_out_notices.id').onDelete('cascade'))
        .addColumn('recipient', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('detail', 'text')
        .addColumn('at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('recipient_events_queue').on('recipient_events').columns(['queue_recipient_id', 'id']).execute();
      await db.schema.createIndex('recipient_events_twm').on('recipient_events').columns(['twm_notice_id', 'recipient', 'id']).execute();
      await sql`insert into recipient_events (queue_recipient_id, recipient, state, detail, at)
        select r.id, r.recipient, r.state, case when r.state = 'delivered' then r.reply else r.last_error end, coalesce(r.done_at, q.created_at)
        from queue_recipients r join queue_messages q on q.id = r.queue_message`.execute(db);
      await sql`insert into recipient_events (twm_notice_id, recipient, state, detail, at)
        select notice_id, recipient, state, reason, updated_at from twm_out_recipients`.execute(db);
    },
  };
}
