/**
 * The Screener's requests: one row per (user, sender), created and counted by
 * messages.deliver() and twmIn.record() (both through request-upsert.ts);
 * read, decided and forgotten here.
 */
import { sql, type ExpressionBuilder, type Selectable } from 'kysely';
import type { ContactRequest, ContactRequestStatus } from '../core/types.ts';
import type { ContactRequestRepository, RequestPageKey } from './types.ts';
import type { ContactRequestsTable, Database } from './schema.ts';
import { chunks, num, toDate, unique, type Db } from './db-util.ts';

const SENDERS_PER_QUERY = 1000;

/** Messages held for a request: in the Screener mailbox and linked to it. */
function heldCount(eb: ExpressionBuilder<Database, 'contact_requests'>) {
  return eb
    .selectFrom('messages as m')
    .innerJoin('mailboxes as mb', 'mb.id', 'm.mailbox_id')
    .select((e) => e.fn.countAll().as('n'))
    .whereRef('m.request_id', '=', 'contact_requests.id')
    .where('mb.name', '=', 'Screener')
    .as('held');
}

/** Escapes LIKE wildcards so a domain is matched literally. */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export class KyselyContactRequestRepository implements ContactRequestRepository {
  constructor(private readonly s: Db) {}

  private select(userId: number) {
    return this.s.db
      .selectFrom('contact_requests')
      .selectAll('contact_requests')
      .select((eb) => heldCount(eb))
      .where('contact_requests.user_id', '=', userId);
  }

  /** Most recent first. */
  async list(userId: number, options: { status?: ContactRequestStatus } = {}): Promise<ContactRequest[]> {
    let q = this.select(userId);
    if (options.status !== undefined) q = q.where('contact_requests.status', '=', options.status);
    const rows = await q
      .orderBy('contact_requests.last_seen', 'desc')
      .orderBy('contact_requests.id', 'desc')
      .execute();
    return rows.map(toRequest);
  }

  /**
   * One key page of pending requests in the Screener's order (rank, then
   * most recent): the rank is stored with each request (request-rank.ts), so
   * a page is one query on the index (user_id, status, rank, last_seen, id)
   * with LIMIT, whatever its depth. `after` is the key of the last row of
   * the previous page.
   */
  async pendingPage(
    userId: number,
    options: { after?: RequestPageKey | undefined; limit: number; likelySpam: boolean },
  ): Promise<Array<ContactRequest & { rank: number; known: 'address' | 'domain' | null }>> {
    const after = options.after;
    const rows = await this.select(userId)
      .select(['contact_requests.rank', 'contact_requests.known'])
      .where('contact_requests.status', '=', 'pending')
      .$if(!options.likelySpam, (w) => w.where('contact_requests.likely_spam', '=', 0))
      // A row value: both planners read it as a range of the index, where an OR of three terms would filter.
      .$if(after !== undefined, (w) =>
        w.where(
          sql<boolean>`(contact_requests.rank, contact_requests.last_seen, contact_requests.id) < (${after!.rank}, ${after!.lastSeen.getTime()}, ${after!.id})`,
        ),
      )
      .orderBy('contact_requests.rank', 'desc')
      .orderBy('contact_requests.last_seen', 'desc')
      .orderBy('contact_requests.id', 'desc')
      .limit(options.limit)
      .execute();
    return rows.map((r) => ({ ...toRequest(r), rank: num(r.rank), known: r.known }));
  }

  /** How many requests are pending: those shown by default, and those judged likely spam. */
  async pendingCounts(userId: number): Promise<{ listed: number; likelySpam: number }> {
    const rows = await this.s.db
      .selectFrom('contact_requests')
      .select(['likely_spam', (eb) => eb.fn.countAll().as('n')])
      .where('user_id', '=', userId)
      .where('status', '=', 'pending')
      .groupBy('likely_spam')
      .execute();
    const of = (v: number) => num(rows.find((r) => num(r.likely_spam) === v)?.n ?? 0);
    return { listed: of(0), likelySpam: of(1) };
  }

  async get(userId: number, sender: string): Promise<ContactRequest | undefined> {
    const row = await this.select(userId).where('contact_requests.sender', '=', sender.toLowerCase()).executeTakeFirst();
    return row && toRequest(row);
  }

  async heldMessageIds(userId: number, senders: string[]): Promise<number[]> {
    const ids: number[] = [];
    for (const part of chunks(unique(senders.map((s) => s.toLowerCase())), SENDERS_PER_QUERY)) {
      const rows = await heldQuery(this.s, userId, part).execute();
      ids.push(...rows.map((r) => r.id));
    }
    return ids.sort((a, b) => a - b);
  }

  /** Senders of pending requests whose address ends with `@domain` (subdomains are not included). */
  async sendersOfDomain(userId: number, domain: string): Promise<string[]> {
    const suffix = `@${domain.toLowerCase()}`;
    const rows = await this.s.db
      .selectFrom('contact_requests')
      .select('sender')
      .where('user_id', '=', userId)
      .where('status', '=', 'pending')
      .where(sql<boolean>`${sql.ref('sender')} like ${`%${likeLiteral(suffix)}`} escape '\\'`)
      .orderBy('sender')
      .execute();
    // LIKE narrows the rows; endsWith makes the match exact on both dialects
    // (SQLite's LIKE ignores ASCII case).
    return rows.map((r) => r.sender).filter((s) => s.endsWith(suffix));
  }

  async setStatus(userId: number, senders: string[], status: ContactRequestStatus, from?: readonly ContactRequestStatus[]): Promise<number> {
    if (from?.length === 0) return 0;
    let n = 0;
    for (const part of chunks(unique(senders.map((s) => s.toLowerCase())), SENDERS_PER_QUERY)) {
      let q = this.s.db.updateTable('contact_requests').set({ status }).where('user_id', '=', userId).where('sender', 'in', part);
      if (from) q = q.where('status', 'in', [...from]);
      const res = await q.executeTakeFirst();
      n += num(res.numUpdatedRows);
    }
    return n;
  }

  /** Messages still linked to a removed request keep existing; their link is cleared (ON DELETE SET NULL). */
  async remove(userId: number, senders: string[]): Promise<number> {
    let n = 0;
    for (const part of chunks(unique(senders.map((s) => s.toLowerCase())), SENDERS_PER_QUERY)) {
      const res = await this.s.db.deleteFrom('contact_requests').where('user_id', '=', userId).where('sender', 'in', part).executeTakeFirst();
      n += num(res.numDeletedRows);
    }
    return n;
  }
}

