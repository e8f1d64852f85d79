/**
 * TWM sender side (docs/protocol.md section 7): the notices this server sent,
 * each with the message body it serves to fetches and one state row per
 * recipient.
 *
 * Lifecycle of the storage: create() stores body, notice and `queued` rows
 * together (the body by reference when it is the queue's: twm-body-sharing.ts); fetches, notice results and receipts move rows by conditional
 * updates (transition), so two handlers racing on one recipient cannot undo a
 * final state; once no recipient can fetch any more the delivery layer calls
 * removeBody() (the bulk of the bytes); prune() deletes the history later.
 *
 * Every write goes through one DurableWriter (group commit): durable before
 * it resolves, one fsync for concurrent handlers.
 */
import type { Selectable } from 'kysely';
import { senderKey } from '../core/address.ts';
import { TWM_OUT_FINAL, type TwmOutState } from '../core/twm-types.ts';
import type { TwmOutboundRepository, TwmOutNotice, TwmOutRecipient } from './types.ts';
import { StoreConflictError } from './types.ts';
import type { TwmOutNoticesTable, TwmOutRecipientsTable } from './schema.ts';
import { DurableWriter } from './durable-writer.ts';
import { chunks, isUniqueViolation, num, toDate, unique, type Db } from './db-util.ts';
import { twmEvents } from './recipient-events.ts';
import { firstMessages, twmSentNotices, twmSentOfMessages, twmSentPage } from './sent-queries.ts';
import { dropQueueBodyIfFree, queueHoldsBody } from './twm-body-sharing.ts';
import { dropBodyIfFinal, insertNotice, insertRecipients, insertTwmEvents, moveRecipients, NOTICE_COLUMNS, noticeFacts, noticesOfMessage, servableNotice } from './prepared-twm-delivery.ts';

type NoticeRow = Omit<Selectable<TwmOutNoticesTable>, 'body' | 'body_in_queue' | 'sender_key'>;
type WithRecipients = TwmOutNotice & { recipients: TwmOutRecipient[] };

const FINAL_STATES = [...TWM_OUT_FINAL];
/** Recipients per statement: keeps each under the bound-parameter limits of both dialects. */
const PER_STATEMENT = 1000;

function toNotice(row: NoticeRow): TwmOutNotice {
  return {
    id: row.id,
    messageId: row.message_id,
    sender: row.sender,
    domain: row.domain,
    content: row.content,
    subject: row.subject,
    messageIdHeader: row.message_id_header,
    size: num(row.size),
    sha256: row.sha256,
    createdAt: toDate(row.created_at),
    expiresAt: toDate(row.expires_at),
    bodyRemoved: row.body_removed_at !== null,
    expiryReported: row.expiry_reported_at !== null,
  };
}

function toRecipient(row: Selectable<TwmOutRecipientsTable>): TwmOutRecipient {
  return { noticeId: row.notice_id, recipient: row.recipient, state: row.state, reason: row.reason, updatedAt: toDate(row.updated_at) };
}

export class KyselyTwmOutboundRepository implements TwmOutboundRepository {
  private readonly writer: DurableWriter;

  constructor(private readonly s: Db) {
    this.writer = new DurableWriter(s);
  }

  drain(): Promise<void> {
    return this.writer.drain();
  }

