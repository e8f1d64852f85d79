/**
 * The outbound queue: the message stored once, its state kept per recipient.
 * Columns per state (the rest are null):
 *   scheduled: next_attempt_at
 *   deferred:  next_attempt_at, attempts, last_error, warned_at
 *   delivered: done_at, reply
 *   failed:    done_at, last_error
 * `attempts` and `warned_at` are kept across states so the history survives
 * the final outcome (and a rescheduled entry is not warned about twice).
 *
 * Lifecycle of the storage: once every recipient is final, the body (the
 * bulk of the bytes) is emptied and body_removed_at stamped: by the worker's
 * last final outcome, in its transaction (update's `dropBodyOf`); the small
 * rows stay for `twoway queue list` until
 * prune() deletes them. A TWM notice made from the message may serve the
 * same body (twm-body-sharing.ts): then the body stays until the notice is
 * done with it too, and whichever side finishes last drops it.
 */
import { senderKey } from '../core/address.ts';
import type { QueueEntry, QueueState } from '../core/types.ts';
import type { Lease, NewMessage, QueueRepository } from './types.ts';
import type { ChangeBus } from './change-bus.ts';
import { storeMessages } from './message-batch.ts';
import { claimQueueEntries, releaseLeasesById, renewLeasesById } from './queue-claims.ts';
import { StoreConflictError } from './types.ts';
import { sql, type Transaction } from 'kysely';
import { GroupCommit } from './group-commit.ts';
import { queueEvents } from './recipient-events.ts';
import { dropQueueBodyIfFree, holdsNoNoticeBody } from './twm-body-sharing.ts';
import { holdsConnectionOf } from './prepared.ts';
import { entries, entriesById, entriesOfMessage, insertQueueEvents, insertQueueMessage, insertQueueRecipients, queuedMessage, ROWS_PER_STATEMENT, updateQueueState, type EntryRow } from './queue-prepared.ts';
import type { Database, Dialect } from './schema.ts';
import { chunks, durableTransaction, isUniqueViolation, num, toDate, unique, type Db } from './db-util.ts';
import { firstMessages, queueSentByKey, queueSentOfMessages } from './sent-queries.ts';

/** Message ids per statement of listBySender: bound parameters well under both dialects' limits. */
const MESSAGES_PER_STATEMENT = 500;

function toState(row: EntryRow): QueueState {
  const required = (value: number | null): Date => {
    if (value === null) throw new Error(`Queue entry ${row.id} (${row.state}) has no timestamp`);
    return toDate(value);
  };
  switch (row.state) {
    case 'scheduled':
      return { state: 'scheduled', nextAttemptAt: required(row.next_attempt_at) };
    case 'deferred':
      return {
        state: 'deferred',
        nextAttemptAt: required(row.next_attempt_at),
        attempts: num(row.attempts),
        lastError: row.last_error ?? '',
        warnedAt: row.warned_at === null ? null : toDate(row.warned_at),
      };
    case 'delivered':
      return { state: 'delivered', deliveredAt: required(row.done_at), reply: row.reply ?? '' };
    case 'failed':
      return { state: 'failed', failedAt: required(row.done_at), lastError: row.last_error ?? '' };
    default:
      throw new Error(`Queue entry ${row.id} has an unknown state ${JSON.stringify(row.state)}`);
  }
}

function toEntry(row: EntryRow): QueueEntry {
  return {
    id: row.id,
    messageId: row.message_id,
    sender: row.sender,
    recipient: row.recipient,
    createdAt: toDate(row.created_at),
    status: toState(row),
  };
}

