/**
 * Testing mode's first-copy claims (docs/protocol.md 6.6; migration 0017):
 * which channel's copy of a message each user got first.
 *
 * Design note: no commit of its own on stable storage. A claim is followed,
 * on the same ingest path, by the durable commit of the message it let
 * through (message-repository.ts), and a later commit on stable storage
 * carries every earlier one with it (one WAL on SQLite, one WAL stream on
 * PostgreSQL). A claim that lets nothing through writes nothing (the other
 * channel's row is there). So the claim commits without its own fsync
 * (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off): it was
 * one fsync per TWM message on the event loop, most of the recipient's time
 * per message in bench/twm-delivery.ts. A crash before the message's commit
 * may keep a claim for a message not stored: the refetch of the same channel
 * is still first (the claim is that channel's).
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { unsyncedWrite } from './lease-repository.ts';
import { chunks, type Db } from './db-util.ts';
import { preparedOf } from './prepared.ts';

/** Users per statement: 5 values each, under the bound-parameter limits of both dialects. */
const PER_STATEMENT = 500;

export async function claimFirstCopies(s: Db, userIds: number[], senderDomain: string, messageId: string, channel: 'twm' | 'smtp', at: Date): Promise<number[]> {
  if (userIds.length === 0) return [];
  const domain = senderDomain.toLowerCase();
  // In one order: two claims at once on PostgreSQL lock the rows alike and cannot deadlock.
  const ids = [...new Set(userIds)].sort((a, b) => a - b);
  const prepared = preparedOf(s.dialect);
  const claim = async (db: Kysely<Database>): Promise<Set<number>> => {
    // Prepared (prepared.ts): one claim per TWM and SMTP message stored in testing mode; the
    // statements' build and compile was most of the claim's CPU. Usually one user: one shape.
    for (const part of chunks(ids, PER_STATEMENT)) {
      // Whichever copy inserts a user's row first is that user's first copy, even when both arrive at once.
      await prepared.run(db, `twmCopies.insert:${part.length}`, [domain, messageId, channel, at.getTime(), ...part], (v) =>
        db
          .insertInto('twm_copies')
          .values(part.map((_, i) => ({ user_id: v<number>(4 + i), sender_domain: v<string>(0), message_id: v<string>(1), channel: v<'twm' | 'smtp'>(2), created_at: v<number>(3) })))
          .onConflict((oc) => oc.columns(['user_id', 'sender_domain', 'message_id']).doNothing()),
      );
    }
    const first = new Set<number>();
    for (const part of chunks(ids, PER_STATEMENT)) {
      const rows = await prepared.run(db, `twmCopies.select:${part.length}`, [domain, messageId, ...part], (v) =>
        db
          .selectFrom('twm_copies')
          .select(['user_id', 'channel'])
          .where(
            'user_id',
            'in',
            part.map((_, i) => v<number>(2 + i)),
          )
          .where('sender_domain', '=', v<string>(0))
          .where('message_id', '=', v<string>(1)),
      );
      for (const r of rows) if (r.channel === channel) first.add(r.user_id);
    }
    return first;
  };
  const first =
    s.dialect === 'postgres'
      ? await s.db.transaction().execute(async (tx) => {
          await sql`SET LOCAL synchronous_commit = off`.execute(tx);
          return claim(tx);
        })
      : await unsyncedWrite(s, claim);
  return userIds.filter((id) => first.has(id));
}
