/**
 * 0006_app_passwords: the app-password model (docs/reliability.md, "The
 * app-password model").
 *
 * - `app_passwords.public_id`: the public part of the secret handed to the
 *   user (`twp_<public_id>_<secret>`). Login finds the one row by it, so a
 *   login costs one scrypt whatever the number of app passwords.
 * - `app_passwords.scope`: `all` (every mail protocol) or `contacts`
 *   (CardDAV only); `last_used_at`: the last successful login with it.
 * - `api_tokens.app_password_id`: a session opened with an app password keeps
 *   its scope and goes when the app password is revoked.
 *
 * App passwords created before this migration carry no public id; checking
 * them would mean trying every hash at every login (the timing leak this
 * migration closes). They are revoked here: their users create new ones.
 * README ("Upgrading") says so.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function appPasswordsMigration(dialect: Dialect): Migration {
  const time = dialect === 'postgres' ? ('bigint' as const) : ('integer' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await sql`DELETE FROM app_passwords`.execute(db);
      await db.schema.alterTable('app_passwords').addColumn('public_id', 'text').execute();
      await db.schema.alterTable('app_passwords').addColumn('scope', 'text', (c) => c.notNull().defaultTo('all')).execute();
      await db.schema.alterTable('app_passwords').addColumn('last_used_at', time).execute();
      await db.schema.createIndex('app_passwords_public_id').on('app_passwords').column('public_id').unique().execute();
      await db.schema
        .alterTable('api_tokens')
        .addColumn('app_password_id', 'integer', (c) => c.references('app_passwords.id').onDelete('cascade'))
        .execute();
      await db.schema.createIndex('api_tokens_app_password').on('api_tokens').column('app_password_id').execute();
    },
  };
}
