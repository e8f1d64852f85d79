/**
 * Test support (imported only by *.test.ts): the backends every store test
 * suite runs against, each able to open a fresh, empty store and to peek at
 * row counts that the Store API does not expose.
 *
 * PostgreSQL: postgres://postgres@127.0.0.1:5432/test (override with
 * TWOWAY_TEST_PG), one fresh schema per store, all dropped at the end. If the
 * server is unreachable the suite is skipped locally but FAILS when CI is set.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Compilable } from 'kysely';
import pg from 'pg';
import { migrations } from './migrations.ts';
import { openStore, SCHEMA_LOCK_ID } from './open.ts';
import type { Store } from './types.ts';
import type { Database as Schema } from './schema.ts';

export interface TestBackend {
  name: 'sqlite' | 'postgres';
  /** A reason to skip the whole suite, or undefined to run it. */
  skip: string | undefined;
  /** A fresh store with an empty schema. */
  open(): Promise<Store>;
  /** The URL of the most recently opened store (to open it again). */
  url(): string;
  /** Rows in a table of the most recently opened store. */
  count(table: string): Promise<number>;
  /** One SQL statement (no parameters) on the most recently opened store, bypassing it: to make rows as older versions left them. */
  query(statement: string): Promise<Array<Record<string, unknown>>>;
  /**
   * A fresh database migrated up to the migration `last` only, as an older version left it; it
   * becomes the most recent one (query() writes rows into it, `openStore(url())` runs the later
   * migrations over them).
   */
  migrateTo(last: string): Promise<void>;
  /** Removes every database this backend created. */
  cleanup(): Promise<void>;
}

/** Runs the migrations up to `last` on `db`, then closes it. */
async function migrateOnly(db: Kysely<unknown>, dialect: 'sqlite' | 'postgres', last: string, schema?: string): Promise<void> {
  try {
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations(dialect) }, ...(schema ? { migrationTableSchema: schema } : {}) });
    const { error } = await migrator.migrateTo(last);
    if (error) throw error;
  } finally {
    await db.destroy();
  }
}

const TABLE = /^[a-z_]+$/;

