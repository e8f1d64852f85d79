/**
 * 0004_carddav: what the CardDAV server needs on top of the `contacts` table.
 *
 * - `contacts.href`: the resource name a client chose for the card (RFC 6352
 *   lets the URL differ from the UID). Existing cards get `<uid>.vcf`.
 *   Unique per (user, book), like the UID.
 * - `address_books`: one row per collection, with its change counter
 *   `sync_seq` (the ctag and RFC 6578 sync token are derived from it) and
 *   `pruned_seq` (tokens below it are no longer valid: their tombstones have
 *   been forgotten). Rows are created for every book that already has cards;
 *   the `default` book of other users is created on first use.
 * - `contact_changes`: the change log, one row per (book, href) holding the
 *   sequence number of its latest write and whether that write deleted it
 *   (a tombstone). Written in the same transaction as the card.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';

export function carddavMigration(dialect: Dialect): Migration {
  const pg = dialect === 'postgres';
  const idType = pg ? ('serial' as const) : ('integer' as const);
  const time = pg ? ('bigint' as const) : ('integer' as const);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('contacts').addColumn('href', 'text').execute();
      await sql`UPDATE contacts SET href = uid || '.vcf'`.execute(db);
      await db.schema.createIndex('contacts_user_book_href').on('contacts').columns(['user_id', 'book', 'href']).unique().execute();

      await db.schema
        .createTable('address_books')
        .addColumn('id', idType, (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('display_name', 'text')
        .addColumn('description', 'text')
        .addColumn('sync_seq', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('pruned_seq', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', time, (c) => c.notNull())
        .addUniqueConstraint('address_books_user_name', ['user_id', 'name'])
        .execute();
      await sql`INSERT INTO address_books (user_id, name, sync_seq, pruned_seq, created_at)
                SELECT DISTINCT user_id, book, 0, 0, ${sql.lit(Date.now())} FROM contacts`.execute(db);

      await db.schema
        .createTable('contact_changes')
        .addColumn('id', idType, (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('book_id', 'integer', (c) => c.notNull().references('address_books.id').onDelete('cascade'))
        .addColumn('href', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('deleted', 'integer', (c) => c.notNull())
        .addColumn('changed_at', time, (c) => c.notNull())
        .addUniqueConstraint('contact_changes_book_href', ['book_id', 'href'])
        .execute();
      await db.schema.createIndex('contact_changes_seq').on('contact_changes').columns(['book_id', 'seq']).execute();
    },
  };
}