  async create(input: {
    notice: Omit<TwmOutNotice, 'bodyRemoved' | 'expiryReported'>;
    recipients: string[];
    raw: Buffer;
    bodyInQueue?: boolean;
  }): Promise<TwmOutNotice> {
    const n = input.notice;
    try {
      return await this.writer.write(async (tx) => {
        // One copy of the octets (twm-body-sharing.ts): the queue's, when it holds them.
        const shared = input.bodyInQueue === true && (await queueHoldsBody(tx, this.s.dialect, n.messageId, input.raw));
        const [inserted] = await insertNotice(tx, this.s.dialect, {
          id: n.id,
          message_id: n.messageId,
          sender: n.sender,
          sender_key: senderKey(n.sender),
          domain: n.domain,
          content: n.content,
          subject: n.subject,
          message_id_header: n.messageIdHeader,
          size: n.size,
          sha256: n.sha256,
          created_at: n.createdAt.getTime(),
          expires_at: n.expiresAt.getTime(),
          body: shared ? Buffer.alloc(0) : input.raw,
          body_removed_at: null,
          expiry_reported_at: null,
          body_in_queue: shared ? 1 : 0,
        });
        for (const part of chunks(unique(input.recipients), PER_STATEMENT)) {
          await insertRecipients(tx, this.s.dialect, n.id, part, 'queued', n.createdAt.getTime());
          // The history (recipient-events.ts), in the same transaction.
          await insertTwmEvents(tx, this.s.dialect, n.id, 'queued', n.createdAt.getTime(), part.map((recipient) => ({ recipient, detail: null })));
        }
        if (!inserted) throw new Error(`the insert of TWM notice ${n.id} returned no row`);
        return toNotice(inserted);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError(`A TWM notice with id ${n.id} exists already`);
      throw err;
    }
  }

  async get(id: string): Promise<WithRecipients | undefined> {
    const row = await this.s.db.selectFrom('twm_out_notices').select(NOTICE_COLUMNS).where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    return (await this.withRecipients([row]))[0];
  }

  async findByMessage(messageId: string, domain: string): Promise<WithRecipients[]> {
    // Prepared: the notice transport and the remote transport ask on every delivery to a TWM domain.
    const rows = await noticesOfMessage(this.s.db, this.s.dialect, messageId, domain);
    return rows.length === 0 ? [] : this.withRecipients(rows);
  }

  async body(id: string): Promise<Buffer | undefined> {
    return (await this.servable(id))?.body;
  }

  async facts(id: string): Promise<{ domain: string; expiresAt: Date; recipients: string[] } | undefined> {
    const rows = await noticeFacts(this.s.db, this.s.dialect, id);
    const first = rows[0];
    if (!first) return undefined;
    return { domain: first.domain, expiresAt: toDate(first.expires_at), recipients: rows.flatMap((r) => (r.recipient === null ? [] : [r.recipient])) };
  }

  async servable(id: string): Promise<{ expiresAt: Date; body: Buffer | undefined } | undefined> {
    const [row] = await servableNotice(this.s.db, this.s.dialect, id);
    if (!row) return undefined;
    // A shared body is the queue's (twm-body-sharing.ts); null if the queue no longer holds it.
    const body = row.body_removed_at !== null ? undefined : row.body_in_queue === 1 ? (row.queue_raw ?? undefined) : row.body;
    return { expiresAt: toDate(row.expires_at), body };
  }

  async transition(
    id: string,
    recipients: string[],
    change: { from: readonly TwmOutState[]; to: TwmOutState; reason?: string | null },
    at: Date,
  ): Promise<string[]> {
    if (recipients.length === 0 || change.from.length === 0) return [];
    const { dialect } = this.s;
    const at_ = at.getTime();
    return this.writer.write(async (tx) => {
      const changed: string[] = [];
      for (const part of chunks(unique(recipients), PER_STATEMENT)) {
        // The condition (`from`) is what makes racing fetch and receipt handlers safe: a row already moved on is left alone.
        // An undefined reason keeps the stored one (a fetch does not erase why a notice was deferred).
        const rows = await moveRecipients(tx, dialect, { id, recipients: part, from: change.from, to: change.to, reason: change.reason, at: at_ });
        changed.push(...rows.map((r) => r.recipient));
        // The history (recipient-events.ts), in the same transaction: each state a recipient entered, with its reason.
        await insertTwmEvents(tx, dialect, id, change.to, at_, rows.map((r) => ({ recipient: r.recipient, detail: change.reason === undefined ? null : r.reason })));
      }
      // The last recipient to become final takes the body with it, in the same transaction: nobody
      // may fetch it any more (docs/protocol.md 7.2), and a separate write would cost a commit.
      if (changed.length > 0 && TWM_OUT_FINAL.has(change.to)) {
        const [dropped] = await dropBodyIfFinal(tx, dialect, id, at_, FINAL_STATES);
        if (dropped?.body_in_queue === 1) await dropQueueBodyIfFree(tx, dialect, dropped.message_id, at_);
      }
      return changed;
    });
  }

  async expiring(states: readonly TwmOutState[], before: Date, limit: number): Promise<WithRecipients[]> {
    if (states.length === 0 || limit <= 0) return [];
    const rows = await this.s.db
      .selectFrom('twm_out_notices as n')
      .select(NOTICE_COLUMNS.map((c) => `n.${c}` as const))
      .where('n.expires_at', '<=', before.getTime())
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('twm_out_recipients as r')
            .select('r.notice_id')
            .whereRef('r.notice_id', '=', 'n.id')
            .where('r.state', 'in', [...states]),
        ),
      )
      .orderBy('n.expires_at')
      .orderBy('n.id')
      .limit(limit)
      .execute();
    return this.withRecipients(rows);
  }

