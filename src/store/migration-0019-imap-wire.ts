/**
 * 0019_imap_wire: `messages.imap_envelope`, `imap_bodystructure` and
 * `imap_body`, the IMAP wire text of ENVELOPE, BODYSTRUCTURE and BODY
 * (core/imap-wire.ts), rendered once when a message is stored. The first
 * FETCH of these items then copies the text instead of reading the
 * structure's JSON, parsing and rendering it (docs/imap.md "Performance").
 *
 * No backfill here: rendering every stored message would hold the upgrade
 * for minutes on a large store. Rows from before stay null and are filled
 * the first time they are fetched (imap-wire-repository.ts).
 */
import type { Kysely, Migration } from 'kysely';

export function imapWireMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      for (const column of ['imap_envelope', 'imap_bodystructure', 'imap_body']) {
        await db.schema.alterTable('messages').addColumn(column, 'text').execute();
      }
    },
  };
}
