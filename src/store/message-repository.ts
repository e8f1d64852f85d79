/**
 * Mailboxes and messages.
 *
 * Design note: group commit. A durable delivery costs one fsync at commit
 * (SQLite synchronous=FULL, PostgreSQL synchronous_commit=on), far more than
 * the inserts themselves. So deliver() does not open a transaction per call:
 * it queues its items in a GroupCommit (group-commit.ts). While one
 * transaction runs, new calls wait; when it ends, the next transaction takes
 * every waiting call (up to 500 messages) and commits them together, so under
 * load N concurrent deliveries cost about one fsync instead of N. Each
 * caller's promise resolves only after the transaction holding its messages
 * has committed. If a shared transaction fails, it is rolled back and every
 * caller in it is retried alone, so one bad item (say, an unknown user) fails
 * only its own caller. A caller's items are always committed together.
 *
 * Inside a transaction (message-batch.ts) UIDs are reserved per mailbox with
 * `UPDATE mailboxes SET uid_next = uid_next + n ... RETURNING`, which is
 * atomic on both dialects, so UIDs stay distinct and consecutive even with
 * several processes writing to one PostgreSQL database.
 *
 * Bodies are content-addressed (SHA-256) and shared; remove() collects the
 * bodies its messages left unreferenced.
 */
import { type Kysely, sql, type Selectable } from 'kysely';
import { MAILBOXES, type Mailbox, type MailboxName, type MessageSummary } from '../core/types.ts';
import { queueLearning } from './spam-learning-repository.ts';
import type { LearnKind, MessageListOptions, MessageRepository, NewMessage } from './types.ts';
import type { Database, MessagesTable } from './schema.ts';
import { GroupCommit } from './group-commit.ts';
import { storeMessages } from './message-batch.ts';
import { claimFirstCopies } from './twm-first-copy.ts';
import { holdsConnectionOf, preparedOf } from './prepared.ts';
import { chunks, isForeignKeyViolation, num, toDate, unique, unsyncedTransaction, type Db } from './db-util.ts';
import type { ChangeBus } from './change-bus.ts';
import { insertExpunges, nextModseq, recordExpunges } from './modseq.ts';

/** Ids per IN (...) list, below both dialects' bound-parameter limits. */
const IDS_PER_QUERY = 1000;
/** Recipients of a TWM message up to which its stored-copy lookup has a prepared shape (one per count). */
const PREPARED_TWM_KEY_USERS = 8;

type SummaryRow = Omit<Selectable<MessagesTable>, 'body_id' | 'request_id' | 'mailbox_id' | 'twm_key' | 'modseq' | 'structure' | 'imap_envelope' | 'imap_bodystructure' | 'imap_body'> & { mailbox: MailboxName };

function toSummary(row: SummaryRow): MessageSummary {
  return {
    id: row.id,
    userId: row.user_id,
    mailbox: row.mailbox,
    uid: num(row.uid),
    flags: JSON.parse(row.flags) as string[],
    size: num(row.size),
    sender: row.sender,
    from: row.from_addr,
    subject: row.subject,
    receivedAt: toDate(row.received_at),
    firstContact: num(row.first_contact) === 1,
  };
}

const SUMMARY_COLUMNS = [
  'm.id',
  'm.user_id',
  'm.uid',
  'm.flags',
  'm.size',
  'm.sender',
  'm.from_addr',
  'm.subject',
  'm.received_at',
  'm.first_contact',
  'mb.name as mailbox',
] as const;

/** What a move teaches the spam filter: into Junk is spam; out of Junk is ham, except into Trash (deleting spam). */
export function learnKindOfMove(from: MailboxName | string, to: MailboxName | string): LearnKind | null {
  if (to === 'Junk' && from !== 'Junk') return 'spam';
  if (from === 'Junk' && to !== 'Junk' && to !== 'Trash') return 'ham';
  return null;
}

export class KyselyMessageRepository implements MessageRepository {
  private readonly committer: GroupCommit<NewMessage, MessageSummary>;