/** The columns a state writes; `attempts` only when the state carries it. */
function stateColumns(status: QueueState) {
  switch (status.state) {
    case 'scheduled':
      return { state: status.state, next_attempt_at: status.nextAttemptAt.getTime(), last_error: null, reply: null, done_at: null };
    case 'deferred':
      return {
        state: status.state,
        next_attempt_at: status.nextAttemptAt.getTime(),
        attempts: status.attempts,
        last_error: status.lastError,
        reply: null,
        done_at: null,
        // undefined leaves the column alone: a writer that knows nothing of warnings must not reset one.
        ...(status.warnedAt === undefined ? {} : { warned_at: status.warnedAt === null ? null : status.warnedAt.getTime() }),
      };
    case 'delivered':
      return { state: status.state, next_attempt_at: null, last_error: null, reply: status.reply, done_at: status.deliveredAt.getTime() };
    case 'failed':
      return { state: status.state, next_attempt_at: null, last_error: status.lastError, reply: null, done_at: status.failedAt.getTime() };
  }
}

interface EnqueueInput {
  messageId: string;
  sender: string;
  recipients: string[];
  raw: Buffer;
  at: Date;
  createdAt?: Date;
  /** A message stored in the same transaction (the sender's Sent copy). */
  copy?: NewMessage;
}

/** The event a state writes into the recipient's history: when, and the error or reply it carries. */
function eventOf(status: QueueState): { detail: string | null; at: Date } {
  switch (status.state) {
    case 'scheduled':
      return { detail: null, at: new Date() };
    case 'deferred':
      return { detail: status.lastError, at: new Date() };
    case 'delivered':
      return { detail: status.reply, at: status.deliveredAt };
    case 'failed':
      return { detail: status.lastError, at: status.failedAt };
  }
}

/**
 * One attempt's outcome; with an owner, only while its lease is still that
 * owner's (writing it ends the lease). A state written is recorded in the
 * recipient's history (recipient-events.ts) in the same transaction.
 */
async function updateState(tx: Transaction<Database>, dialect: Dialect, id: number, status: QueueState, owner: string | undefined): Promise<boolean> {
  const recipient = await updateQueueState(tx, dialect, id, stateColumns(status), owner);
  if (recipient === undefined) return false;
  const { detail, at } = eventOf(status);
  await insertQueueEvents(tx, dialect, [{ queueRecipientId: id, recipient, state: status.state, detail, at: at.getTime() }]);
  return true;
}

export class KyselyQueueRepository implements QueueRepository {
  /**
   * Submissions that arrive together are queued in one durable transaction
   * (group commit, as for delivered messages): one fsync for many 250s. A
   * failing batch is retried item by item, so a duplicate id fails alone.
   */
  private readonly committer: GroupCommit<EnqueueInput, null>;
  /**
   * The outcomes of delivery attempts that finish together share one durable
   * transaction too: each was a transaction and an fsync of its own, which
   * with 20 deliveries in flight was most of the sending server's store time
   * (bench/results.md, relay profile). An update that finds its lease gone
   * changes nothing and answers false; it fails no other.
   */
  private readonly updates: GroupCommit<{ id: number; status: QueueState; owner: string | undefined; dropBodyOf: string | undefined }, boolean>;

  constructor(
    private readonly s: Db,
    private readonly bus?: ChangeBus,
  ) {
    this.committer = new GroupCommit((items) =>
      durableTransaction(this.s, async (tx) => {
        // The batch's transaction has the connection to itself: its prepared statements (the copies' too) skip kysely's driver (prepared.ts).
        holdsConnectionOf(tx, this.s.db);
        for (const input of items) await insertQueued(tx, this.s.dialect, input);
        // The copies with their messages: one transaction and one fsync where there were two in a row.
        const copies = items.flatMap((input) => (input.copy ? [input.copy] : []));
        if (copies.length > 0) await storeMessages(tx, this.s.dialect, copies);
        return items.map(() => null);
      }),
    );
    this.updates = new GroupCommit((items) =>
      durableTransaction(this.s, async (tx) => {
        holdsConnectionOf(tx, this.s.db);
        const done: boolean[] = [];
        for (const u of items) {
          const written = await updateState(tx, this.s.dialect, u.id, u.status, u.owner);
          // The body goes with the message's last final outcome, in its commit: a statement, a
          // connection turn and a commit of its own per delivered message when it was a call of its own.
          const final = u.status.state === 'delivered' || u.status.state === 'failed';
          if (written && final && u.dropBodyOf !== undefined) await dropQueueBodyIfFree(tx, this.s.dialect, u.dropBodyOf, Date.now());
          done.push(written);
        }
        return done;
      }),
    );
  }

