/**
 * Learning for the spam filter as work in the store (migration 0005): rows
 * are written in the same transaction as the move or decision that teaches
 * (message-repository.ts `move`), and a worker (spam/learn-worker.ts) sends
 * them to rspamd with retries. One row per (user, message): teaching the
 * same class again changes nothing; teaching the other class sets the row
 * back to pending, so each change of class is sent once.
 */
import type { Selectable, Transaction } from 'kysely';
import type { LearnKind, SpamLearnItem, SpamLearningRepository } from './types.ts';
import type { Database, SpamLearningTable } from './schema.ts';
import { num, toDate, type Db } from './db-util.ts';

/** Queues learning for these messages (of one user), copying each message's stored octets. */
export async function queueLearning(tx: Transaction<Database>, userId: number, items: Array<{ messageId: number; kind: LearnKind }>, at: Date): Promise<void> {
  for (const item of items) {
    const existing = await tx
      .selectFrom('spam_learning')
      .select(['id', 'kind', 'state'])
      .where('user_id', '=', userId)
      .where('message_id', '=', item.messageId)
      .executeTakeFirst();
    if (existing) {
      if (existing.kind === item.kind) continue; // pending or done with this class already: exactly once
      await tx
        .updateTable('spam_learning')
        .set({ kind: item.kind, state: 'pending', attempts: 0, next_attempt_at: at.getTime(), last_error: null, outcome: null, done_at: null })
        .where('id', '=', existing.id)
        .execute();
      continue;
    }
    const body = await tx
      .selectFrom('messages as m')
      .innerJoin('message_bodies as b', 'b.id', 'm.body_id')
      .select('b.raw')
      .where('m.user_id', '=', userId)
      .where('m.id', '=', item.messageId)
      .executeTakeFirst();
    if (!body) continue;
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

export class KyselySpamLearningRepository implements SpamLearningRepository {
  constructor(private readonly s: Db) {}

  async due(now: Date, limit: number): Promise<SpamLearnItem[]> {
    const rows = await this.s.db
      .selectFrom('spam_learning')
      .selectAll()
      .where('state', '=', 'pending')
      .where('next_attempt_at', '<=', now.getTime())
      .orderBy('next_attempt_at')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map(toItem);
  }

  async list(options: { userId?: number } = {}): Promise<SpamLearnItem[]> {
    let q = this.s.db.selectFrom('spam_learning').selectAll();
    if (options.userId !== undefined) q = q.where('user_id', '=', options.userId);
    return (await q.orderBy('id').execute()).map(toItem);
  }

  /** Conditional on the row still asking for this class: a class change meanwhile keeps it pending. */
  async done(id: number, kind: LearnKind, outcome: string, at: Date): Promise<void> {
    await this.s.db
      .updateTable('spam_learning')
      .set({ state: 'done', outcome, done_at: at.getTime(), last_error: null })
      .where('id', '=', id)
      .where('kind', '=', kind)
      .where('state', '=', 'pending')
      .execute();
  }

  async retry(id: number, kind: LearnKind, change: { attempts: number; nextAttemptAt: Date; error: string; failed: boolean }): Promise<void> {
    await this.s.db
      .updateTable('spam_learning')
      .set({
        attempts: change.attempts,
        next_attempt_at: change.nextAttemptAt.getTime(),
        last_error: change.error,
        ...(change.failed ? { state: 'failed' as const } : {}),
      })
      .where('id', '=', id)
      .where('kind', '=', kind)
      .where('state', '=', 'pending')
      .execute();
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
