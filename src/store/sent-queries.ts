/**
 * The reads of one account's sent mail (services/sent.ts: `twoway sent`,
 * `GET /api/sent`, the web Sent page), on the queue's messages and the TWM
 * notices, by `sender_key` (migration 0028, core/address.ts senderKey): each an
 * equality on the leading column of an index whose next column is the
 * creation time, so a page reads the account's newest rows in the index's
 * order and stops at its limit, whatever else the store holds. Builders
 * apart from the repositories so that sent-plan.test.ts reads their plans.
 */
import { sql, type Kysely } from 'kysely';
import { entries } from './queue-prepared.ts';
import { NOTICE_COLUMNS } from './prepared-twm-delivery.ts';
import type { Database, Dialect } from './schema.ts';

/**
 * The queue entries of the account's newest `limit` messages (all of them without a limit), newest
 * message first, each message's recipients in insertion order. The limit counts messages, not
 * recipients: it applies in a subquery on `queue_messages_sender_key` (sender_key, created_at,
 * message_id), read backwards, and the entries are then joined by message.
 */
export function queueSentByKey(db: Kysely<Database>, key: string, limit: number | undefined) {
  const q = entries(db);
  const own =
    limit === undefined
      ? q.where('q.sender_key', '=', key)
      : q.where('q.id', 'in', (eb) =>
          eb.selectFrom('queue_messages').select('id').where('sender_key', '=', key).orderBy('created_at', 'desc').orderBy('message_id', 'desc').limit(limit),
        );
  return own.orderBy('q.created_at', 'desc').orderBy('q.message_id', 'desc').orderBy('r.id');
}

/** The queue entries of these messages (by the unique message_id) that are the account's; in no particular order. */
export function queueSentOfMessages(db: Kysely<Database>, key: string, messageIds: readonly string[]) {
  return entries(db)
    .where('q.message_id', 'in', [...messageIds])
    .where('q.sender_key', '=', key);
}

/**
 * One page of the account's notices, newest first, after the notice `before` (created_at, id) of
 * the previous page: what picks the newest messages when a message may have several notices (one
 * per recipient domain, made when that domain's delivery starts).
 */
export function twmSentPage(db: Kysely<Database>, key: string, size: number, before: { createdAt: number; id: string } | undefined) {
  let q = db.selectFrom('twm_out_notices').select(['id', 'message_id', 'created_at']).where('sender_key', '=', key);
  // A row value, which both planners take as a range on the index (created_at, id) after the key.
  if (before) q = q.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(before.createdAt, before.id)));
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(size);
}

/** Every notice of the account, newest first. */
export function twmSentNotices(db: Kysely<Database>, key: string) {
  return db.selectFrom('twm_out_notices').select(NOTICE_COLUMNS).where('sender_key', '=', key).orderBy('created_at', 'desc').orderBy('id', 'desc');
}

/**
 * The notices of these messages that are the account's, in no particular order, found by
 * `twm_out_notices_message` (message_id, domain). On SQLite a unary plus keeps `sender_key` out
 * of the index choice: without statistics its planner took the equality on the key and read
 * every notice of the account to find a few messages. PostgreSQL's planner weighs both itself.
 */
export function twmSentOfMessages(db: Kysely<Database>, dialect: Dialect, key: string, messageIds: readonly string[]) {
  const sender = dialect === 'sqlite' ? sql<string>`+${sql.ref('sender_key')}` : sql.ref<string>('sender_key');
  return db
    .selectFrom('twm_out_notices')
    .select(NOTICE_COLUMNS)
    .where('message_id', 'in', [...messageIds])
    .where(sender, '=', key);
}

/** The items of the first `limit` distinct messages (all without a limit), in the given order. */
export function firstMessages<T extends { messageId: string }>(items: readonly T[], limit: number | undefined): T[] {
  if (limit === undefined) return [...items];
  const kept = new Set<string>();
  return items.filter((item) => {
    if (!kept.has(item.messageId) && kept.size < limit) kept.add(item.messageId);
    return kept.has(item.messageId);
  });
}
