/**
 * TWM recipient side (docs/protocol.md section 8): the notices received, one
 * state row per (notice, rcpt).
 *
 * record() is the one durable step before a notice is answered (8.1): the
 * notice, its rows and its contact requests commit together or not at all.
 * The requests are upserted by request-upsert.ts, the same code as the SMTP
 * path, so both channels count attempts alike. Later changes are conditional
 * updates (update, expire): the fetch worker, the receipt worker and the
 * Screener can race on one row without undoing each other's final states.
 *
 * Every write goes through one DurableWriter (group commit): durable before
 * it resolves, one fsync for concurrent handlers.
 */
import type { ChangeBus } from './change-bus.ts';
import { sql, type Kysely, type Selectable } from 'kysely';
import { TWM_IN_FINAL, type TwmInState } from '../core/twm-types.ts';
import { claimedTwmRows, claimTwmRows, renewTwmRows } from './twm-inbound-claims.ts';
import { updateInRecipients } from './prepared-twm-delivery.ts';
import type { Lease, TwmInboundRepository, TwmInNotice, TwmInRecipient, TwmInRecipientChange, TwmNonceWrite, TwmRequestTouch } from './types.ts';
import { NonceSeenError, StoreConflictError } from './types.ts';
import type { Database, TwmInNoticesTable, TwmInRecipientsTable } from './schema.ts';
import { DurableWriter } from './durable-writer.ts';
import { upsertRequests } from './request-upsert.ts';
import {
  countPendingFrom,
  countPendingTotal,
  insertNotice,
  insertRecipients,
  PREPARED_RECIPIENT_ROWS,
  rememberNonce,
  selectNotice,
  selectRecipients,
} from './prepared-twm.ts';
import { chunks, isUniqueViolation, num, toDate, unique, type Db } from './db-util.ts';

type NoticeRow = Selectable<TwmInNoticesTable>;
// The lease columns are the claims' business (twm-inbound-claims.ts), not the rows' meaning.
type RecipientRow = Omit<Selectable<TwmInRecipientsTable>, 'lease_owner' | 'lease_until'>;
type Row = { notice: TwmInNotice; recipient: TwmInRecipient };

const FINAL_STATES = [...TWM_IN_FINAL];
/** The states a notice's expiry ends (section 8.3, last line). */
const EXPIRABLE: readonly TwmInState[] = ['pending', 'held', 'scheduled'];
/** Rows per statement: keeps each under the bound-parameter limits of both dialects. */
const PER_STATEMENT = 1000;

function toNotice(row: NoticeRow): TwmInNotice {
  return {
    senderDomain: row.sender_domain,
    id: row.id,
    contentSha256: row.content_sha256,
    from: row.from_addr,
    to: JSON.parse(row.to_addrs) as string[],
    size: num(row.size),
    sha256: row.sha256,
    createdAt: toDate(row.created_at),
    expiresAt: toDate(row.expires_at),
    intro: row.intro,
    purpose: row.purpose,
    listId: row.list_id,
    receivedAt: toDate(row.received_at),
  };
}

function toRecipient(row: RecipientRow): TwmInRecipient {
  return {
    senderDomain: row.sender_domain,
    noticeId: row.notice_id,
    rcpt: row.rcpt,
    userId: row.user_id,
    state: row.state,
    receipt: row.receipt,
    receiptError: row.receipt_error,
    nextAttemptAt: row.next_attempt_at === null ? null : toDate(row.next_attempt_at),
    attempts: num(row.attempts),
    lastError: row.last_error,
    updatedAt: toDate(row.updated_at),
  };
}

/** The columns a change writes; keys left undefined keep their stored value. */
function changeColumns(change: TwmInRecipientChange): Partial<Omit<RecipientRow, 'sender_domain' | 'notice_id' | 'rcpt' | 'user_id'>> {
  return {
    ...(change.state === undefined ? {} : { state: change.state }),
    ...(change.receipt === undefined ? {} : { receipt: change.receipt }),
    ...(change.receiptError === undefined ? {} : { receipt_error: change.receiptError }),
    ...(change.nextAttemptAt === undefined ? {} : { next_attempt_at: change.nextAttemptAt === null ? null : change.nextAttemptAt.getTime() }),
    ...(change.attempts === undefined ? {} : { attempts: change.attempts }),
    ...(change.lastError === undefined ? {} : { last_error: change.lastError }),
  };
}