  constructor(
    private readonly s: Db,
    private readonly bus?: ChangeBus,
  ) {
    const writer = s.messageWriter;
    const inline = (items: NewMessage[]) =>
      unsyncedTransaction(this.s, (tx) => {
        // The round's transaction has the connection to itself (unsyncedTransaction): its prepared
        // statements run on better-sqlite3 directly, without kysely's driver layers (prepared.ts).
        holdsConnectionOf(tx, this.s.db);
        return storeMessages(tx, this.s.dialect, items);
      });
    // On a SQLite file each round commits without its fsync, then is synced (group-commit.ts: a failed
    // fsync fails the round, nothing is committed twice): in the writer's thread once a server started
    // it (message-writer.ts, `warm`), else here. Which way the round in progress went: GroupCommit
    // runs one round at a time, its commit then its sync.
    let threaded = false;
    this.committer = new GroupCommit(
      (items) => {
        threaded = writer?.started() ?? false;
        return threaded ? writer!.commit(items) : inline(items);
      },
      500,
      s.walSync ? () => (threaded ? writer!.sync() : this.s.walSync!()) : undefined,
    );
  }

  async deliver(items: NewMessage[]): Promise<MessageSummary[]> {
    const stored = await this.committer.submit(items);
    for (const userId of unique(items.map((m) => m.userId))) this.bus?.emit(userId);
    return stored;
  }

  warm(): void {
    this.s.messageWriter?.warm();
  }

  /** Waits for queued deliveries to commit (Store.close calls it before closing the database). */
  drain(): Promise<void> {
    return this.committer.drain();
  }

  /**
   * Ordered by UID when a mailbox is given (IMAP order), otherwise by arrival
   * time then id, oldest first.
   */
  async list(userId: number, options: MessageListOptions = {}): Promise<MessageSummary[]> {
    return (await listQuery(this.s.db, userId, options).execute()).map(toSummary);
  }

  async get(userId: number, id: number): Promise<(MessageSummary & { raw: Buffer }) | undefined> {
    const row = await this.s.db
      .selectFrom('messages as m')
      .innerJoin('mailboxes as mb', 'mb.id', 'm.mailbox_id')
      .innerJoin('message_bodies as b', 'b.id', 'm.body_id')
      .select([...SUMMARY_COLUMNS, 'b.raw'])
      .where('m.user_id', '=', userId)
      .where('m.id', '=', id)
      .executeTakeFirst();
    // Both drivers return a Buffer already; no copy of a possibly large body.
    return row && { ...toSummary(row), raw: row.raw };
  }

  async withTwmKey(userIds: number[], twmKey: string): Promise<number[]> {
    if (userIds.length === 0) return [];
    const { db } = this.s;
    // Prepared (prepared.ts) for the usual few recipients: every TWM message stored asks, and
    // kysely's build and compile of this select was most of its cost at the recipient.
    if (userIds.length <= PREPARED_TWM_KEY_USERS) {
      const rows = await preparedOf(this.s.dialect).run(db, `messages.withTwmKey:${userIds.length}`, [twmKey, ...userIds], (v) =>
        db
          .selectFrom('messages')
          .select('user_id')
          .distinct()
          .where(
            'user_id',
            'in',
            userIds.map((_, i) => v<number>(1 + i)),
          )
          .where('twm_key', '=', v<string>(0)),
      );
      return rows.map((r) => r.user_id);
    }
    const rows = await db.selectFrom('messages').select('user_id').distinct().where('user_id', 'in', userIds).where('twm_key', '=', twmKey).execute();
    return rows.map((r) => r.user_id);
  }

  claimFirstCopy(userIds: number[], senderDomain: string, messageId: string, channel: 'twm' | 'smtp', at: Date): Promise<number[]> {
    return claimFirstCopies(this.s, userIds, senderDomain, messageId, channel, at);
  }

