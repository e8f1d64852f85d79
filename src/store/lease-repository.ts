/**
 * Cluster-wide coordination in the store (migration 0010), for any number
 * of processes on any number of machines sharing one database:
 *
 * - named leases (`cluster_leases`): a periodic job (a sweep) runs in the
 *   one process holding its lease; the holder renews it at each run, and
 *   when it dies another process takes the lease once it expired. One
 *   statement (insert, or update where it is ours or expired) decides, so
 *   two processes never both get it; on PostgreSQL the row lock of the
 *   upsert serialises them, on SQLite the database's write lock does.
 * - TWM nonces (`twm_nonces`): insert-or-conflict; a conflict with an
 *   unexpired row is a replay. An expired row is taken over in the same
 *   statement, so the sweep that deletes them is only housekeeping.
 *
 * Nonce writes are not fsynced on SQLite (synchronous=NORMAL for that
 * statement): a nonce lost to a power failure belongs to a signature made
 * before every process restarted, which endpoints/twm/nonces.ts refuses as
 * stale anyway. PostgreSQL commits them durably (it costs no thread here).
 * Concurrent requests' nonces share one transaction (group-commit.ts): a
 * commit of its own per nonce, even without its fsync, was a tenth of a
 * stranger's notice's CPU (bench/twm-stranger-cost.ts).
 */
import { CompiledQuery, sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';
import type { ClusterLeaseRepository, TwmNonceRepository } from './types.ts';
import { GroupCommit } from './group-commit.ts';
import { num, runTransaction, type Db } from './db-util.ts';
// The nonce statement is prepared with the notice path's (prepared-twm.ts): every signed request runs it.
import { rememberNonce } from './prepared-twm.ts';
import { holdsConnectionOf } from './prepared.ts';

/**
 * A write that need not survive a power failure (a claim, a nonce): on
 * SQLite it commits without its fsync (synchronous=NORMAL for this
 * statement, on one connection, so other writes keep FULL). A lost claim is
 * a free row again; a process crash loses nothing (the OS has the page).
 */
// Compiled once: every nonce batch (one per signed TWM request under load) runs both.
const SYNC_NORMAL = CompiledQuery.raw('PRAGMA synchronous = NORMAL');
const SYNC_FULL = CompiledQuery.raw('PRAGMA synchronous = FULL');

export async function unsyncedWrite<T>(s: Db, fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  if (s.dialect === 'postgres') return fn(s.db);
  return s.db.connection().execute(async (conn) => {
    // The connection is this write's alone until it ends: its prepared statements may skip kysely's driver (prepared.ts).
    holdsConnectionOf(conn, s.db);
    await conn.executeQuery(SYNC_NORMAL);
    try {
      return await fn(conn);
    } finally {
      await conn.executeQuery(SYNC_FULL);
    }
  });
}

export class KyselyClusterLeaseRepository implements ClusterLeaseRepository {
  constructor(private readonly s: Db) {}

  async acquire(name: string, owner: string, now: Date, ttlMs: number): Promise<boolean> {
    const at = now.getTime();
    const rows = await sql<{ owner: string }>`
      INSERT INTO cluster_leases (name, owner, lease_until) VALUES (${name}, ${owner}, ${at + ttlMs})
      ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
      WHERE cluster_leases.owner = excluded.owner OR cluster_leases.lease_until <= ${at}
      RETURNING owner`.execute(this.s.db);
    return rows.rows.length === 1;
  }

  async release(name: string, owner: string): Promise<void> {
    await this.s.db.deleteFrom('cluster_leases').where('name', '=', name).where('owner', '=', owner).execute();
  }

  async releaseEarlier(node: string, owner: string): Promise<number> {
    const prefix = `${node}/`;
    // substr, not LIKE: a host name may hold LIKE's wildcards.
    const earlier = (column: 'lease_owner' | 'owner') => sql<boolean>`substr(${sql.ref(column)}, 1, ${prefix.length}) = ${prefix} AND ${sql.ref(column)} <> ${owner}`;
    let freed = 0;
    for (const table of ['queue_recipients', 'twm_in_recipients', 'spam_learning'] as const) {
      const res = await this.s.db.updateTable(table).set({ lease_owner: null, lease_until: null }).where(earlier('lease_owner')).executeTakeFirst();
      freed += num(res.numUpdatedRows);
    }
    const res = await this.s.db.deleteFrom('cluster_leases').where(earlier('owner')).executeTakeFirst();
    return freed + num(res.numDeletedRows);
  }

  async holder(name: string, now: Date): Promise<string | undefined> {
    const row = await this.s.db.selectFrom('cluster_leases').select('owner').where('name', '=', name).where('lease_until', '>', now.getTime()).executeTakeFirst();
    return row?.owner;
  }
}

/** One nonce to remember: its key, until when, and the caller's clock. */
interface NonceWrite {
  key: string;
  until: number;
  now: number;
}

export class KyselyTwmNonceRepository implements TwmNonceRepository {
  private readonly writes: GroupCommit<NonceWrite, boolean>;

  constructor(private readonly s: Db) {
    // In order, in one transaction: a key given twice in one batch is a replay the second time, as apart.
    this.writes = new GroupCommit(
      (items) =>
        unsyncedWrite(s, (db) =>
          runTransaction(db, async (tx) => {
            const fresh: boolean[] = [];
            for (const w of items) fresh.push(await rememberNonce(s, tx, w.key, w.until, w.now));
            return fresh;
          }),
        ),
      500,
    );
  }

  async remember(key: string, until: Date, now: Date): Promise<boolean> {
    const [fresh] = await this.writes.submit([{ key, until: until.getTime(), now: now.getTime() }]);
    return fresh === true;
  }

  /** Waits for queued nonce writes (Store.close). */
  drain(): Promise<void> {
    return this.writes.drain();
  }

  async prune(now: Date): Promise<number> {
    const res = await this.s.db.deleteFrom('twm_nonces').where('expires_at', '<=', now.getTime()).executeTakeFirst();
    return num(res.numDeletedRows);
  }
}
