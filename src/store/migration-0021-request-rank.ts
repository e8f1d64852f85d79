/**
 * 0021_request_rank: the Screener's order stored with each contact request
 * (request-rank.ts), so a Screener page is one indexed query:
 * - `contact_requests.sender_domain`: the part after the sender's last @
 *   (core/address.ts domainOf), null for a key without one;
 * - `known`: 'address' or 'domain' when some account on this server allows
 *   the sender or its domain, else null;
 * - `rank`: core/reputation.ts's score.
 * Indexes: (user_id, status, rank, last_seen, id) for the pages,
 * (user_id, status, likely_spam) for their counts (read from the index
 * alone), and sender and sender_domain for ranking again when an allow
 * entry changes.
 * Existing rows are filled here.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './schema.ts';
import { rankAllRequests } from './request-rank.ts';

export function requestRankMigration(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('contact_requests').addColumn('sender_domain', 'text').execute();
      await db.schema.alterTable('contact_requests').addColumn('known', 'text').execute();
      await db.schema
        .alterTable('contact_requests')
        .addColumn('rank', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // After the last @ (SQLite has no "last index of": rtrim strips what is not @ from the end).
      const domain =
        dialect === 'postgres' ? sql`substring(sender from '[^@]*$')` : sql`substr(sender, length(rtrim(sender, replace(sender, '@', ''))) + 1)`;
      await sql`update contact_requests set sender_domain = ${domain} where sender like '%@%'`.execute(db);
      await rankAllRequests(db);
      await db.schema.createIndex('contact_requests_rank').on('contact_requests').columns(['user_id', 'status', 'rank', 'last_seen', 'id']).execute();
      await db.schema.createIndex('contact_requests_counts').on('contact_requests').columns(['user_id', 'status', 'likely_spam']).execute();
      await db.schema.createIndex('contact_requests_sender').on('contact_requests').column('sender').execute();
      await db.schema.createIndex('contact_requests_sender_domain').on('contact_requests').column('sender_domain').execute();
    },
  };
}
