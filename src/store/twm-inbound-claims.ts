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

const DUE = ['scheduled', 'receipt-due'] as const;

/** Claims; returns the claimed rows as `senderDomain id rcpt` keys. */
export async function claimTwmRows(s: Db, now: Date, limit: number, lease: Lease): Promise<Set<string>> {
  if (limit <= 0) return new Set();
  const at = now.getTime();
  return unsyncedWrite(s, async (db) => {
    let pick = db
      .selectFrom('twm_in_recipients')
      .select(['sender_domain', 'notice_id'])
      .where('state', 'in', [...DUE])
      .where('next_attempt_at', '<=', at)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]))
      .orderBy('next_attempt_at')
      .orderBy('sender_domain')
      .orderBy('notice_id')
      .limit(limit);
    if (s.dialect === 'postgres') pick = pick.forUpdate().skipLocked();
    const rows = await db
      .updateTable('twm_in_recipients')
      .set({ lease_owner: lease.owner, lease_until: lease.until.getTime() })
      .where('state', 'in', [...DUE])
      .where('next_attempt_at', '<=', at)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]))
      .where(sql<boolean>`(sender_domain, notice_id) in (${pick})`)
      .returning(['sender_domain', 'notice_id', 'rcpt'])
      .execute();
    return new Set(rows.map((r) => `${r.sender_domain} ${r.notice_id} ${r.rcpt}`));
  });
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