  /** Waits for queued submissions and outcomes to commit (Store.close calls it before closing the database). */
  async drain(): Promise<void> {
    await this.committer.drain();
    await this.updates.drain();
  }

  private select() {
    return entries(this.s.db);
  }

  /** Throws StoreConflictError if the messageId is already queued. */
  async enqueue(input: EnqueueInput): Promise<QueueEntry[]> {
    if (input.recipients.length === 0) return [];
    try {
      await this.committer.submit([input]);
      if (input.copy) this.bus?.emit(input.copy.userId);
      return (await entriesOfMessage(this.s.db, this.s.dialect, input.messageId)).map(toEntry);
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError(`The message ${input.messageId} is already queued`);
      throw err;
    }
  }

  async due(
    now: Date,
    limit: number,
    options: { excludeIds?: readonly number[]; excludeDomains?: readonly string[] } = {},
  ): Promise<QueueEntry[]> {
    let q = this.select()
      .where('r.state', 'in', ['scheduled', 'deferred'])
      .where('r.next_attempt_at', '<=', now.getTime());
    const ids = options.excludeIds ?? [];
    if (ids.length > 0) q = q.where('r.id', 'not in', [...ids]);
    for (const domain of options.excludeDomains ?? []) {
      // lower() and LIKE ... ESCAPE behave alike on both dialects for ASCII; a
      // non-ASCII domain that slips through is only a wasted row, not an error.
      const pattern = `%@${domain.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}`;
      q = q.where(sql<boolean>`lower(${sql.ref('r.recipient')}) not like ${pattern} escape '\\'`);
    }
    const rows = await q.orderBy('r.next_attempt_at').orderBy('r.id').limit(limit).execute();
    return rows.map(toEntry);
  }