/** The address's domain, lower-case ('' without an @). */
function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/** Escapes LIKE wildcards so that a domain is matched literally. */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** One request touch per (user, sender), the first. */
function firstPerSender(requests: readonly TwmRequestTouch[]): TwmRequestTouch[] {
  const seen = new Set<string>();
  return requests.filter((r) => {
    const key = `${r.userId}\n${r.sender.toLowerCase()}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** One row per rcpt, the first. */
function firstPerRcpt<R extends { rcpt: string }>(recipients: readonly R[]): R[] {
  const rcpts = new Set<string>();
  return recipients.filter((r) => {
    if (rcpts.has(r.rcpt)) return false;
    rcpts.add(r.rcpt);
    return true;
  });
}

export class KyselyTwmInboundRepository implements TwmInboundRepository {
  private readonly writer: DurableWriter;

  constructor(
    private readonly s: Db,
    private readonly bus?: ChangeBus,
  ) {
    this.writer = new DurableWriter(s);
  }

  drain(): Promise<void> {
    return this.writer.drain();
  }

  find(senderDomain: string, id: string): Promise<{ notice: TwmInNotice; recipients: TwmInRecipient[] } | undefined> {
    // Prepared (prepared-twm.ts): the notice path asks it whenever it refuses or defers a notice.
    return this.findIn(this.s.db, senderDomain, id);
  }

  /**
   * One request touch per (user, sender) counts: a notice is one attempt
   * (section 8.2), even if it names several addresses of the same user. A
   * rcpt listed twice is stored once (the first row), so that a repeated `to`
   * address is not mistaken for a recorded notice (StoreConflictError).
   */
  async record(
    notice: TwmInNotice,
    recipients: Array<Omit<TwmInRecipient, 'updatedAt' | 'attempts' | 'lastError'>>,
    requests: TwmRequestTouch[],
    nonce?: TwmNonceWrite,
  ): Promise<void> {
    // Thrown inside the transaction, so that the nonce is rolled back with the rest, as before.
    await this.write(notice, recipients, requests, nonce, true);
  }

  /**
   * The notice's insert finds out whether it was recorded before (ON CONFLICT DO NOTHING), so a
   * new notice, the usual case, needs no lookup of its own before it is recorded; a known one
   * is read back in the same transaction, which then writes nothing else but the nonce.
   */
  async recordUnlessKnown(
    notice: TwmInNotice,
    recipients: Array<Omit<TwmInRecipient, 'updatedAt' | 'attempts' | 'lastError'>>,
    requests: TwmRequestTouch[],
    nonce?: TwmNonceWrite,
  ): Promise<{ notice: TwmInNotice; recipients: TwmInRecipient[] } | undefined> {
    return this.write(notice, recipients, requests, nonce, false);
  }

  private async write(
    notice: TwmInNotice,
    recipients: Array<Omit<TwmInRecipient, 'updatedAt' | 'attempts' | 'lastError'>>,
    requests: TwmRequestTouch[],
    nonce: TwmNonceWrite | undefined,
    knownThrows: boolean,
  ): Promise<{ notice: TwmInNotice; recipients: TwmInRecipient[] } | undefined> {
    // One of each (a stranger's notice to one address) has nothing to drop.
    const touches = requests.length > 1 ? firstPerSender(requests) : requests;
    const rows = recipients.length > 1 ? firstPerRcpt(recipients) : recipients;
    const at = notice.receivedAt.getTime();
    try {
      const known = await this.writer.write(async (tx) => {
        // The request's nonce in the notice's own transaction: one write per notice, not two (5.5, 8.1).
        if (nonce && !(await rememberNonce(this.s, tx, nonce.key, nonce.until.getTime(), nonce.now.getTime()))) throw new NonceSeenError();
        const inserted = await insertNotice(this.s, tx, {
          sender_domain: notice.senderDomain,
          id: notice.id,
          content_sha256: notice.contentSha256,
          from_addr: notice.from,
          to_addrs: JSON.stringify(notice.to),
          size: notice.size,
          sha256: notice.sha256,
          created_at: notice.createdAt.getTime(),
          expires_at: notice.expiresAt.getTime(),
          intro: notice.intro,
          purpose: notice.purpose,
          list_id: notice.listId,
          received_at: at,
        });
        if (!inserted) {
          if (knownThrows) throw conflictOf(notice);
          return this.findIn(tx, notice.senderDomain, notice.id);
        }
        // The notice's key, whatever the row says: a row cannot belong to another notice.
        const values = rows.map((r) => ({
          sender_domain: notice.senderDomain,
          notice_id: notice.id,
          rcpt: r.rcpt,
          user_id: r.userId,
          state: r.state,
          receipt: r.receipt,
          receipt_error: r.receiptError,
          next_attempt_at: r.nextAttemptAt === null ? null : r.nextAttemptAt.getTime(),
          attempts: 0,
          last_error: null,
          updated_at: at,
        }));
        // The usual notice (a few recipients) on a prepared shape; a long list in large statements.
        if (values.length <= PREPARED_RECIPIENT_ROWS) await insertRecipients(this.s, tx, values);
        else for (const part of chunks(values, PER_STATEMENT)) await tx.insertInto('twm_in_recipients').values(part).execute();
        await upsertRequests(
          tx,
          this.s.dialect,
          touches.map((r) => ({ userId: r.userId, sender: r.sender, authDomain: r.authDomain, subject: null, intro: r.intro, at: r.at, spamScore: r.spamScore ?? null, likelySpam: r.likelySpam ?? false })),
        );
        return undefined;
      });
      if (known) return known;
      // A new contact request shows in the IMAP Screener (endpoints/imap): its sessions look now.
      for (const userId of new Set(touches.map((r) => r.userId))) this.bus?.emit(userId);
      return undefined;
    } catch (err) {
      if (isUniqueViolation(err)) throw conflictOf(notice);
      throw err;
    }
  }

  /** find() on a transaction (or the database); undefined if the notice is not there. */
  private async findIn(on: Kysely<Database>, senderDomain: string, id: string): Promise<{ notice: TwmInNotice; recipients: TwmInRecipient[] } | undefined> {
    const notice = await selectNotice(this.s, senderDomain, id, on);
    if (!notice) return undefined;
    const rows = await selectRecipients(this.s, senderDomain, id, on);
    return { notice: toNotice(notice), recipients: rows.map(toRecipient) };
  }

  async due(now: Date, limit: number): Promise<Row[]> {
    if (limit <= 0) return [];
    const rows = await this.s.db
      .selectFrom('twm_in_recipients as r')
      .innerJoin('twm_in_notices as n', (j) => j.onRef('n.sender_domain', '=', 'r.sender_domain').onRef('n.id', '=', 'r.notice_id'))
      .selectAll('n')
      .select(['r.notice_id', 'r.rcpt', 'r.user_id', 'r.state', 'r.receipt', 'r.receipt_error', 'r.next_attempt_at', 'r.attempts', 'r.last_error', 'r.updated_at'])
      .where('r.state', 'in', ['scheduled', 'receipt-due'])
      .where('r.next_attempt_at', '<=', now.getTime())
      .orderBy('r.next_attempt_at')
      .orderBy('r.sender_domain')
      .orderBy('r.notice_id')
      .orderBy('r.rcpt')
      .limit(limit)
      .execute();
    return rows.map(splitRow);
  }

  async claim(now: Date, limit: number, lease: Lease): Promise<Row[]> {
    const claimed = await claimTwmRows(this.s, now, limit, lease);
    if (claimed.size === 0) return [];
    const notices = new Map<string, readonly [string, string]>();
    for (const key of claimed) {
      const [domain, id] = key.split(' ');
      notices.set(`${domain} ${id}`, [domain as string, id as string]);
    }
    const rows = await claimedTwmRows(this.s, [...notices.values()], lease);
    // Rows renewed to the same instant by an earlier claim of this owner come back too: only this claim's count.
    return rows.map(splitRow).filter((r) => claimed.has(`${r.notice.senderDomain} ${r.notice.id} ${r.recipient.rcpt}`));
  }

  renew(notices: readonly string[], lease: Lease): Promise<number> {
    return renewTwmRows(this.s, notices, lease);
  }

  /**
   * Only a fetch given up (twm-fetch-steps.ts retry: on its attempt count, or because the next
   * attempt would come after `expires`) leaves an `expired` row with attempts before its notice
   * expires: expire() ends rows of expired notices (and pending ones, which never had an
   * attempt), so the stored fields tell them apart without a column of their own. The lease is the claim's rule (twm-inbound-claims.ts):
   * a row some live worker holds is left to it.
   */
  async rescheduleGivenUp(senderDomain: string, id: string, now: Date): Promise<string[]> {
    const at = now.getTime();
    return this.writer.write(async (tx) => {
      const rows = await tx
        .updateTable('twm_in_recipients')
        .set({ state: 'scheduled', attempts: 0, next_attempt_at: at, updated_at: at, lease_owner: null, lease_until: null })
        .where('sender_domain', '=', senderDomain)
        .where('notice_id', '=', id)
        .where('state', '=', 'expired')
        .where('attempts', '>', 0)
        .where('receipt', 'is', null)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]))
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('twm_in_notices as n')
              .select('n.id')
              .whereRef('n.sender_domain', '=', 'twm_in_recipients.sender_domain')
              .whereRef('n.id', '=', 'twm_in_recipients.notice_id')
              .where('n.expires_at', '>', at),
          ),
        )
        .returning('rcpt')
        .execute();
      return rows.map((r) => r.rcpt);
    });
  }

  async update(senderDomain: string, id: string, rcpts: string[], from: readonly TwmInState[], change: TwmInRecipientChange, at: Date, owner?: string): Promise<string[]> {
    if (rcpts.length === 0 || from.length === 0) return [];
    // With an owner (a worker's attempt): only rows it still holds, and the write ends its lease.
    const columns = { ...changeColumns(change), updated_at: at.getTime(), ...(owner === undefined ? {} : { lease_owner: null, lease_until: null }) };
    return this.writer.write(async (tx) => {
      const changed: string[] = [];
      for (const part of chunks(unique(rcpts), PER_STATEMENT)) {
        // Prepared: every fetch and receipt ends with this write. The condition (`from`) is what lets
        // racing workers and the Screener leave each other's results alone.
        const rows = await updateInRecipients(tx, this.s.dialect, { senderDomain, id, rcpts: part, from, owner }, columns);
        changed.push(...rows.map((r) => r.rcpt));
      }
      return changed;
    });
  }

  /**
   * With neither `senders` nor `domain` nothing matches. SQL narrows the rows
   * (lower() and LIKE disagree across dialects on non-ASCII text); the exact
   * match on the from-domain is made here.
   */
  async forUser(userId: number, match: { senders?: string[]; domain?: string } | 'any', states: readonly TwmInState[], now: Date): Promise<Row[]> {
    if (match === 'any') {
      if (states.length === 0) return [];
      const rows = await this.s.db
        .selectFrom('twm_in_recipients as r')
        .innerJoin('twm_in_notices as n', (j) => j.onRef('n.sender_domain', '=', 'r.sender_domain').onRef('n.id', '=', 'r.notice_id'))
        .selectAll('n')
        .select(['r.notice_id', 'r.rcpt', 'r.user_id', 'r.state', 'r.receipt', 'r.receipt_error', 'r.next_attempt_at', 'r.attempts', 'r.last_error', 'r.updated_at'])
        .where('r.user_id', '=', userId)
        .where('r.state', 'in', [...states])
        .where('n.expires_at', '>', now.getTime())
        .orderBy('n.received_at')
        .orderBy('n.sender_domain')
        .orderBy('n.id')
        .orderBy('r.rcpt')
        .execute();
      return rows.map(splitRow);
    }
    const senders = unique((match.senders ?? []).map((s) => s.toLowerCase()));
    const domain = match.domain?.toLowerCase();
    if (states.length === 0 || (senders.length === 0 && domain === undefined)) return [];
    const matches = (from: string): boolean => {
      if (senders.includes(from.toLowerCase())) return true;
      if (domain === undefined) return false;
      const d = domainOf(from);
      return d === domain || d.endsWith(`.${domain}`);
    };
    const out: Row[] = [];
    // Chunked by senders; with a domain alone one query (an empty chunk list gets one pass).
    const parts = senders.length === 0 ? [[]] : chunks(senders, PER_STATEMENT);
    for (const [n, part] of parts.entries()) {
      const rows = await this.s.db
        .selectFrom('twm_in_recipients as r')
        .innerJoin('twm_in_notices as n', (j) => j.onRef('n.sender_domain', '=', 'r.sender_domain').onRef('n.id', '=', 'r.notice_id'))
        .selectAll('n')
        .select(['r.notice_id', 'r.rcpt', 'r.user_id', 'r.state', 'r.receipt', 'r.receipt_error', 'r.next_attempt_at', 'r.attempts', 'r.last_error', 'r.updated_at'])
        .where('r.user_id', '=', userId)
        .where('r.state', 'in', [...states])
        .where('n.expires_at', '>', now.getTime())
        .where((eb) => {
          const ors = [];
          if (part.length > 0) ors.push(eb(eb.fn('lower', ['n.from_addr']), 'in', part));
          // The domain only on the first pass, so that its rows are not returned once per chunk.
          if (domain !== undefined && n === 0) {
            const lit = likeLiteral(domain);
            ors.push(sql<boolean>`lower(${sql.ref('n.from_addr')}) like ${`%@${lit}`} escape '\\'`);
            ors.push(sql<boolean>`lower(${sql.ref('n.from_addr')}) like ${`%.${lit}`} escape '\\'`);
          }
          return eb.or(ors);
        })
        .orderBy('n.received_at')
        .orderBy('n.sender_domain')
        .orderBy('n.id')
        .orderBy('r.rcpt')
        .execute();
      out.push(...rows.map(splitRow).filter((r) => matches(r.notice.from)));
    }
    return out;
  }

  async expire(now: Date, pendingReceivedBefore?: Date): Promise<number> {
    return this.writer.write(async (tx) => {
      const res = await tx
        .updateTable('twm_in_recipients')
        .set({ state: 'expired', next_attempt_at: null, updated_at: now.getTime() })
        .where('state', 'in', [...EXPIRABLE])
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('twm_in_notices as n')
              .select('n.id')
              .whereRef('n.sender_domain', '=', 'twm_in_recipients.sender_domain')
              .whereRef('n.id', '=', 'twm_in_recipients.notice_id')
              .where((w) =>
                pendingReceivedBefore === undefined
                  ? w('n.expires_at', '<=', now.getTime())
                  : w.or([
                      w('n.expires_at', '<=', now.getTime()),
                      // The pending hold (12.7): a contact request's notice is kept at most this long.
                      w.and([w('twm_in_recipients.state', '=', 'pending'), w('n.received_at', '<=', pendingReceivedBefore.getTime())]),
                    ]),
              ),
          ),
        )
        .executeTakeFirst();
      return num(res.numUpdatedRows);
    });
  }

  async countPending(userId: number, sender: string): Promise<{ fromSender: number; total: number }> {
    // Two counts, each on its own index: the user's (twm_in_recipients_user, no join) and the
    // sender's (twm_in_notices_from, migration 0018). One join over every pending row of the user
    // made each stranger's notice cost in proportion to the strangers before it.
    const total = await countPendingTotal(this.s, userId);
    return { fromSender: await this.countPendingFrom(userId, sender), total: num(total) };
  }

  async countPendingFrom(userId: number, sender: string): Promise<number> {
    return num(await countPendingFrom(this.s, userId, sender));
  }

  /** Returns the number of notices deleted. */
  async prune(olderThan: Date): Promise<number> {
    return this.s.db.transaction().execute(async (tx) => {
      // Rows go with their notice (ON DELETE CASCADE).
      const res = await tx
        .deleteFrom('twm_in_notices')
        .where('expires_at', '<', olderThan.getTime())
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('twm_in_recipients as r')
                .select('r.rcpt')
                .whereRef('r.sender_domain', '=', 'twm_in_notices.sender_domain')
                .whereRef('r.notice_id', '=', 'twm_in_notices.id')
                .where('r.state', 'not in', FINAL_STATES),
            ),
          ),
        )
        .executeTakeFirst();
      return num(res.numDeletedRows);
    });
  }
}

const conflictOf = (notice: TwmInNotice) => new StoreConflictError(`The TWM notice ${notice.id} from ${notice.senderDomain} is recorded already`);

/** A joined row (all notice columns, then the recipient's) split back into its two halves. */
function splitRow(row: NoticeRow & Omit<RecipientRow, 'sender_domain'>): Row {
  return { notice: toNotice(row), recipient: toRecipient({ ...row, sender_domain: row.sender_domain }) };
}
