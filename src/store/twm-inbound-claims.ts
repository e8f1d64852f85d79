/**
 * Claims on the recipient's TWM work rows (`scheduled`: a fetch is due,
 * `receipt-due`: a receipt is due), as for the queue (queue-claims.ts):
 * one conditional UPDATE whose subquery picks the oldest due, free rows
 * (FOR UPDATE SKIP LOCKED on PostgreSQL), extended to every due, free row
 * of the notices it picked, so that one process does one notice's fetch for
 * all its recipients. Not fsynced on SQLite: a lost claim frees the rows.
 */
import { sql } from 'kysely';
import type { Lease } from './types.ts';
import { unsyncedWrite } from './lease-repository.ts';
import { chunks, type Db } from './db-util.ts';
import { preparedOf } from './prepared.ts';

const DUE = ['scheduled', 'receipt-due'] as const;

/** Claims; returns the claimed rows as `senderDomain id rcpt` keys. */
export async function claimTwmRows(s: Db, now: Date, limit: number, lease: Lease): Promise<Set<string>> {
  if (limit <= 0) return new Set();
  const at = now.getTime();
  const pg = s.dialect === 'postgres';
  return unsyncedWrite(s, async (db) => {
    // Prepared (prepared.ts): the fetch worker claims once per kick, i.e. about once per notice
    // under load, and kysely's build and compile of this statement was most of the claim's CPU.
    const rows = await preparedOf(s.dialect).run(db, 'twmIn.claim', [at, lease.owner, lease.until.getTime(), limit, ...DUE], (v) => {
      const due = DUE.map((_, i) => v<(typeof DUE)[number]>(4 + i));
      let pick = db
        .selectFrom('twm_in_recipients')
        .select(['sender_domain', 'notice_id'])
        .where('state', 'in', due)
        .where('next_attempt_at', '<=', v<number>(0))
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', v<number>(0))]))
        .orderBy('next_attempt_at')
        .orderBy('sender_domain')
        .orderBy('notice_id')
        .limit(v<number>(3));
      if (pg) pick = pick.forUpdate().skipLocked();
      return db
        .updateTable('twm_in_recipients')
        .set({ lease_owner: v<string>(1), lease_until: v<number>(2) })
        .where('state', 'in', due)
        .where('next_attempt_at', '<=', v<number>(0))
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', v<number>(0))]))
        .where(sql<boolean>`(sender_domain, notice_id) in (${pick})`)
        .returning(['sender_domain', 'notice_id', 'rcpt']);
    });
    return new Set(rows.map((r) => `${r.sender_domain} ${r.notice_id} ${r.rcpt}`));
  });
}

/**
 * The rows a claim of `lease` holds, each with its notice, in claim order
 * (next attempt, notice, recipient). Prepared, as the claim itself.
 */
export function claimedTwmRows(s: Db, lease: Lease) {
  const { db } = s;
  return preparedOf(s.dialect).run(db, 'twmIn.claimed', [lease.owner, lease.until.getTime()], (v) =>
    db
      .selectFrom('twm_in_recipients as r')
      .innerJoin('twm_in_notices as n', (j) => j.onRef('n.sender_domain', '=', 'r.sender_domain').onRef('n.id', '=', 'r.notice_id'))
      .selectAll('n')
      .select(['r.notice_id', 'r.rcpt', 'r.user_id', 'r.state', 'r.receipt', 'r.receipt_error', 'r.next_attempt_at', 'r.attempts', 'r.last_error', 'r.updated_at'])
      .where('r.lease_owner', '=', v<string>(0))
      .where('r.lease_until', '=', v<number>(1))
      .orderBy('r.next_attempt_at')
      .orderBy('r.sender_domain')
      .orderBy('r.notice_id')
      .orderBy('r.rcpt'),
  );
}

/** Extends the owner's leases on the rows of `notices` (`senderDomain id`); returns how many rows it holds. */
export async function renewTwmRows(s: Db, notices: readonly string[], lease: Lease): Promise<number> {
  if (notices.length === 0) return 0;
  return unsyncedWrite(s, async (db) => {
    let held = 0;
    for (const part of chunks([...notices], 500)) {
      const res = await db
        .updateTable('twm_in_recipients')
        .set({ lease_until: lease.until.getTime() })
        .where('lease_owner', '=', lease.owner)
        .where(sql<string>`sender_domain || ' ' || notice_id`, 'in', part)
        .executeTakeFirst();
      held += Number(res.numUpdatedRows);
    }
    return held;
  });
}
