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
import { holdsConnectionOf, PreparedQueries, runsDirectlyOn } from './prepared.ts';

interface Tables {
  t: { id: Generated<number>; name: string; n: number };
}

function open(direct = false): Kysely<Tables> {
  const sqlite = new Database(':memory:');
  sqlite.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER NOT NULL)');
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) });
  if (direct) runsDirectlyOn(db, sqlite);
  return db;
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

test('direct: a read on the database skips kysely while the connection is free, and waits for an open transaction', async () => {
  const db = open(true);
  const prepared = new PreparedQueries();
  const names = () => prepared.run(db, 't.names', [0], (v) => db.selectFrom('t').select('name').where('n', '>=', v<number>(0)).orderBy('name'));
  await db.insertInto('t').values({ name: 'a', n: 1 }).execute();
  // Free connection: the read answers in the same turn (no kysely queue), with the committed row.
  let settled = false;
  const free = names().then((rows) => {
    settled = true;
    return rows;
  });
  await Promise.resolve();
  assert.equal(settled, true, 'answered without going through the driver');
  assert.deepEqual(await free, [{ name: 'a' }]);
  // An open transaction with an uncommitted row: the read queues behind it and never sees that row.
  const tx = await db.startTransaction().execute();
  await tx.insertInto('t').values({ name: 'b', n: 2 }).execute();
  let read: Array<{ name: string }> | undefined;
  const waiting = names().then((rows) => (read = rows));
  await new Promise((r) => setImmediate(r));
  assert.equal(read, undefined, 'waits while the transaction holds the connection');
  await tx.rollback().execute();
  await waiting;
  assert.deepEqual(read, [{ name: 'a' }]);
  await db.destroy();
});

test("direct: a write on the database keeps kysely's way; in a transaction that holds the connection, writes run directly and roll back with it", async () => {
  const db = open(true);
  const prepared = new PreparedQueries();
  const insert = (on: Kysely<Tables>, name: string) => prepared.run(on, 't.insert', [name, 1], (v) => on.insertInto('t').values({ name: v<string>(0), n: v<number>(1) }));
  const count = async () => Number((await db.selectFrom('t').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  await insert(db, 'a');
  assert.equal(await count(), 1);
  await assert.rejects(
    db.transaction().execute(async (tx) => {
      holdsConnectionOf(tx, db);
      // A RETURNING statement is a reader: its rows come back as kysely would give them.
      const [row] = await prepared.run(tx, 't.insertReturning', ['b', 2], (v) => tx.insertInto('t').values({ name: v<string>(0), n: v<number>(1) }).returning('name'));
      assert.deepEqual(row, { name: 'b' });
      await insert(tx, 'c');
      assert.equal(Number((await tx.selectFrom('t').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n), 3);
      throw new Error('roll back');
    }),
    /roll back/,
  );
  assert.equal(await count(), 1, 'the direct writes rolled back with their transaction');
  await db.destroy();
});