  async get(id: number): Promise<QueueEntry | undefined> {
    const row = await this.select().where('r.id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toEntry(row);
  }

  async list(options: { state?: QueueState['state'] } = {}): Promise<QueueEntry[]> {
    let q = this.select();
    if (options.state !== undefined) q = q.where('r.state', '=', options.state);
    const rows = await q.orderBy('r.id').execute();
    return rows.map(toEntry);
  }

  async listBySender(sender: string, options: { limit?: number; messageIds?: readonly string[] } = {}): Promise<QueueEntry[]> {
    const key = senderKey(sender);
    const { limit, messageIds } = options;
    if (key === null || (limit !== undefined && limit <= 0) || messageIds?.length === 0) return [];
    if (messageIds === undefined) return (await queueSentByKey(this.s.db, key, limit).execute()).map(toEntry);
    const rows: EntryRow[] = [];
    for (const part of chunks(unique(messageIds), MESSAGES_PER_STATEMENT)) rows.push(...(await queueSentOfMessages(this.s.db, key, part).execute()));
    // The order queueSentByKey reads in: newest message first, then its recipients as inserted.
    rows.sort((a, b) => num(b.created_at) - num(a.created_at) || (a.message_id < b.message_id ? 1 : a.message_id > b.message_id ? -1 : 0) || a.id - b.id);
    return firstMessages(rows.map(toEntry), limit);
  }

  history(ids: readonly number[]) {
    return queueEvents(this.s, ids);
  }

  async raw(messageId: string): Promise<Buffer | undefined> {
    return (await this.message(messageId))?.raw;
  }

  async message(messageId: string): Promise<{ messageId: string; sender: string; raw: Buffer; createdAt: Date } | undefined> {
    const row = await queuedMessage(this.s.db, this.s.dialect, messageId);
    return row && { messageId: row.message_id, sender: row.sender, raw: row.raw, createdAt: toDate(row.created_at) };
  }

  async update(id: number, status: QueueState, owner?: string, dropBodyOf?: string): Promise<boolean> {
    const [updated] = await this.updates.submit([{ id, status, owner, dropBodyOf }]);
    return updated === true;
  }

  async claim(now: Date, limit: number, lease: Lease, options: { excludeDomains?: readonly string[]; excludeIds?: readonly number[] } = {}): Promise<QueueEntry[]> {
    const ids = await claimQueueEntries(this.s, now, limit, lease, options.excludeDomains ?? [], options.excludeIds ?? []);
    if (ids.length === 0) return [];
    const rows: EntryRow[] = [];
    for (const part of chunks(ids, ROWS_PER_STATEMENT)) rows.push(...(await entriesById(this.s.db, this.s.dialect, part)));
    // Oldest due first across the parts, as one statement would order them.
    if (ids.length > ROWS_PER_STATEMENT) rows.sort((a, b) => num(a.next_attempt_at) - num(b.next_attempt_at) || a.id - b.id);
    return rows.map(toEntry);
  }

  renew(ids: readonly number[], lease: Lease): Promise<number[]> {
    return renewLeasesById(this.s, 'queue_recipients', ids, lease);
  }

  release(ids: readonly number[], owner: string): Promise<void> {
    return releaseLeasesById(this.s, 'queue_recipients', ids, owner);
  }

  async flush(now: Date, ids?: readonly number[]): Promise<number[]> {
    if (ids !== undefined && ids.length === 0) return [];
    // Chunks keep the id list under the bound-parameter limits; each chunk is one statement.
    const parts = ids === undefined ? [undefined] : chunks([...ids], 500);
    const flushed: number[] = [];
    await durableTransaction(this.s, async (tx) => {
      for (const part of parts) {
        let q = tx
          .updateTable('queue_recipients')
          .set({ next_attempt_at: now.getTime() })
          .where('state', 'in', ['scheduled', 'deferred']);
        if (part !== undefined) q = q.where('id', 'in', part);
        const rows = await q.returning('id').execute();
        flushed.push(...rows.map((r) => r.id));
      }
    });
    return flushed.sort((a, b) => a - b);
  }

  /** Removes one recipient's entry; the message goes with its last recipient. */
  async remove(id: number): Promise<boolean> {
    return this.s.db.transaction().execute(async (tx) => {
      const row = await tx.deleteFrom('queue_recipients').where('id', '=', id).returning('queue_message').executeTakeFirst();
      if (!row) return false;
      await tx
        .deleteFrom('queue_messages')
        .where('id', '=', row.queue_message)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('queue_recipients').select('queue_recipients.id').whereRef('queue_recipients.queue_message', '=', 'queue_messages.id'))))
        // Not while a notice serves its body (twm-body-sharing.ts); prune() takes it later.
        .where(holdsNoNoticeBody)
        .execute();
      return true;
    });
  }

  async prune(olderThan: Date): Promise<number> {
    return this.s.db.transaction().execute(async (tx) => {
      const deleted = await tx
        .deleteFrom('queue_recipients')
        .where('state', 'in', ['delivered', 'failed'])
        .where('done_at', '<', olderThan.getTime())
        .executeTakeFirst();
      await tx
        .deleteFrom('queue_messages')
        .where((eb) => eb.not(eb.exists(eb.selectFrom('queue_recipients').select('queue_recipients.id').whereRef('queue_recipients.queue_message', '=', 'queue_messages.id'))))
        // A notice may outlive the history (a pending one waits for the Screener): its body stays.
        .where(holdsNoNoticeBody)
        .execute();
      return num(deleted.numDeletedRows);
    });
  }
}

async function insertQueued(tx: Transaction<Database>, dialect: Dialect, input: EnqueueInput): Promise<void> {
  const at = (input.createdAt ?? new Date()).getTime();
  const id = await insertQueueMessage(tx, dialect, { message_id: input.messageId, sender: input.sender, sender_key: senderKey(input.sender), raw: input.raw, created_at: at });
  for (const part of chunks(input.recipients, ROWS_PER_STATEMENT)) {
    const rows = await insertQueueRecipients(tx, dialect, id, part, input.at.getTime());
    await insertQueueEvents(
      tx,
      dialect,
      rows.map((r) => ({ queueRecipientId: r.id, recipient: r.recipient, state: 'scheduled', detail: null, at })),
    );
  }
}