type RequestRow = Selectable<ContactRequestsTable> & { held: number | bigint | string | null };

function toRequest(row: RequestRow): ContactRequest {
  return {
    id: row.id,
    userId: row.user_id,
    sender: row.sender,
    authDomain: row.auth_domain,
    firstSeen: toDate(row.first_seen),
    lastSeen: toDate(row.last_seen),
    count: num(row.count),
    sampleSubject: row.sample_subject,
    intro: row.intro,
    status: row.status,
    held: num(row.held),
    spamScore: row.spam_score === null ? null : Number(row.spam_score),
    likelySpam: num(row.likely_spam) === 1,
    dmarc: row.dmarc === null ? null : { result: row.dmarc, policy: row.dmarc_policy },
  };
}

/**
 * The query of heldMessageIds: the requests by (user_id, sender), then their messages by
 * request_id. The unary `+` (SQLite only: PostgreSQL plans with its own statistics) keeps the
 * index (user_id, received_at) of messages out: in a store never ANALYZEd SQLite chose it as
 * soon as there were two senders, reading every message of the user.
 */
export function heldQuery(s: Pick<Db, 'db' | 'dialect'>, userId: number, senders: readonly string[]) {
  const user = s.dialect === 'sqlite' ? sql<number>`+${sql.ref('m.user_id')}` : sql<number>`${sql.ref('m.user_id')}`;
  return s.db
    .selectFrom('messages as m')
    .innerJoin('contact_requests as r', 'r.id', 'm.request_id')
    .innerJoin('mailboxes as mb', 'mb.id', 'm.mailbox_id')
    .select('m.id')
    .where(user, '=', userId)
    .where('r.user_id', '=', userId)
    .where('mb.name', '=', 'Screener')
    .where('r.sender', 'in', senders);
}