function sqliteBackend(): TestBackend {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-store-'));
  let n = 0;
  let last = '';
  return {
    name: 'sqlite',
    skip: undefined,
    // A real file, not :memory:, so that WAL and synchronous=FULL are exercised.
    open: () => {
      last = join(dir, `store-${++n}.db`);
      return openStore(`sqlite:${last}`);
    },
    url: () => `sqlite:${last}`,
    async migrateTo(migration) {
      last = join(dir, `store-${++n}.db`);
      await migrateOnly(new Kysely({ dialect: new SqliteDialect({ database: new Database(last) }) }), 'sqlite', migration);
    },
    async count(table) {
      if (!TABLE.test(table)) throw new Error(`bad table ${table}`);
      const db = new Database(last, { readonly: true });
      try {
        return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
      } finally {
        db.close();
      }
    },
    async query(statement) {
      const db = new Database(last);
      try {
        const stmt = db.prepare(statement);
        if (stmt.reader) return stmt.all() as Array<Record<string, unknown>>;
        stmt.run();
        return [];
      } finally {
        db.close();
      }
    },
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const PG_URL = process.env.TWOWAY_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgReachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function postgresBackend(): Promise<TestBackend> {
  const problem = await pgReachable();
  // In CI an unreachable server is a failure: the suite runs and its open() throws.
  const skip = problem !== undefined && !process.env.CI ? `PostgreSQL not reachable at ${PG_URL} (${problem}); set CI=1 to fail instead` : undefined;
  const run = `twoway_test_${randomBytes(4).toString('hex')}`;
  const schemas: string[] = [];
  const admin = () => new pg.Client({ connectionString: PG_URL });
  const url = () => `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}schema=${schemas.at(-1)}`;
  return {
    name: 'postgres',
    skip,
    open() {
      schemas.push(`${run}_${schemas.length + 1}`);
      return openStore(url());
    },
    url,
    async migrateTo(migration) {
      const schema = `${run}_${schemas.length + 1}`;
      schemas.push(schema);
      const client = admin();
      await client.connect();
      try {
        // Under the migration lock, as openStore migrates: another test process may be changing schemas.
        await client.query('SELECT pg_advisory_lock($1)', [SCHEMA_LOCK_ID]);
        await client.query(`CREATE SCHEMA "${schema}"`);
        const pool = new pg.Pool({ connectionString: PG_URL, options: `-c search_path=${schema}` });
        await migrateOnly(new Kysely({ dialect: new PostgresDialect({ pool }) }), 'postgres', migration, schema);
        await client.query('SELECT pg_advisory_unlock($1)', [SCHEMA_LOCK_ID]);
      } finally {
        await client.end();
      }
    },
    async count(table) {
      if (!TABLE.test(table)) throw new Error(`bad table ${table}`);
      const client = admin();
      await client.connect();
      try {
        const res = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "${schemas.at(-1)}".${table}`);
        return Number(res.rows[0]?.n);
      } finally {
        await client.end();
      }
    },
    async query(statement) {
      const client = admin();
      await client.connect();
      try {
        await client.query(`SET search_path TO "${schemas.at(-1)}"`);
        return (await client.query(statement)).rows as Array<Record<string, unknown>>;
      } finally {
        await client.end();
      }
    },
    async cleanup() {
      if (schemas.length === 0 || problem !== undefined) return;
      const client = admin();
      await client.connect();
      try {
        // Under the migration lock: another test process may be introspecting the catalog.
        await client.query('SELECT pg_advisory_lock($1)', [SCHEMA_LOCK_ID]);
        for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await client.query('SELECT pg_advisory_unlock($1)', [SCHEMA_LOCK_ID]);
      } finally {
        await client.end();
      }
    },
  };
}

export async function testBackends(): Promise<TestBackend[]> {
  return [sqliteBackend(), await postgresBackend()];
}

/** Builds queries for SQLite without a database of its own: only their SQL text is wanted. */
const sqliteCompiler = new Kysely<Schema>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });

/**
 * The plan (EXPLAIN QUERY PLAN's `detail` lines) of a query built with the SQLite compiler, on the
 * most recently opened SQLite store, which was never ANALYZEd (asserted): the plan SQLite picks
 * without statistics, as in a running server. The parameters become `literal` (the plan shows
 * them as `?` all the same).
 */
export async function sqlitePlanOf(backend: TestBackend, build: (db: Kysely<Schema>) => Compilable<unknown>, literal = "'x'"): Promise<string[]> {
  if (backend.name !== 'sqlite') throw new Error('sqlitePlanOf: an SQLite backend only');
  if ((await backend.query("SELECT name FROM sqlite_schema WHERE name = 'sqlite_stat1'")).length > 0) throw new Error('sqlitePlanOf: the store was ANALYZEd');
  const { sql } = build(sqliteCompiler).compile();
  return (await backend.query(`EXPLAIN QUERY PLAN ${sql.replaceAll('?', literal)}`)).map((r) => String(r.detail));
}

/** Builds queries for PostgreSQL without a connection (the pool never connects): only their SQL text is wanted. */
const postgresCompiler = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: new pg.Pool({ max: 1 }) }) });

/**
 * The plan (EXPLAIN's lines) of a query built with the PostgreSQL compiler, on the most recently
 * opened PostgreSQL store, with its parameters written in as literals (numbers and strings only):
 * a partial index is usable only where the planner sees the values.
 */
export async function postgresPlanOf(backend: TestBackend, build: (db: Kysely<Schema>) => Compilable<unknown>): Promise<string[]> {
  if (backend.name !== 'postgres') throw new Error('postgresPlanOf: a PostgreSQL backend only');
  const { sql, parameters } = build(postgresCompiler).compile();
  const literal = (i: number) => {
    const v = parameters[i - 1];
    if (typeof v === 'number') return String(v);
    if (typeof v === 'string') return `'${v.replaceAll("'", "''")}'`;
    throw new Error(`postgresPlanOf: parameter $${i} is neither a number nor a string`);
  };
  const text = sql.replace(/\$(\d+)/g, (_, n: string) => literal(Number(n)));
  return (await backend.query(`EXPLAIN ${text}`)).map((r) => String(r['QUERY PLAN']));
}
