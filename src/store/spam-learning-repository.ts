/**
 * Learning for the spam filter as work in the store (migration 0005): rows
 * are written in the same transaction as the move or decision that teaches
 * (message-repository.ts `move`), and a worker (spam/learn-worker.ts) sends
 * them to rspamd with retries. One row per (user, message): teaching the
 * same class again changes nothing; teaching the other class sets the row
 * back to pending, so each change of class is sent once. Rows are claimed
 * with leases (migration 0027, spam-learning-claims.ts). A row keeps its
 * copy of the message only until rspamd has it or it failed for good, and
 * goes once it is finished and its message is gone (pruneGone, an hourly sweep).
 */
import { sql, type Selectable, type Transaction } from 'kysely';
import type { LearnKind, LearnWrite, Lease, SpamLearnItem, SpamLearningRepository } from './types.ts';
import type { Database, SpamLearningTable } from './schema.ts';
import { num, toDate, type Db } from './db-util.ts';
import { claimSpamLearning, finishSpamLearning } from './spam-learning-claims.ts';
import { releaseLeasesById, renewLeasesById } from './queue-claims.ts';

/**
 * Queues learning for these messages (of one user), copying each message's
 * stored octets. A row that rspamd has (done) or that failed for good holds
 * no copy (`RELEASED`); a change of class takes one from the message again.
 * A message that is gone, or empty, teaches nothing: no row is queued or
 * re-queued for it, so a pending row always has a copy to send.
 */
export async function queueLearning(tx: Transaction<Database>, userId: number, items: Array<{ messageId: number; kind: LearnKind }>, at: Date): Promise<void> {
  for (const item of items) {
    const existing = await tx
      .selectFrom('spam_learning')
      .select(['id', 'kind'])
      .where('user_id', '=', userId)
      .where('message_id', '=', item.messageId)
      .executeTakeFirst();
    if (existing?.kind === item.kind) continue; // pending or done with this class already: exactly once
    const body = await tx
      .selectFrom('messages as m')
      .innerJoin('message_bodies as b', 'b.id', 'm.body_id')
      .select('b.raw')
      .where('m.user_id', '=', userId)
      .where('m.id', '=', item.messageId)
      .executeTakeFirst();
    if (!body || body.raw.length === 0) continue;
    if (existing) {
      // The lease stays (spam-learning-claims.ts): nobody else sends the new class while its holder may still be sending the old.
      await tx
        .updateTable('spam_learning')
        .set({ kind: item.kind, raw: body.raw, state: 'pending', attempts: 0, next_attempt_at: at.getTime(), last_error: null, outcome: null, done_at: null })
        .where('id', '=', existing.id)
        .execute();
      continue;
    }
    await tx
      .insertInto('spam_learning')
      .values({
        user_id: userId,
        message_id: item.messageId,
        kind: item.kind,
        raw: body.raw,
        state: 'pending',
        next_attempt_at: at.getTime(),
        created_at: at.getTime(),
      })
      .execute();
  }
}

/**
 * What a row's `raw` holds once rspamd has the message (done) or the row
 * failed for good: the copy is released in the write that records the
 * outcome (migration 0029 did the same for the rows before it). The row
 * stays: it is what makes each change of class reach rspamd once.
 */
const RELEASED = Buffer.alloc(0);

/** Rows deleted per statement by pruneGone. */
const PRUNE_SLICE = 5000;

export class KyselySpamLearningRepository implements SpamLearningRepository {
  constructor(private readonly s: Db) {}

  async due(now: Date, limit: number): Promise<SpamLearnItem[]> {
    const rows = await this.s.db
      .selectFrom('spam_learning')
      .selectAll()
      // A literal: the partial index spam_learning_due holds the pending rows only.
      .where('state', '=', sql.lit<'pending'>('pending'))
      .where('next_attempt_at', '<=', now.getTime())
      .orderBy('next_attempt_at')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map(toItem);
  }

  async claim(now: Date, limit: number, lease: Lease): Promise<SpamLearnItem[]> {
    return (await claimSpamLearning(this.s, now, limit, lease)).map(toItem);
  }

  renew(ids: readonly number[], lease: Lease): Promise<number[]> {
    return renewLeasesById(this.s, 'spam_learning', ids, lease);
  }

  release(ids: readonly number[], owner: string): Promise<void> {
    return releaseLeasesById(this.s, 'spam_learning', ids, owner);
  }

  async pruneGone(): Promise<number> {
    let total = 0;
    // In slices, so that one sweep over a large table never holds the write lock for long.
    for (;;) {
      const res = await this.s.db
        .deleteFrom('spam_learning')
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('spam_learning as l')
            .select('l.id')
            .where('l.state', 'in', ['done', 'failed'])
            .where(({ not, exists, selectFrom }) =>
              not(exists(selectFrom('messages as m').select('m.id').whereRef('m.id', '=', 'l.message_id').whereRef('m.user_id', '=', 'l.user_id'))),
            )
            .limit(PRUNE_SLICE),
        )
        .executeTakeFirst();
      const n = num(res.numDeletedRows);
      total += n;
      if (n < PRUNE_SLICE) return total;
    }
  }

  async list(options: { userId?: number } = {}): Promise<SpamLearnItem[]> {
    let q = this.s.db.selectFrom('spam_learning').selectAll();
    if (options.userId !== undefined) q = q.where('user_id', '=', options.userId);
    return (await q.orderBy('id').execute()).map(toItem);
  }

  /** Conditional on the row still asking for this class: a class change meanwhile keeps it pending. */
  done(id: number, kind: LearnKind, owner: string, outcome: string, at: Date): Promise<LearnWrite> {
    return finishSpamLearning(this.s, id, kind, owner, { state: 'done', outcome, done_at: at.getTime(), last_error: null, raw: RELEASED });
  }

  retry(id: number, kind: LearnKind, owner: string, change: { attempts: number; nextAttemptAt: Date; error: string; failed: boolean }): Promise<LearnWrite> {
    return finishSpamLearning(this.s, id, kind, owner, {
      attempts: change.attempts,
      next_attempt_at: change.nextAttemptAt.getTime(),
      last_error: change.error,
      // A retry keeps the copy; failing for good releases it.
      ...(change.failed ? { state: 'failed' as const, raw: RELEASED } : {}),
    });
  }

  async queue(userId: number, items: Array<{ messageId: number; kind: LearnKind }>, at: Date): Promise<void> {
    await this.s.db.transaction().execute((tx) => queueLearning(tx, userId, items, at));
  }
}

function toItem(row: Selectable<SpamLearningTable>): SpamLearnItem {
  return {
    id: row.id,
    userId: row.user_id,
    messageId: num(row.message_id),
    kind: row.kind,
    raw: Buffer.from(row.raw),
    state: row.state,
    attempts: num(row.attempts),
    nextAttemptAt: toDate(row.next_attempt_at),
    lastError: row.last_error,
    outcome: row.outcome,
  };
}
