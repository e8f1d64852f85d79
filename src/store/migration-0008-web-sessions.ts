/**
 * 0008_web_sessions: sessions of the web app (src/web/). The cookie holds a
 * random id; only its SHA-256 is stored, so a copy of the database opens no
 * session. `csrf_secret` is the session's anti-CSRF token (every form of the
 * session carries it). A session ends at `expires_at`, at sign-out, when
 * ended from another session, or when the account password changes.
 */
import type { Kysely, Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function webSessionsMigration(dialect: Dialect): Migration {
  const pg = dialect === 'postgres';
  const idType = pg ? ('serial' as const) : ('integer' as const);
  const time = pg ? ('bigint' as const) : ('integer' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('web_sessions')
        .addColumn('id', idType, (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('id_hash', 'text', (c) => c.notNull().unique())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('csrf_secret', 'text', (c) => c.notNull())
        .addColumn('user_agent', 'text', (c) => c.notNull())
        .addColumn('client', 'text', (c) => c.notNull())
        .addColumn('created_at', time, (c) => c.notNull())
        .addColumn('last_seen_at', time, (c) => c.notNull())
        .addColumn('expires_at', time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('web_sessions_user').on('web_sessions').column('user_id').execute();
    },
  };
}
