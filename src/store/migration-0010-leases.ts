/**
 * 0010_leases: work claimed in the store, so that several processes (on one
 * machine or several, on one database) can run the workers.
 *
 * - `lease_owner`, `lease_until` on `queue_recipients` and
 *   `twm_in_recipients`: a worker claims due rows by a conditional update
 *   (free, or the lease expired) and records an outcome only while it still
 *   owns them; an owner that died loses them at `lease_until`.
 * - `cluster_leases`: one row per named periodic job (sweeps), held by one
 *   process at a time and taken over when it expires.
 * - `twm_nonces`: TWM replay protection (docs/protocol.md 5.5) shared by
 *   every process; `expires_at` indexed for the sweep that forgets them.
 */
import type { Kysely, Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function leasesMigration(dialect: Dialect): Migration {
  const time = dialect === 'postgres' ? ('bigint' as const) : ('integer' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      for (const table of ['queue_recipients', 'twm_in_recipients']) {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        await db.schema.alterTable(table).addColumn('lease_owner', 'text').execute();
        await db.schema.alterTable(table).addColumn('lease_until', time).execute();
      }
      await db.schema
        .createTable('cluster_leases')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('lease_until', time, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('twm_nonces')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('expires_at', time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('twm_nonces_expires').on('twm_nonces').column('expires_at').execute();
    },
  };
}
