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
 * to a power failure only frees the entry. The renewal and release by id
 * serve spam learning's claims too (spam-learning-claims.ts).
 */
import type { Lease } from './types.ts';
import { unsyncedWrite } from './lease-repository.ts';
import { chunks, type Db } from './db-util.ts';
import { claimDue } from './queue-prepared.ts';

export async function claimQueueEntries(s: Db, now: Date, limit: number, lease: Lease, excludeDomains: readonly string[], excludeIds: readonly number[] = []): Promise<number[]> {
  if (limit <= 0) return [];
  // The statement is prepared (queue-prepared.ts): one per poll, and under load a poll per finished delivery.
  return unsyncedWrite(s, (db) => claimDue(db, s.dialect, now.getTime(), limit, { owner: lease.owner, until: lease.until.getTime() }, excludeDomains, excludeIds));
}

/** The tables whose claimed rows are renewed and released by id: the queue's and spam learning's (spam-learning-claims.ts). */
export type LeasedById = 'queue_recipients' | 'spam_learning';

/** Extends `lease.owner`'s leases on these rows of `table`; returns the ids it still held. */
export async function renewLeasesById(s: Db, table: LeasedById, ids: readonly number[], lease: Lease): Promise<number[]> {
  if (ids.length === 0) return [];
  return unsyncedWrite(s, async (db) => {
    const held: number[] = [];
    for (const part of chunks([...ids], 500)) {
      const rows = await db.updateTable(table).set({ lease_until: lease.until.getTime() }).where('id', 'in', part).where('lease_owner', '=', lease.owner).returning('id').execute();
      held.push(...rows.map((r) => r.id));
    }
    return held;
  });
}

/** Frees `owner`'s leases on these rows of `table` (claimed but not started: free for anyone at once). */
export async function releaseLeasesById(s: Db, table: LeasedById, ids: readonly number[], owner: string): Promise<void> {
  if (ids.length === 0) return;
  await unsyncedWrite(s, async (db) => {
    for (const part of chunks([...ids], 500)) {
      await db.updateTable(table).set({ lease_owner: null, lease_until: null }).where('id', 'in', part).where('lease_owner', '=', owner).execute();
    }
  });
}
