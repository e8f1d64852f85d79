/**
 * The one way a Screener request is created or counted, shared by the SMTP
 * delivery batch (message-batch.ts) and the TWM notice record
 * (twm-inbound-repository.ts), so that both channels follow the same rules:
 * a new request is `pending`; an existing one keeps its status (a denied
 * sender stays denied), gets count + n and the latest lastSeen, keeps its
 * first known subject and the latest known intro (a null one leaves the
 * stored value alone). `auth_domain` is the domain the sender authenticated
 * as on EVERY attempt: one unauthenticated (possibly forged) attempt clears
 * it for good, because an address-book change releases held mail only for a
 * request with an auth domain (services/decisions.ts), and must never release
 * a forged message held beside a genuine one.
 */
import type { Insertable, Transaction } from 'kysely';
import { domainOf } from '../core/address.ts';
import type { DmarcFact } from '../core/types.ts';
import type { ContactRequestsTable, Database, Dialect } from './schema.ts';
import { preparedOf, type SlotOf } from './prepared.ts';
import { rankRequests } from './request-rank.ts';

/** One attempt of a sender to reach a user. */
export interface RequestAttempt {
  userId: number;
  sender: string;
  authDomain: string | null;
  subject: string | null;
  intro: string | null;
  at: Date;
  /** The spam score of this attempt, if it was scanned; the latest known one is kept. */
  spamScore?: number | null;
  /** This attempt was judged likely spam; the latest attempt's judgement is kept. */
  likelySpam?: boolean;
  /** This attempt's DMARC evaluation (SMTP only); the latest known one is kept, result and policy together. */
  dmarc?: DmarcFact | null;
}

/**
 * Upserts the request of each (user, sender) once, folding its attempts
 * together (in array order: "latest" means later in the array), and ranks
 * it for the Screener (request-rank.ts). Returns the
 * request id of each attempt, in order. Rows are written in a fixed order of
 * (user, sender) so that concurrent writers on PostgreSQL cannot deadlock.
 */
export async function upsertRequests(tx: Transaction<Database>, dialect: Dialect, attempts: readonly RequestAttempt[]): Promise<number[]> {
  const out = new Array<number>(attempts.length);
  for (const group of groupsOf(attempts)) {
    const values = valuesOf(group.map((i) => attempts[i]!));
    // Prepared (prepared.ts): a stranger's every accepted message runs it.
    const [row] = await preparedOf(dialect).run(tx, 'requests.upsert', values, (v) => upsertQuery(tx, v));
    if (!row) throw new Error('contact request upsert returned no row');
    for (const i of group) out[i] = row.id;
  }
  // The Screener's stored order (request-rank.ts), from the columns just written.
  await rankRequests(tx, dialect, out);
  return out;
}

/**
 * The request's values (REQUEST_COLUMNS order) for the attempts of one (user, sender), in one
 * pass without closures: every stranger's notice and most accepted messages run it.
 */
function valuesOf(list: readonly RequestAttempt[]): unknown[] {
  const first = list[0]!;
  let firstAt = Number.POSITIVE_INFINITY;
  let lastAt = Number.NEGATIVE_INFINITY;
  let everyAuthenticated = true;
  // "First" and "latest" known: the first, or the last, attempt whose value is not null.
  let authDomain: string | null = null;
  let subject: string | null = null;
  let subjectFound = false;
  let intro: string | null = null;
  let spamScore: number | null = null;
  let dmarc: DmarcFact | null = null;
  for (const a of list) {
    const at = a.at.getTime();
    if (at < firstAt) firstAt = at;
    if (at > lastAt) lastAt = at;
    if (a.authDomain === null) everyAuthenticated = false;
    else authDomain = a.authDomain;
    if (!subjectFound && a.subject !== null) {
      subject = a.subject;
      subjectFound = true;
    }
    if (a.intro !== null) intro = a.intro;
    if (a.spamScore !== undefined && a.spamScore !== null) spamScore = a.spamScore;
    if (a.dmarc) dmarc = a.dmarc;
  }
  return [
    first.userId,
    first.sender.toLowerCase(),
    first.sender.includes('@') ? domainOf(first.sender) : null,
    everyAuthenticated ? (authDomain ?? null) : null,
    firstAt,
    lastAt,
    list.length,
    subject ?? null,
    intro ?? null,
    spamScore,
    list[list.length - 1]!.likelySpam ? 1 : 0,
    dmarc?.result ?? null,
    dmarc?.policy ?? null,
    'pending',
  ];
}

/** The attempts' indexes grouped by (user, sender), in key order; one attempt (a stranger's notice) needs no map. */
function groupsOf(attempts: readonly RequestAttempt[]): number[][] {
  if (attempts.length === 1) return [[0]];
  const groups = new Map<string, number[]>();
  attempts.forEach((a, i) => {
    const key = `${a.userId}\n${a.sender.toLowerCase()}`;
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  });
  return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, g]) => g);
}

/** The inserted columns of a request, in the order upsertRequests lists their values. */
const REQUEST_COLUMNS = [
  'user_id',
  'sender',
  'sender_domain',
  'auth_domain',
  'first_seen',
  'last_seen',
  'count',
  'sample_subject',
  'intro',
  'spam_score',
  'likely_spam',
  'dmarc',
  'dmarc_policy',
  'status',
] as const satisfies ReadonlyArray<keyof ContactRequestsTable>;

/** The upsert of one (user, sender), every value a slot of REQUEST_COLUMNS. */
function upsertQuery(tx: Transaction<Database>, v: SlotOf) {
  return tx
    .insertInto('contact_requests')
    .values(Object.fromEntries(REQUEST_COLUMNS.map((c, i) => [c, v(i)])) as Insertable<ContactRequestsTable>)
    .onConflict((oc) =>
      oc.columns(['user_id', 'sender']).doUpdateSet((eb) => ({
        count: eb('contact_requests.count', '+', eb.ref('excluded.count')),
        last_seen: eb
          .case()
          .when('excluded.last_seen', '>', eb.ref('contact_requests.last_seen'))
          .then(eb.ref('excluded.last_seen'))
          .else(eb.ref('contact_requests.last_seen'))
          .end(),
        sample_subject: eb.fn.coalesce('contact_requests.sample_subject', 'excluded.sample_subject'),
        auth_domain: eb
          .case()
          .when(eb.or([eb('excluded.auth_domain', 'is', null), eb('contact_requests.auth_domain', 'is', null)]))
          .then(eb.lit(null))
          .else(eb.ref('excluded.auth_domain'))
          .end(),
        intro: eb.fn.coalesce('excluded.intro', 'contact_requests.intro'),
        spam_score: eb.fn.coalesce('excluded.spam_score', 'contact_requests.spam_score'),
        likely_spam: eb.ref('excluded.likely_spam'),
        // Result and policy from the same attempt: both from this batch when it evaluated DMARC.
        dmarc: eb.fn.coalesce('excluded.dmarc', 'contact_requests.dmarc'),
        dmarc_policy: eb.case().when('excluded.dmarc', 'is', null).then(eb.ref('contact_requests.dmarc_policy')).else(eb.ref('excluded.dmarc_policy')).end(),
        // status is kept: a denied sender stays denied, an approved one approved.
      })),
    )
    .returning('id');
}
