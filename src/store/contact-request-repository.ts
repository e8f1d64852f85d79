/**
 * The Screener's requests: one row per (user, sender), created and counted by
 * messages.deliver() and twmIn.record() (both through request-upsert.ts);
 * read, decided and forgotten here.
 */
import { sql, type ExpressionBuilder, type RawBuilder, type Selectable } from 'kysely';
import type { ContactRequest, ContactRequestStatus } from '../core/types.ts';
import type { ContactRequestRepository, RequestPageKey } from './types.ts';
import type { ContactRequestsTable, Database, Dialect } from './schema.ts';
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
   * most recent): the rank is computed here in SQL with the weights of
   * core/reputation.ts (a test holds the two equal), so a page is one query
   * with LIMIT whatever its depth, never an OFFSET over a list built in
   * memory. `after` is the key of the last row of the previous page.
   */
  async pendingPage(
    userId: number,
    options: { after?: RequestPageKey | undefined; limit: number; likelySpam: boolean },
  ): Promise<Array<ContactRequest & { rank: number }>> {
    // A materialized CTE: the rank (two index lookups per request) is computed
    // once per row; inlined, SQLite would compute it again in each term of
    // the key condition and in the ORDER BY.
    let q = this.s.db
      .with(
        (cte) => cte('k').materialized(),
        (db) =>
          db
            .selectFrom('contact_requests as r')
            .select(['r.id', 'r.last_seen'])
            .select(rankExpression(this.s.dialect).as('rank'))
            .where('r.user_id', '=', userId)
            .where('r.status', '=', 'pending')
            .$if(!options.likelySpam, (w) => w.where('r.likely_spam', '=', 0)),
      )
      .selectFrom('k')
      .select(['k.id', 'k.rank']);
    const after = options.after;
    if (after) {
      const t = after.lastSeen.getTime();
      q = q.where((eb) =>
        eb.or([
          eb('k.rank', '<', after.rank),
          eb.and([eb('k.rank', '=', after.rank), eb('k.last_seen', '<', t)]),
          eb.and([eb('k.rank', '=', after.rank), eb('k.last_seen', '=', t), eb('k.id', '<', after.id)]),
        ]),
      );
    }
    const keys = await q.orderBy('k.rank', 'desc').orderBy('k.last_seen', 'desc').orderBy('k.id', 'desc').limit(options.limit).execute();
    if (keys.length === 0) return [];
    const rows = await this.select(userId).where('contact_requests.id', 'in', keys.map((k) => k.id)).execute();
    const byId = new Map(rows.map((r) => [r.id, toRequest(r)]));
    return keys.flatMap((k) => {
      const r = byId.get(k.id);
      return r ? [{ ...r, rank: num(k.rank) }] : [];
    });
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
      const rows = await this.s.db
        .selectFrom('messages as m')
        .innerJoin('contact_requests as r', 'r.id', 'm.request_id')
        .innerJoin('mailboxes as mb', 'mb.id', 'm.mailbox_id')
        .select('m.id')
        .where('m.user_id', '=', userId)
        .where('r.user_id', '=', userId)
        .where('mb.name', '=', 'Screener')
        .where('r.sender', 'in', part)
        .execute();
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

/**
 * The reputation score of core/reputation.ts as SQL over `contact_requests
 * as r` (src/store/request-rank.test.ts compares the two over every
 * combination of facts). "Known on this server": any account allows the
 * sender's address or its domain (the part after the last @), looked up on
 * the index contact_entries (kind, value) of migration 0007.
 */
function rankExpression(dialect: Dialect): RawBuilder<number> {
  const pg = dialect === 'postgres';
  // After the last @ (core/address.ts domainOf). SQLite has no "last index of": rtrim strips the
  // characters that are not @ from the end; the common case of one @ takes the cheaper instr path
  // (a quarter of this query's time at 10,000 requests, bench/web-screener.ts).
  const domain = pg
    ? sql`substring(r.sender from '[^@]*$')`
    : sql`(case when instr(substr(r.sender, instr(r.sender, '@') + 1), '@') = 0 then substr(r.sender, instr(r.sender, '@') + 1)
        else substr(r.sender, length(rtrim(r.sender, replace(r.sender, '@', ''))) + 1) end)`;
  const atMost50 = pg ? sql`least(50, round((r.spam_score * 5)::numeric))` : sql`min(50, round(r.spam_score * 5))`;
  return sql<number>`cast(
    (case when exists (select 1 from contact_entries e where e.kind = 'address' and e.value = r.sender and e.action = 'allow')
      or (r.sender like '%@%' and exists (select 1 from contact_entries e where e.kind = 'domain' and e.value = ${domain} and e.action = 'allow'))
      then 40 else 0 end)
    + (case when r.auth_domain is not null then 30 else -10 end)
    + (case
        when lower(r.dmarc) = 'pass' and lower(r.dmarc_policy) = 'reject' then 20
        when lower(r.dmarc) = 'pass' and lower(r.dmarc_policy) = 'quarantine' then 10
        when lower(r.dmarc) = 'fail' and lower(r.dmarc_policy) = 'reject' then -40
        when lower(r.dmarc) = 'fail' and lower(r.dmarc_policy) = 'quarantine' then -30
        when lower(r.dmarc) = 'fail' then -10
        else 0 end)
    + (case when r.spam_score is null then 0 when r.spam_score < 0 then 5 else -${atMost50} end)
    + (case when r.likely_spam = 1 then -50 else 0 end)
    as integer)`;
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
