/**
 * Queries built and compiled once per shape, then run with new values, on
 * SQLite and PostgreSQL alike.
 *
 * Why: kysely builds an immutable operation tree and compiles it to SQL text
 * on every call. For the statements of the accept path (recipient lookup,
 * address-book match, the delivery batch's inserts) that was about a tenth of
 * the CPU of an accepted message (bench/results.md, "CPU per accepted
 * message"), plus the garbage of the frozen trees; yet the tree and the SQL
 * are the same on every call, only the values differ. So the first call of a
 * shape builds the query with a marker (`Slot`) in place of each value,
 * compiles it, and records where each marker landed among the compiled
 * parameters; later calls reuse the SQL text and put their values there.
 * better-sqlite3's prepared statement is reused too (open.ts keeps them per
 * SQL text).
 *
 * On SQLite, a prepared query may also skip kysely's driver: its
 * connection provider, mutex and promise layers cost about as much as the
 * statement itself for the short lookups and inserts of a stranger's notice
 * (bench/twm-stranger-cost.ts). A query runs on better-sqlite3 directly
 * (synchronously, on the statement kept with its shape) when its executor
 * is known to stand for the connection (`runsDirectlyOn`, open.ts):
 * - a transaction that holds the connection for its whole life
 *   (`holdsConnectionOf`, durable-writer.ts): every statement;
 * - the database itself: reads only, and only while no transaction is open
 *   on the connection. A read then sees what kysely's queued read would see
 *   once the connection is free: committed rows only. Writes keep kysely's
 *   way, queued behind an open transaction and under the connection's
 *   current `synchronous` setting as kysely runs them.
 *
 * Every value of a prepared query must be a slot: a value written into the
 * builder directly would be baked into the cached parameters and silently
 * reused for every later call, so compiling refuses any parameter that is
 * not a slot (literals belong in the SQL text, e.g. `sql.lit`).
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { CompiledQuery, Compilable, QueryResult } from 'kysely';
import type { Dialect } from './schema.ts';

/** A better-sqlite3 connection a prepared query may run on directly, and how. */
interface Direct {
  raw: BetterSqlite3.Database;
  /** The executor is a transaction holding the connection: writes may run directly too. */
  held: boolean;
}

const directs = new WeakMap<object, Direct>();

/** `db` (a Kysely instance) runs every query on the better-sqlite3 connection `raw`. */
export function runsDirectlyOn(db: object, raw: BetterSqlite3.Database): void {
  directs.set(db, { raw, held: false });
}

/**
 * `tx` is a transaction of `db` that holds its connection until it ends, so
 * that nothing else runs on the connection meanwhile (kysely's SQLite driver
 * has one connection behind a mutex). No-op unless `db` runs directly.
 */
export function holdsConnectionOf(tx: object, db: object): void {
  const direct = directs.get(db);
  if (direct) directs.set(tx, { raw: direct.raw, held: true });
}

/** A placeholder for the value at `index` of a prepared query's values. */
class Slot {
  constructor(readonly index: number) {}
}

/**
 * Hands out the placeholders while a shape is built: `v<string>(0)` stands for
 * `values[0]`. Typed as the value it stands for, so the builder type-checks
 * as if given the value.
 */
export type SlotOf = <T>(index: number) => T;

const slot: SlotOf = <T>(index: number) => new Slot(index) as unknown as T;

interface Shape {
  compiled: CompiledQuery;
  /** For each compiled parameter, the index of the value that fills it. */
  order: number[];
  /** The statement of this shape per direct connection. */
  statements: WeakMap<BetterSqlite3.Database, BetterSqlite3.Statement>;
}

/** Something that runs a compiled query: a Kysely instance or a transaction. */
interface Executor {
  executeQuery<R>(query: CompiledQuery<R>): Promise<QueryResult<R>>;
}

/** Shapes beyond this many are compiled per call and not kept (a guard against an unbounded key space). */
const MAX_SHAPES = 2000;

/**
 * One cache of compiled shapes, for one dialect (`preparedOf`): the SQL
 * text depends on it.
 */
export class PreparedQueries {
  private readonly shapes = new Map<string, Shape>();

  /**
   * Runs the query of shape `key` with `values`. `build` must return the same
   * query for the same key, whatever the values: every value through `v`.
   */
  async run<R>(on: Executor, key: string, values: readonly unknown[], build: (v: SlotOf) => Compilable<R>): Promise<R[]> {
    let shape = this.shapes.get(key);
    if (!shape) {
      shape = compileShape(key, build);
      if (this.shapes.size < MAX_SHAPES) this.shapes.set(key, shape);
    }
    const parameters = shape.order.map((i) => {
      if (i >= values.length) throw new Error(`prepared query ${key}: no value ${i} (${values.length} given)`);
      return values[i];
    });
    const direct = directs.get(on);
    if (direct && (direct.held || !direct.raw.inTransaction)) {
      const stmt = statementOf(shape, direct.raw);
      // As kysely's SQLite driver runs it: rows from a reader (RETURNING included), none otherwise.
      if (stmt.reader) return stmt.all(parameters) as R[];
      if (direct.held) {
        stmt.run(parameters);
        return [];
      }
    }
    const result = await on.executeQuery<R>({ ...shape.compiled, parameters } as CompiledQuery<R>);
    return result.rows;
  }
}

function statementOf(shape: Shape, raw: BetterSqlite3.Database): BetterSqlite3.Statement {
  let stmt = shape.statements.get(raw);
  if (!stmt) {
    stmt = raw.prepare(shape.compiled.sql);
    shape.statements.set(raw, stmt);
  }
  return stmt;
}

function compileShape<R>(key: string, build: (v: SlotOf) => Compilable<R>): Shape {
  const compiled = build(slot).compile();
  const order = compiled.parameters.map((p, n) => {
    if (!(p instanceof Slot)) throw new Error(`prepared query ${key}: parameter ${n + 1} is a value, not a slot`);
    return p.index;
  });
  return { compiled, order, statements: new WeakMap() };
}

const caches = new Map<Dialect, PreparedQueries>();

/**
 * The cache of a dialect, made on first use. The SQL text of a shape depends
 * only on the dialect's compiler, so every database of one dialect (and each
 * transaction on it) shares it.
 */
export function preparedOf(dialect: Dialect): PreparedQueries {
  let cache = caches.get(dialect);
  if (!cache) {
    cache = new PreparedQueries();
    caches.set(dialect, cache);
  }
  return cache;
}
