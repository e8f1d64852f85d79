/**
 * A hot query built and compiled by kysely once per dialect, then run with
 * each call's values. Building and compiling the contact request's upsert
 * (request-upsert.ts) cost more CPU than SQLite running it: a tenth of a
 * stranger's TWM notice at the recipient (bench/twm-stranger-cost.ts).
 *
 * The query is built with a placeholder object (a Slot) for each value;
 * kysely carries values as parameters without looking into them, so each
 * placeholder lands in the compiled parameter list, where run() puts the
 * call's value. The builder must therefore pass every value straight into
 * the query (no JavaScript decisions on it): a decision belongs before the
 * call, and a query whose shape varies needs one template per shape.
 */
import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';

/** Where a call's value goes. */
class Slot {
  constructor(readonly name: string) {}
}

/** `names` lists every value (a Record, so that the compiler checks none is missing: a missing one would compile the query without it). */
export function queryTemplate<DB, V extends Record<string, unknown>, R>(names: Record<keyof V & string, true>, build: (db: Kysely<DB>, values: V) => Compilable<R>) {
  // Per dialect adapter: SQLite and PostgreSQL compile differently; a transaction shares its database's adapter.
  const compiled = new WeakMap<object, CompiledQuery<R>>();
  return function run(db: Kysely<DB>, values: V): Promise<QueryResult<R>> {
    const adapter = db.getExecutor().adapter;
    let template = compiled.get(adapter);
    if (!template) {
      // The cast: a Slot stands in for each value while the query is built; run() swaps them back.
      const slots = Object.fromEntries(Object.keys(names).map((name) => [name, new Slot(name)])) as unknown as V;
      template = build(db, slots).compile();
      compiled.set(adapter, template);
    }
    const parameters = template.parameters.map((p) => (p instanceof Slot ? values[p.name] : p));
    return db.executeQuery({ ...template, parameters });
  };
}
