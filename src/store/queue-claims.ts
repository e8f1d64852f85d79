/**
 * Claims on queue entries (migration 0010): which process delivers which
 * recipient now. See QueueRepository.claim/renew/release (types.ts).
 *
 * One UPDATE claims: its subquery picks the oldest due, free entries and the
 * outer condition checks again that they are free, so two processes never
 * both claim one entry. SQLite runs one writer at a time; on PostgreSQL the
 * subquery locks its rows FOR UPDATE SKIP LOCKED, so concurrent claimers
 * take different entries instead of queueing behind each other. Claims are
 * written without fsync (lease-repository.ts unsyncedWrite): a claim lost
 * to a power failure only frees the entry.
 */
import { sql } from 'kysely';
import type { Lease } from './types.ts';
import { unsyncedWrite } from './lease-repository.ts';
import { chunks, type Db } from './db-util.ts';

export async function claimQueueEntries(s: Db, now: Date, limit: number, lease: Lease, excludeDomains: readonly string[], excludeIds: readonly number[] = []): Promise<number[]> {
  if (limit <= 0) return [];
  const at = now.getTime();
  return unsyncedWrite(s, async (db) => {
    let pick = db
      .selectFrom('queue_recipients')
      .select('id')
      .where('state', 'in', ['scheduled', 'deferred'])
      .where('next_attempt_at', '<=', at)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]));
    for (const domain of excludeDomains) {
      // lower() and LIKE ... ESCAPE behave alike on both dialects for ASCII; a
      // non-ASCII domain that slips through is only a wasted claim, released at once.
      const pattern = `%@${domain.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}`;
      pick = pick.where(sql<boolean>`lower(recipient) not like ${pattern} escape '\\'`);
    }
    // The caller's own entries in flight (at most its active set, so one list is within the parameter limits).
    if (excludeIds.length > 0) pick = pick.where('id', 'not in', [...excludeIds]);
    pick = pick.orderBy('next_attempt_at').orderBy('id').limit(limit);
    if (s.dialect === 'postgres') pick = pick.forUpdate().skipLocked();
    const rows = await db
      .updateTable('queue_recipients')
      .set({ lease_owner: lease.owner, lease_until: lease.until.getTime() })
      .where('id', 'in', pick)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]))
      .returning('id')
      .execute();
    return rows.map((r) => r.id);
  });
}

export async function renewQueueLeases(s: Db, ids: readonly number[], lease: Lease): Promise<number[]> {
  if (ids.length === 0) return [];
  return unsyncedWrite(s, async (db) => {
    const held: number[] = [];
    for (const part of chunks([...ids], 500)) {
      const rows = await db
        .updateTable('queue_recipients')
        .set({ lease_until: lease.until.getTime() })
        .where('id', 'in', part)
        .where('lease_owner', '=', lease.owner)
        .returning('id')
        .execute();
      held.push(...rows.map((r) => r.id));
    }
    return held;
  });
}

export async function releaseQueueLeases(s: Db, ids: readonly number[], owner: string): Promise<void> {
  if (ids.length === 0) return;
  await unsyncedWrite(s, async (db) => {
    for (const part of chunks([...ids], 500)) {
      await db.updateTable('queue_recipients').set({ lease_owner: null, lease_until: null }).where('id', 'in', part).where('lease_owner', '=', owner).execute();
    }
  });
}
