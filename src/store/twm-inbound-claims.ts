/**
 * Claims on the recipient's TWM work rows (`scheduled`: a fetch is due,
 * `receipt-due`: a receipt is due), as for the queue (queue-claims.ts):
 * one conditional UPDATE whose CTE picks the oldest due, free rows once
 * (FOR UPDATE SKIP LOCKED on PostgreSQL; claimQuery says why a CTE), extended to every due, free row
 * of the notices it picked, so that one process does one notice's fetch for
 * all its recipients. Not fsynced on SQLite: a lost claim frees the rows.
 */
import { type ExpressionBuilder, type Kysely, sql } from 'kysely';
import type { Database, Dialect } from './schema.ts';
import type { Lease } from './types.ts';
import { unsyncedWrite } from './lease-repository.ts';
import { chunks, type Db } from './db-util.ts';
import { preparedOf, type SlotOf } from './prepared.ts';

const DUE = ['scheduled', 'receipt-due'] as const;

/** Claims; returns the claimed rows as `senderDomain id rcpt` keys. */
export async function claimTwmRows(s: Db, now: Date, limit: number, lease: Lease): Promise<Set<string>> {
  if (limit <= 0) return new Set();
  return unsyncedWrite(s, async (db) => {
    // Prepared (prepared.ts): the fetch worker claims once per kick, i.e. about once per notice
    // under load, and kysely's build and compile of this statement was most of the claim's CPU.
    const values = [now.getTime(), lease.owner, lease.until.getTime(), limit, ...DUE];
    const rows = await preparedOf(s.dialect).run(db, 'twmIn.claim', values, (v) => claimQuery(db, s.dialect, v));
    return new Set(rows.map((r) => `${r.sender_domain} ${r.notice_id} ${r.rcpt}`));
  });
}

/**
 * The claim's statement (slots: at, owner, until, limit, then the due states). The rows are
 * picked in a MATERIALIZED CTE, evaluated once: as `(sender_domain, notice_id) IN (subquery)`,
 * PostgreSQL may plan a nested-loop semi join that runs the subquery again for every candidate
 * row, and each run's FOR UPDATE SKIP LOCKED passes over the rows this statement already
 * updated and picks the next ones: a claim of one row took every due notice
 * (claims-nested-loop.test.ts).
 */
export function claimQuery(db: Kysely<Database>, dialect: Dialect, v: SlotOf) {
  const due = DUE.map((_, i) => v<(typeof DUE)[number]>(4 + i));
  const free = (eb: ExpressionBuilder<Database, 'twm_in_recipients'>) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', v<number>(0))]);
  return db
    .with(
      (cte) => cte('picked').materialized(),
      () => {
        const pick = db
          .selectFrom('twm_in_recipients')
          .select(['sender_domain', 'notice_id'])
          .where('state', 'in', due)
          .where('next_attempt_at', '<=', v<number>(0))
          .where(free)
          .orderBy('next_attempt_at')
          .orderBy('sender_domain')
          .orderBy('notice_id')
          .limit(v<number>(3));
        return dialect === 'postgres' ? pick.forUpdate().skipLocked() : pick;
      },
    )
    .updateTable('twm_in_recipients')
    .set({ lease_owner: v<string>(1), lease_until: v<number>(2) })
    .where('state', 'in', due)
    .where('next_attempt_at', '<=', v<number>(0))
    .where(free)
    .where((eb) => eb(eb.refTuple('sender_domain', 'notice_id'), 'in', eb.selectFrom('picked').select(['picked.sender_domain', 'picked.notice_id']).$asTuple('sender_domain', 'notice_id')))
    .returning(['sender_domain', 'notice_id', 'rcpt']);
}

/** Notices per statement of claimedTwmRows, and the sizes its lists are padded to (few prepared shapes). */
const NOTICES_PER_STATEMENT = 64;
const padTo = (n: number) => 2 ** Math.ceil(Math.log2(n));

/**
 * The rows a claim of `lease` holds on `notices` (`[senderDomain, id]`, the
 * claim's own), each with its notice, in claim order (next attempt, notice,
 * recipient). Prepared, as the claim itself. The notices are a row value IN a
 * VALUES list, so SQLite searches the primary key (sender_domain, notice_id)
 * whatever its statistics: by the lease alone (no index) it read every row of
 * the table, delivered ones included, on every claim.
 */
