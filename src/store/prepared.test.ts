/**
 * Prepared query shapes (prepared.ts) on a real SQLite database: each call
 * runs with its own values, and a value written into a shape instead of a
 * slot is refused rather than reused. The repositories that use them are
 * tested on SQLite and PostgreSQL by their own suites (messages, store,
 * request-dmarc).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, type Generated } from 'kysely';
import { PreparedQueries } from './prepared.ts';

interface Tables {
  t: { id: Generated<number>; name: string; n: number };
}

function open(): Kysely<Tables> {
  const sqlite = new Database(':memory:');
  sqlite.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER NOT NULL)');
  return new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) });
}

test('one shape, many calls: each call runs with its own values', async () => {
  const db = open();
  const prepared = new PreparedQueries();
  const insert = (name: string, n: number) =>
    prepared.run(db, 't.insert', [name, n], (v) => db.insertInto('t').values({ name: v<string>(0), n: v<number>(1) }).returning('id'));
  const [a] = await insert('a', 1);
  const [b] = await insert('b', 2);
  assert.notEqual(a!.id, b!.id);
  let built = 0;
  const byName = (name: string) =>
    prepared.run(db, 't.byName', [name], (v) => {
      built++;
      return db.selectFrom('t').select(['name', 'n']).where('name', '=', v<string>(0));
    });
  assert.deepEqual(await byName('a'), [{ name: 'a', n: 1 }]);
  assert.deepEqual(await byName('b'), [{ name: 'b', n: 2 }]);
  assert.deepEqual(await byName('c'), []);
  assert.equal(built, 1, 'the shape is built once');
  // A slot used twice, and an update with an expression around a slot.
  await prepared.run(db, 't.bump', [10, 'a'], (v) =>
    db
      .updateTable('t')
      .set((eb) => ({ n: eb('n', '+', v<number>(0)) }))
      .where('name', '=', v<string>(1))
      .where('name', '!=', v<string>(0)),
  );
  assert.deepEqual(await byName('a'), [{ name: 'a', n: 11 }]);
  await db.destroy();
});

test('a value written into a shape instead of a slot is refused', async () => {
  const db = open();
  const prepared = new PreparedQueries();
  await assert.rejects(
    prepared.run(db, 't.baked', ['a'], () => db.selectFrom('t').selectAll().where('name', '=', 'a')),
    /prepared query t\.baked: parameter 1 is a value, not a slot/,
  );
  await assert.rejects(
    prepared.run(db, 't.short', [], (v) => db.selectFrom('t').selectAll().where('name', '=', v<string>(0))),
    /prepared query t\.short: no value 0 \(0 given\)/,
  );
  await db.destroy();
});
