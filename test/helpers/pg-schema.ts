/**
 * A throwaway PostgreSQL schema for an integration test's server
 * (`storage = "postgres://…?schema=NAME"`; the store creates it at open).
 * The server is the one of the store tests: TWOWAY_TEST_PG, default
 * postgres://postgres@127.0.0.1:5432/test. Unreachable: `skip` says why,
 * unless CI is set (then the test runs and fails).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.TWOWAY_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface PgSchema {
  /** The storage URL for the configuration. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function pgSkipReason(): Promise<string | false> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return false;
  } catch (err) {
    return process.env.CI ? false : `PostgreSQL not reachable at ${PG_URL}: ${(err as Error).message}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function pgSchema(prefix: string): PgSchema {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const sep = PG_URL.includes('?') ? '&' : '?';
  return {
    name,
    url: `${PG_URL}${sep}schema=${name}`,
    async drop() {
      const client = new pg.Client({ connectionString: PG_URL });
      try {
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
      } finally {
        await client.end().catch(() => undefined);
      }
    },
  };
}
