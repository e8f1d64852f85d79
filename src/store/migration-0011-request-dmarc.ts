/**
 * 0011_request_dmarc: the DMARC evaluation of a contact request's latest
 * SMTP attempt, for the Screener's reputation (core/reputation.ts):
 * `contact_requests.dmarc` (mailauth's result: pass, fail, none, temperror,
 * permerror) and `dmarc_policy` (the published policy that applied: reject,
 * quarantine, none; null without a record). Both null for requests made
 * before, and for requests only ever made by TWM notices or local mail.
 */
import type { Kysely, Migration } from 'kysely';

export function requestDmarcMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('contact_requests').addColumn('dmarc', 'text').execute();
      await db.schema.alterTable('contact_requests').addColumn('dmarc_policy', 'text').execute();
    },
  };
}
