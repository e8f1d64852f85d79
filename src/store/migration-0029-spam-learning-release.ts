/**
 * 0029_spam_learning_release: a spam learning row keeps its copy of the
 * message only until rspamd has it. Since this version the write that
 * records `done` or `failed` empties `raw` (spam-learning-repository.ts);
 * here the rows finished before it are emptied too. The rows themselves
 * stay: they make each change of class reach rspamd once, and a change of
 * class takes the copy from the message again.
 *
 * On SQLite the freed pages go to the file's free list and are reused by
 * later writes (the file does not shrink without a VACUUM); on PostgreSQL
 * the old row versions are reclaimed by (auto)vacuum.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export function spamLearningReleaseMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // An empty blob as a parameter: the literal differs between the dialects (X'' / '\x'::bytea).
      await sql`update spam_learning set raw = ${Buffer.alloc(0)} where state in ('done', 'failed')`.execute(db);
    },
  };
}
