/**
 * unsyncedWrite (lease-repository.ts) on SQLite: synchronous=NORMAL inside
 * the write, FULL again after it, also when the write throws (its PRAGMA
 * statements are compiled once and shared by every call).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { unsyncedWrite } from './lease-repository.ts';
import type { Database as Tables } from './schema.ts';

const synchronous = async (db: Kysely<Tables>): Promise<number> =>
  (await sql<{ synchronous: number }>`PRAGMA synchronous`.execute(db)).rows[0]?.synchronous ?? -1;

test('unsyncedWrite: NORMAL inside, FULL after, twice and after a failure', async () => {
  const handle = new Database(':memory:');
  handle.pragma('synchronous = FULL');
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: handle }) });
  try {
    for (let i = 0; i < 2; i++) {
      assert.equal(await unsyncedWrite({ db, dialect: 'sqlite' }, synchronous), 1); // NORMAL
      assert.equal(await synchronous(db), 2); // FULL
    }
    await assert.rejects(
      unsyncedWrite({ db, dialect: 'sqlite' }, async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await synchronous(db), 2);
  } finally {
    await db.destroy();
  }
});
