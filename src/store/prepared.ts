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
 * Every value of a prepared query must be a slot: a value written into the
 * builder directly would be baked into the cached parameters and silently
 * reused for every later call, so compiling refuses any parameter that is
 * not a slot (literals belong in the SQL text, e.g. `sql.lit`).
 */
import type { CompiledQuery, Compilable, QueryResult } from 'kysely';
import type { Dialect } from './schema.ts';

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
    const result = await on.executeQuery<R>({ ...shape.compiled, parameters } as CompiledQuery<R>);
    return result.rows;
  }
}

function compileShape<R>(key: string, build: (v: SlotOf) => Compilable<R>): Shape {
  const compiled = build(slot).compile();
  const order = compiled.parameters.map((p, n) => {
    if (!(p instanceof Slot)) throw new Error(`prepared query ${key}: parameter ${n + 1} is a value, not a slot`);
    return p.index;
  });
  return { compiled, order };
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