  async pruneCopies(before: Date): Promise<number> {
    const result = await this.s.db.deleteFrom('twm_copies').where('created_at', '<', before.getTime()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async twmKeysOf(userId: number, keys: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    // In slices: SQLite allows a bounded number of bound parameters per statement.
    for (let i = 0; i < keys.length; i += 500) {
      const part = keys.slice(i, i + 500);
      const rows = await this.s.db.selectFrom('messages').select('twm_key').where('user_id', '=', userId).where('twm_key', 'in', part).execute();
      for (const r of rows) if (r.twm_key !== null) found.add(r.twm_key);
    }
    return found;
  }

  async mailboxes(userId: number): Promise<Array<Mailbox & { count: number }>> {
    const rows = await this.s.db
      .selectFrom('mailboxes as mb')
      .select((eb) => [
        'mb.id',
        'mb.user_id',
        'mb.name',
        'mb.uid_validity',
        'mb.uid_next',
        eb.selectFrom('messages as m').select((e) => e.fn.countAll().as('n')).whereRef('m.mailbox_id', '=', 'mb.id').as('count'),
      ])
      .where('mb.user_id', '=', userId)
      .execute();
    const order = (name: MailboxName) => MAILBOXES.indexOf(name);
    return rows
      .map((r) => ({
        id: r.id,
        userId: r.user_id,
        name: r.name,
        uidValidity: num(r.uid_validity),
        uidNext: num(r.uid_next),
        count: num(r.count),
      }))
      .sort((a, b) => order(a.name) - order(b.name));
  }

  async move(userId: number, ids: number[], to: MailboxName, teach?: 'auto' | LearnKind): Promise<number> {
    if (ids.length === 0) return 0;
    return this.s.db.transaction().execute(async (tx) => {
      const target = await tx.selectFrom('mailboxes').select('id').where('user_id', '=', userId).where('name', '=', to).executeTakeFirst();
      if (!target) return 0;
      const moving: Array<{ id: number; from: number; uid: number }> = [];
      const learn: Array<{ messageId: number; kind: LearnKind }> = [];
      for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
        const rows = await tx
          .selectFrom('messages as m')
          .innerJoin('mailboxes as mb', 'mb.id', 'm.mailbox_id')
          .select(['m.id', 'm.mailbox_id', 'm.uid', 'mb.name'])
          .where('m.user_id', '=', userId)
          .where('m.id', 'in', part)
          .where('m.mailbox_id', '!=', target.id)
          .execute();
        for (const r of rows) {
          moving.push({ id: r.id, from: r.mailbox_id, uid: num(r.uid) });
          const kind = teach === 'auto' ? learnKindOfMove(r.name, to) : (teach ?? null);
          if (kind) learn.push({ messageId: r.id, kind });
        }
      }
      if (moving.length === 0) return 0;
      if (learn.length > 0) await queueLearning(tx, userId, learn, new Date());
      moving.sort((a, b) => a.id - b.id);
      // Mailboxes in a fixed order (row locks on PostgreSQL): the sources by id, then the target.
      const sourceModseq = new Map<number, number>();
      for (const from of [...new Set(moving.map((m) => m.from))].sort((a, b) => a - b)) sourceModseq.set(from, await nextModseq(tx, from));
      const modseq = await nextModseq(tx, target.id);
      const reserved = await tx
        .updateTable('mailboxes')
        .set((eb) => ({ uid_next: eb('uid_next', '+', moving.length) }))
        .where('id', '=', target.id)
        .returning('uid_next')
        .executeTakeFirstOrThrow();
      const start = num(reserved.uid_next) - moving.length;
      const left = new Map<number, number[]>();
      let moved = 0;
      for (const [n, m] of moving.entries()) {
        const res = await tx
          .updateTable('messages')
          .set({
            mailbox_id: target.id,
            uid: start + n,
            modseq,
            // Leaving the Screener ends the message's link to its request (it is no longer held).
            ...(to === 'Screener' ? {} : { request_id: null }),
          })
          .where('id', '=', m.id)
          // Again here: a concurrent move (another process releasing the same mail) may have won
          // since the select; PostgreSQL re-checks this on the row it waited for. Its UID stays
          // unused, and only rows that really left their mailbox are recorded as expunged there.
          .where('mailbox_id', '=', m.from)
          .executeTakeFirst();
        if (num(res.numUpdatedRows) === 0) continue;
        moved += 1;
        left.set(m.from, [...(left.get(m.from) ?? []), m.uid]);
      }
      for (const [from, uids] of left) await insertExpunges(tx, from, uids, sourceModseq.get(from) ?? modseq);
      return moved;
    }).then((n) => {
      if (n > 0) this.bus?.emit(userId);
      return n;
    });
  }

  async setFlags(userId: number, id: number, flags: string[]): Promise<boolean> {
    const changed = await this.s.db.transaction().execute(async (tx) => {
      const row = await tx.selectFrom('messages').select('mailbox_id').where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
      if (!row) return false;
      const modseq = await nextModseq(tx, row.mailbox_id);
      const res = await tx.updateTable('messages').set({ flags: JSON.stringify(flags), modseq }).where('id', '=', id).executeTakeFirst();
      return num(res.numUpdatedRows) > 0;
    });
    if (changed) this.bus?.emit(userId);
    return changed;
  }

  async remove(userId: number, ids: number[]): Promise<number> {
    if (ids.length === 0) return 0;
    const { removed, bodyIds } = await this.s.db.transaction().execute(async (tx) => {
      let removed = 0;
      const bodyIds: number[] = [];
      const leaving = new Map<number, number[]>();
      for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
        const rows = await tx
          .deleteFrom('messages')
          .where('user_id', '=', userId)
          .where('id', 'in', part)
          .returning(['body_id', 'mailbox_id', 'uid'])
          .execute();
        removed += rows.length;
        bodyIds.push(...rows.map((r) => r.body_id));
        for (const r of rows) leaving.set(r.mailbox_id, [...(leaving.get(r.mailbox_id) ?? []), num(r.uid)]);
      }
      for (const [mailboxId, uids] of [...leaving].sort((a, b) => a[0] - b[0])) await recordExpunges(tx, mailboxId, uids);
      return { removed, bodyIds: unique(bodyIds) };
    });
    await this.collectBodies(bodyIds);
    if (removed > 0) this.bus?.emit(userId);
    return removed;
  }