export async function claimedTwmRows(s: Db, notices: ReadonlyArray<readonly [string, string]>, lease: Lease) {
  const { db } = s;
  const out = [];
  for (const part of chunks(notices, NOTICES_PER_STATEMENT)) {
    // Padded with the last notice (a repeat in IN changes nothing): a handful of shapes, not one per count.
    const padded = [...part, ...Array.from({ length: padTo(part.length) - part.length }, () => part[part.length - 1] as readonly [string, string])];
    const values = [lease.owner, lease.until.getTime(), ...padded.flat()];
    out.push(...(await preparedOf(s.dialect).run(db, `twmIn.claimed:${padded.length}`, values, (v) => claimedQuery(s, padded.length, v))));
  }
  if (notices.length > NOTICES_PER_STATEMENT) out.sort(claimOrder);
  return out;
}

type ClaimKey = { next_attempt_at: number | null; sender_domain: string; notice_id: string; rcpt: string };

function claimOrder(a: ClaimKey, b: ClaimKey): number {
  const byTime = (a.next_attempt_at ?? 0) - (b.next_attempt_at ?? 0);
  if (byTime !== 0) return byTime;
  for (const k of ['sender_domain', 'notice_id', 'rcpt'] as const) if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  return 0;
}

/** The query of claimedTwmRows for `count` notices (slots: owner, until, then domain and id of each notice). */
export function claimedQuery(s: Pick<Db, 'db'>, count: number, v: SlotOf) {
  const pairs = Array.from({ length: count }, (_, i) => sql`(${v<string>(2 + 2 * i)}, ${v<string>(3 + 2 * i)})`);
  return s.db
    .selectFrom('twm_in_recipients as r')
    .innerJoin('twm_in_notices as n', (j) => j.onRef('n.sender_domain', '=', 'r.sender_domain').onRef('n.id', '=', 'r.notice_id'))
    .selectAll('n')
    .select(['r.notice_id', 'r.rcpt', 'r.user_id', 'r.state', 'r.receipt', 'r.receipt_error', 'r.next_attempt_at', 'r.attempts', 'r.last_error', 'r.updated_at'])
    .where(sql<boolean>`(${sql.ref('r.sender_domain')}, ${sql.ref('r.notice_id')}) in (values ${sql.join(pairs)})`)
    .where('r.lease_owner', '=', v<string>(0))
    .where('r.lease_until', '=', v<number>(1))
    .orderBy('r.next_attempt_at')
    .orderBy('r.sender_domain')
    .orderBy('r.notice_id')
    .orderBy('r.rcpt');
}

/** `senderDomain id` as its two parts (a domain has no space). */
function splitKey(key: string): [string, string] {
  const at = key.indexOf(' ');
  return [key.slice(0, at), key.slice(at + 1)];
}

/** Extends the owner's leases on the rows of `notices` (`senderDomain id`); returns how many rows it holds. */
export async function renewTwmRows(s: Db, notices: readonly string[], lease: Lease): Promise<number> {
  if (notices.length === 0) return 0;
  return unsyncedWrite(s, async (db) => {
    let held = 0;
    for (const part of chunks([...notices], 500)) {
      const res = await renewQuery(db, part, lease).executeTakeFirst();
      held += Number(res.numUpdatedRows);
    }
    return held;
  });
}

/** The statement of renewTwmRows for `notices` (`senderDomain id`). */
export function renewQuery(db: Kysely<Database>, notices: readonly string[], lease: Lease) {
  // A row value, so that SQLite searches the primary key; `sender_domain || ' ' || notice_id` read the whole table.
  const pairs = notices.map((k) => splitKey(k)).map(([domain, id]) => sql`(${domain}, ${id})`);
  return db
    .updateTable('twm_in_recipients')
    .set({ lease_until: lease.until.getTime() })
    .where('lease_owner', '=', lease.owner)
    .where(sql<boolean>`(sender_domain, notice_id) in (values ${sql.join(pairs)})`);
}
