/**
 * The Screener's order, stored: each contact request keeps `known` (whether
 * anyone on this server allows its sender's address or domain) and `rank`
 * (core/reputation.ts's score, in SQL; services/screener-page.test.ts holds
 * the two equal), so a Screener page is one query on the index
 * (user_id, status, rank, last_seen, id) of migration 0021, whatever its
 * depth, with nothing looked up per request when a page is shown.
 *
 * Both are written where their inputs change, in the same transaction:
 * - a request is created or counted (request-upsert.ts): rankRequests;
 * - an allow entry of kind address or domain appears or goes, on any
 *   account (card-writes.ts writes and deletes every card): refreshRanks over
 *   the requests whose sender or sender_domain is that value.
 *
 * Known limit: on PostgreSQL, a request created in a transaction that runs
 * concurrently with another account's allow entry for the same sender may
 * miss that entry (neither transaction sees the other's new row); the next
 * attempt of the sender or any change of that entry ranks it again.
 */
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { ContactEntry } from '../core/types.ts';
import type { Database, Dialect } from './schema.ts';
import { chunks, unique } from './db-util.ts';
import { preparedOf } from './prepared.ts';

export interface RankProbe {
  kind: 'address' | 'domain';
  value: string;
}

const PER_STATEMENT = 500;

/** 'address', 'domain' or null: someone on this server allows the sender, or its domain (exact match). */
const KNOWN: RawBuilder<'address' | 'domain' | null> = sql`(case
  when exists (select 1 from contact_entries e where e.kind = 'address' and e.value = contact_requests.sender and e.action = 'allow') then 'address'
  when contact_requests.sender_domain is not null
    and exists (select 1 from contact_entries e where e.kind = 'domain' and e.value = contact_requests.sender_domain and e.action = 'allow') then 'domain'
  else null end)`;

/**
 * core/reputation.ts reputationOf's score over the columns of contact_requests,
 * with `known` given. One text for both dialects: floor(x + 0.5) is JS's
 * Math.round on both (PostgreSQL's round of a double rounds half to even).
 */
function rankOf(known: RawBuilder<unknown>): RawBuilder<number> {
  const atMost50 = sql`(case when contact_requests.spam_score * 5 >= 50 then 50 else floor(contact_requests.spam_score * 5 + 0.5) end)`;
  return sql<number>`cast(
    (case when ${known} is not null then 40 else 0 end)
    + (case when contact_requests.auth_domain is not null then 30 else -10 end)
    + (case
        when lower(contact_requests.dmarc) = 'pass' and lower(contact_requests.dmarc_policy) = 'reject' then 20
        when lower(contact_requests.dmarc) = 'pass' and lower(contact_requests.dmarc_policy) = 'quarantine' then 10
        when lower(contact_requests.dmarc) = 'fail' and lower(contact_requests.dmarc_policy) = 'reject' then -40
        when lower(contact_requests.dmarc) = 'fail' and lower(contact_requests.dmarc_policy) = 'quarantine' then -30
        when lower(contact_requests.dmarc) = 'fail' then -10
        else 0 end)
    + (case when contact_requests.spam_score is null then 0 when contact_requests.spam_score < 0 then 5 else -${atMost50} end)
    + (case when contact_requests.likely_spam = 1 then -50 else 0 end)
    as integer)`;
}

type AnyDb = Kysely<Database> | Transaction<Database>;

/** Sets known and rank of the requests matching `where` (one UPDATE; the subqueries run once per row). */
async function rankWhere(db: AnyDb, where: RawBuilder<boolean>): Promise<void> {
  // Raw SQL: one text with the correlated subqueries, read as it runs.
  await sql`update contact_requests set known = ${KNOWN}, rank = ${rankOf(KNOWN)} where ${where}`.execute(db);
}

/**
 * Ranks these requests again from their columns (after an upsert changed them). Prepared
 * (prepared.ts): every batch of accepted mail from strangers runs it, and this raw text was
 * built and compiled again on each run.
 */
export async function rankRequests(db: AnyDb, dialect: Dialect, ids: readonly number[]): Promise<void> {
  for (const part of chunks(unique([...ids]), PER_STATEMENT)) {
    await preparedOf(dialect).run(db, `requests.rank:${part.length}`, part, (v) => {
      const query = sql`update contact_requests set known = ${KNOWN}, rank = ${rankOf(KNOWN)} where id in (${sql.join(part.map((_, i) => v<number>(i)))})`;
      return { compile: () => query.compile(db) };
    });
  }
}

/** Every request of the server ranked again (migration 0021 fills the new columns with it). */
export async function rankAllRequests(db: Kysely<unknown>): Promise<void> {
  await sql`update contact_requests set known = ${KNOWN}, rank = ${rankOf(KNOWN)}`.execute(db);
}

/** The address and domain allow entries among these: the ones that count for "known on this server". */
export function rankProbes(entries: ReadonlyArray<Pick<ContactEntry, 'kind' | 'value' | 'action'>>): RankProbe[] {
  return entries.flatMap((e) => (e.action === 'allow' && (e.kind === 'address' || e.kind === 'domain') ? [{ kind: e.kind, value: e.value }] : []));
}

/** The allow entries of these cards, read before the cards are deleted or rewritten. */
export async function rankProbesOfCards(tx: Transaction<Database>, contactIds: readonly number[]): Promise<RankProbe[]> {
  const out: RankProbe[] = [];
  for (const part of chunks(unique([...contactIds]), PER_STATEMENT)) {
    const rows = await tx
      .selectFrom('contact_entries')
      .select(['kind', 'value', 'action'])
      .where('contact_id', 'in', part)
      .where('action', '=', 'allow')
      .where('kind', 'in', ['address', 'domain'])
      .execute();
    out.push(...rankProbes(rows));
  }
  return out;
}

/**
 * Ranks again, on every account, the requests an added or removed allow
 * entry bears on: those from that address, or from that domain. Runs after
 * the entries changed, in the same transaction.
 */
export async function refreshRanks(tx: Transaction<Database>, probes: readonly RankProbe[]): Promise<void> {
  const of = (kind: RankProbe['kind']) => unique(probes.filter((p) => p.kind === kind).map((p) => p.value));
  for (const part of chunks(of('address'), PER_STATEMENT)) await rankWhere(tx, sql<boolean>`sender in (${sql.join(part)})`);
  for (const part of chunks(of('domain'), PER_STATEMENT)) await rankWhere(tx, sql<boolean>`sender_domain in (${sql.join(part)})`);
}
