/**
 * 0005_allowlist_changes: one row per user whose address book changed since
 * the decisions reconcile (services/decisions.ts) last re-decided that
 * user's contact requests and pending Two-Way Mail notices. Card writes
 * (store/card-writes.ts) upsert it in their own transaction, whatever the
 * path (CardDAV, API, CLI, import, the Screener), so no process needs to be
 * told in memory. Existing users with pending requests get a row, so that
 * a server upgraded in place re-decides them once.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function allowlistChangesMigration(dialect: Dialect): Migration {
  const time = dialect === 'postgres' ? ('bigint' as const) : ('integer' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('allowlist_changes')
        .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('changed_at', time, (c) => c.notNull())
        .execute();
      await sql`INSERT INTO allowlist_changes (user_id, version, changed_at)
                SELECT DISTINCT user_id, 1, ${sql.lit(Date.now())} FROM contact_requests WHERE status = 'pending'`.execute(db);
    },
  };
}