  async removeBody(id: string): Promise<void> {
    await this.writer.write(async (tx) => {
      const at = Date.now();
      const dropped = await tx
        .updateTable('twm_out_notices')
        .set({ body: Buffer.alloc(0), body_removed_at: at })
        .where('id', '=', id)
        .where('body_removed_at', 'is', null)
        .returning(['message_id', 'body_in_queue'])
        .executeTakeFirst();
      if (dropped?.body_in_queue === 1) await dropQueueBodyIfFree(tx, this.s.dialect, dropped.message_id, at);
    });
  }

  async setExpiryReported(id: string): Promise<void> {
    await this.writer.write((tx) =>
      tx.updateTable('twm_out_notices').set({ expiry_reported_at: Date.now() }).where('id', '=', id).where('expiry_reported_at', 'is', null).execute(),
    );
  }

  async listBySender(sender: string, options: { limit?: number; messageIds?: readonly string[] } = {}): Promise<WithRecipients[]> {
    const key = senderKey(sender);
    const { limit, messageIds } = options;
    if (key === null || (limit !== undefined && limit <= 0) || messageIds?.length === 0) return [];
    const ids = messageIds ?? (limit === undefined ? undefined : await this.newestMessages(key, limit));
    if (ids === undefined) return this.withRecipients(await twmSentNotices(this.s.db, key).execute());
    const rows: NoticeRow[] = [];
    for (const part of chunks(unique(ids), PER_STATEMENT)) rows.push(...(await twmSentOfMessages(this.s.db, this.s.dialect, key, part).execute()));
    // Newest first, as twmSentNotices reads them.
    rows.sort((a, b) => num(b.created_at) - num(a.created_at) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const notices = await this.withRecipients(rows);
    return messageIds === undefined ? notices : firstMessages(notices, limit);
  }

  /**
   * The account's first `limit` messages in the order of their newest notice: pages of its notices,
   * newest first, until that many messages were seen (a message has a notice per recipient domain).
   */
  private async newestMessages(key: string, limit: number): Promise<string[]> {
    const ids = new Set<string>();
    const size = Math.min(PER_STATEMENT, 2 * limit);
    let before: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await twmSentPage(this.s.db, key, size, before).execute();
      for (const n of page) {
        ids.add(n.message_id);
        if (ids.size === limit) return [...ids];
      }
      const last = page.at(-1);
      if (!last || page.length < size) return [...ids];
      before = { createdAt: num(last.created_at), id: last.id };
    }
  }

  async prune(olderThan: Date): Promise<number> {
    // Rows go with their notice (ON DELETE CASCADE).
    const res = await this.s.db
      .deleteFrom('twm_out_notices')
      .where('expires_at', '<', olderThan.getTime())
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('twm_out_recipients')
              .select('twm_out_recipients.notice_id')
              .whereRef('twm_out_recipients.notice_id', '=', 'twm_out_notices.id')
              .where('twm_out_recipients.state', 'not in', FINAL_STATES),
          ),
        ),
      )
      .executeTakeFirst();
    return num(res.numDeletedRows);
  }

  history(noticeIds: readonly string[]) {
    return twmEvents(this.s, noticeIds);
  }

  /** The notices with their recipients (ordered by address), in the notices' order. */
  private async withRecipients(rows: NoticeRow[]): Promise<WithRecipients[]> {
    const byNotice = new Map<string, TwmOutRecipient[]>(rows.map((r) => [r.id, []]));
    for (const part of chunks([...byNotice.keys()], PER_STATEMENT)) {
      const recipients = await this.s.db
        .selectFrom('twm_out_recipients')
        .selectAll()
        .where('notice_id', 'in', part)
        .orderBy('notice_id')
        .orderBy('recipient')
        .execute();
      for (const r of recipients) byNotice.get(r.notice_id)!.push(toRecipient(r));
    }
    return rows.map((r) => ({ ...toNotice(r), recipients: byNotice.get(r.id)! }));
  }
}
