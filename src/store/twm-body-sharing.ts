/**
 * The sender's one copy of a TWM message (migration 0022): a notice made
 * from a queue message (`body_in_queue` = 1) serves the queue's octets
 * (`queue_messages.raw` of its `message_id`) instead of keeping its own.
 *
 * The rule that keeps them: the queue's body is dropped only when both
 * sides are done with it, by whichever side finishes last, in one statement
 * each (so a concurrent update cannot split the check from the drop):
 * - the queue side (queue-repository.ts: the worker's last final outcome,
 *   prune, remove):
 *   no recipient of the message is scheduled or deferred, and no notice
 *   holding the body is open (`holdsNoNoticeBody`);
 * - the notice side (twm-outbound-repository.ts, when a notice's body goes:
 *   its last recipient final, or its expiry): the same two conditions,
 *   checked after that notice's own `body_removed_at` is set
 *   (`dropQueueBodyIfFree`).
 * A notice is created while its recipients' queue entries are still
 * scheduled or deferred (the queue worker holds them during the delivery),
 * so the queue's body cannot go between the check in create() and the
 * notice's insert. On PostgreSQL the two sides' last writes can run at once,
 * each not yet seeing the other's commit: then neither drops the body, and
 * it stays until prune() deletes the message (as a removal lost to a power
 * failure does); never the other way round, since each drop needs both
 * conditions in its own statement.
 */
import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import { preparedOf } from './prepared.ts';
import type { Database, Dialect } from './schema.ts';

/** `not exists` an open notice of this queue message that serves the queue's body. */
export function holdsNoNoticeBody(eb: ExpressionBuilder<Database, 'queue_messages'>) {
  return eb.not(
    eb.exists(
      eb
        .selectFrom('twm_out_notices as held')
        .select('held.id')
        .whereRef('held.message_id', '=', 'queue_messages.message_id')
        // A literal, not a parameter: the prepared statements that use this take values only in slots.
        .where('held.body_in_queue', '=', sql.lit(1))
        .where('held.body_removed_at', 'is', null),
    ),
  );
}

/**
 * Whether the queue holds `raw` as the body of `messageId`, octet for octet (a new notice may then
 * serve it from there; a caller that changed the octets gets a copy of its own).
 */
export async function queueHoldsBody(db: Kysely<Database>, dialect: Dialect, messageId: string, raw: Buffer): Promise<boolean> {
  const rows = await preparedOf(dialect).run(db, 'twmOut.queueHoldsBody', [messageId, raw], (v) =>
    db.selectFrom('queue_messages').select('id').where('message_id', '=', v<string>(0)).where('body_removed_at', 'is', null).where('raw', '=', v<Buffer>(1)),
  );
  return rows.length > 0;
}

/**
 * Empties the queue's body of `messageId` once nothing needs it any more: no
 * recipient scheduled or deferred, no notice serving it still open. Run by
 * both sides (the rule above): the queue's once the message's recipients are
 * final (queue-repository.ts, the last outcome's `dropBodyOf`), a notice's after that
 * notice's body was dropped. True if this call emptied it.
 */
export async function dropQueueBodyIfFree(db: Kysely<Database>, dialect: Dialect, messageId: string, at: number): Promise<boolean> {
  const dropped = await preparedOf(dialect).run(db, 'queue.dropBodyIfFree', [Buffer.alloc(0), at, messageId, 'scheduled', 'deferred'], (v) =>
    db
      .updateTable('queue_messages')
      .set({ raw: v<Buffer>(0), body_removed_at: v<number>(1) })
      .where('message_id', '=', v<string>(2))
      .where('body_removed_at', 'is', null)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('queue_recipients')
              .select('queue_recipients.id')
              .whereRef('queue_recipients.queue_message', '=', 'queue_messages.id')
              .where('queue_recipients.state', 'in', [v<'scheduled'>(3), v<'deferred'>(4)]),
          ),
        ),
      )
      .where(holdsNoNoticeBody)
      .returning('id'),
  );
  return dropped.length > 0;
}