  /**
   * Deletes the given bodies unless a message still references them. Runs
   * after the removal has committed, in its own statement: if a concurrent
   * delivery (another connection) reuses a body meanwhile, the foreign key
   * refuses the delete, which is exactly right, so that error is ignored. A
   * crash between the two leaves an unreferenced body behind, never a
   * message without its body.
   */
  async collectBodies(bodyIds: number[]): Promise<void> {
    for (const part of chunks(bodyIds, IDS_PER_QUERY)) {
      try {
        await this.s.db
          .deleteFrom('message_bodies')
          .where('id', 'in', part)
          .where((eb) => eb.not(eb.exists(eb.selectFrom('messages').select('messages.id').whereRef('messages.body_id', '=', 'message_bodies.id'))))
          .execute();
      } catch (err) {
        if (!isForeignKeyViolation(err)) throw err;
      }
    }
  }
}

/** The query of messages.list (exported for its plan test). */
export function listQuery(db: Kysely<Database>, userId: number, options: MessageListOptions) {
  const { mailbox, limit, offset, beforeUid, text } = options;
  let q = db
    .selectFrom('messages as m')
    .innerJoin('mailboxes as mb', 'mb.id', 'm.mailbox_id')
    .select(SUMMARY_COLUMNS)
    .where('m.user_id', '=', userId);
  if (text !== undefined && text !== '') {
    // A substring of the subject or the From: address, case-insensitive; % and _ are literal.
    const pattern = `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    q = q.where((eb) =>
      eb.or([
        sql<boolean>`lower(m.subject) like ${pattern} escape '\\'`,
        sql<boolean>`lower(m.from_addr) like ${pattern} escape '\\'`,
      ]),
    );
  }
  // The mailbox by its unique key (user_id, name), then its messages by (mailbox_id, uid): by the
  // name alone SQLite (never ANALYZEd) read every message of the user and sorted them, per page.
  if (mailbox !== undefined) q = q.where('mb.user_id', '=', userId);
  if (mailbox !== undefined && beforeUid !== undefined) {
    // Key paging, newest first: (mailbox_id, uid) is indexed, so each page costs the same.
    q = q.where('mb.name', '=', mailbox).where('m.uid', '<', beforeUid).orderBy('m.uid', 'desc');
  } else if (mailbox !== undefined && options.newestFirst) {
    q = q.where('mb.name', '=', mailbox).orderBy('m.uid', 'desc');
  } else {
    q = mailbox !== undefined ? q.where('mb.name', '=', mailbox).orderBy('m.uid') : q.orderBy('m.received_at').orderBy('m.id');
  }
  // SQLite accepts OFFSET only after a LIMIT.
  if (limit !== undefined || offset !== undefined) q = q.limit(limit ?? Number.MAX_SAFE_INTEGER);
  if (offset !== undefined) q = q.offset(offset);
  return q;
}
