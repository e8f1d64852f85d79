/** better-sqlite3 statement reuse, for every SQLite connection of the store (open.ts, message-writer-worker.ts). */
import type Database from 'better-sqlite3';

/**
 * Kysely prepares every query afresh; preparing is a measurable share of the
 * SMTP accept path's CPU (bench/). Statements are reused per SQL text, in a
 * bounded LRU (batch inserts vary with their size). better-sqlite3 runs each
 * statement to completion synchronously, so sharing one is safe.
 */
export function cacheStatements(db: Database.Database, max = 256): void {
  const prepare = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((source: string) => {
    let stmt = cache.get(source);
    if (stmt) {
      cache.delete(source);
    } else {
      stmt = prepare(source);
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
    }
    cache.set(source, stmt);
    return stmt;
  }) as typeof db.prepare;
}
