/**
 * Time of one Sent listing (services.sent.list, the source of `twoway sent`, `GET /api/sent`
 * and the web Sent page) for a user with a few hundred sent messages, in a store that also
 * holds `BENCH_OTHERS` queue entries (delivered, one recipient per message) and as many TWM
 * notices of other users. SQLite on a file, and PostgreSQL when reachable (TWOWAY_TEST_PG or
 * postgres://postgres@127.0.0.1:5432/test, a schema of its own, dropped after).
 *
 *   npx tsx bench/sent-listing.ts            # BENCH_OTHERS=200000 BENCH_SAMPLES=20
 *
 * The other users' rows are written with SQL (a recursive series), not through the store, so
 * that filling takes seconds; the user's own go through the store. Prints the median and the
 * slowest of the samples, after two unmeasured listings.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore } from '../src/store/open.ts';
import { createServices } from '../src/services/index.ts';
import type { Store } from '../src/store/types.ts';

const OTHERS = Number(process.env.BENCH_OTHERS ?? 200_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 20);
const OWN = 300;
const PG_URL = process.env.TWOWAY_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const T0 = Date.UTC(2026, 0, 1);

/** The other users' queue messages, recipients and notices, as one SQL script per dialect. */
function fillSql(dialect: 'sqlite' | 'postgres', withKey: boolean): string[] {
  const series =
    dialect === 'sqlite'
      ? `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${OTHERS}) SELECT i FROM n`
      : `SELECT i FROM generate_series(1, ${OTHERS}) AS i`;
  const blob = dialect === 'sqlite' ? `x''` : `''::bytea`;
  const text = (e: string) => (dialect === 'sqlite' ? e : `(${e})::text`);
  const sender = `'user' || ${text('i % 1000')} || '@example.test'`;
  const key = withKey ? ', sender_key' : '';
  const keyValue = withKey ? `, ${sender}` : '';
  return [
    `INSERT INTO queue_messages (message_id, sender, raw, created_at, body_removed_at${key}) SELECT 'q' || ${text('i')}, ${sender}, ${blob}, ${T0} + i * 1000, ${T0} + i * 1000${keyValue} FROM (${series}) s`,
    `INSERT INTO queue_recipients (queue_message, recipient, state, done_at, reply) SELECT id, 'r' || ${text('id')} || '@elsewhere.test', 'delivered', created_at, '250 ok' FROM queue_messages`,
    `INSERT INTO twm_out_notices (id, message_id, sender, domain, content, subject, message_id_header, size, sha256, created_at, expires_at, body, body_removed_at, body_in_queue${key}) SELECT 'n' || ${text('i')}, 't' || ${text('i')}, ${sender}, 'peer.test', ${blob}, 'hello', NULL, 10, 'ab', ${T0} + i * 1000, ${T0} + i * 1000 + 86400000, ${blob}, ${T0} + i * 1000, 0${keyValue} FROM (${series}) s`,
    `INSERT INTO twm_out_recipients (notice_id, recipient, state, reason, updated_at) SELECT id, 'r' || id || '@peer.test', 'delivered', NULL, created_at FROM twm_out_notices`,
  ];
}

/** The user's own mail, through the store: SMTP recipients on every message, a TWM notice on every third, subaddressed and mixed-case senders among them. */
async function fillOwn(store: Store): Promise<void> {
  const senders = ['alice@example.test', 'alice+list@example.test', 'Alice@Example.TEST'];
  for (let i = 0; i < OWN; i++) {
    const messageId = `own-${String(i).padStart(5, '0')}`;
    const sender = senders[i % senders.length]!;
    const at = new Date(T0 + (OTHERS + i) * 1000);
    await store.queue.enqueue({ messageId, sender, recipients: [`bob${i}@smtp.test`, `carol${i}@smtp.test`], raw: Buffer.from('x'), at, createdAt: at });
    if (i % 3 !== 0) continue;
    await store.twmOut.create({
      notice: {
        id: `own-n-${i}-${randomBytes(4).toString('hex')}`,
        messageId,
        sender,
        domain: 'peer.test',
        content: Buffer.from('{}'),
        subject: `own ${i}`,
        messageIdHeader: null,
        size: 1,
        sha256: 'ab',
        createdAt: at,
        expiresAt: new Date(at.getTime() + 86_400_000),
      },
      recipients: [`dan${i}@peer.test`],
      raw: Buffer.from('x'),
    });
  }
}

async function measure(name: string, url: string, run: (statements: string[]) => Promise<void>, hasKey: () => Promise<boolean>): Promise<void> {
  const withKey = await hasKey();
  await run(fillSql(name === 'sqlite' ? 'sqlite' : 'postgres', withKey));
  const store = await openStore(url);
  try {
    await fillOwn(store);
    const services = createServices(store, ['example.test']);
    const alice = await services.accounts.add('alice@example.test', 'correct horse battery staple', 'open');
    const times: number[] = [];
    let shown = 0;
    for (let i = 0; i < SAMPLES + 2; i++) {
      const t0 = process.hrtime.bigint();
      const page = await services.sent.list(alice);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (i >= 2) times.push(ms);
      shown = page.length;
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    console.log(`${name}: ${OTHERS} other entries and notices; a page of ${shown} messages: median ${median.toFixed(1)} ms, slowest ${times.at(-1)!.toFixed(1)} ms (${SAMPLES} samples)`);
  } finally {
    await store.close();
  }
}

async function sqlite(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-sent-'));
  const path = join(dir, 'bench.db');
  try {
    await (await openStore(`sqlite:${path}`)).close();
    const exec = (f: (db: Database.Database) => unknown) => {
      const db = new Database(path);
      try {
        return f(db);
      } finally {
        db.close();
      }
    };
    await measure(
      'sqlite',
      `sqlite:${path}`,
      async (statements) => {
        exec((db) =>
          db.transaction(() => {
            for (const s of statements) db.exec(s);
          })(),
        );
      },
      async () => exec((db) => (db.prepare(`SELECT count(*) AS n FROM pragma_table_info('queue_messages') WHERE name = 'sender_key'`).get() as { n: number }).n > 0) as boolean,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgres(): Promise<void> {
  const schema = `twoway_bench_sent_${randomBytes(4).toString('hex')}`;
  const url = `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}schema=${schema}`;
  const client = new pg.Client({ connectionString: PG_URL });
  try {
    await client.connect();
  } catch (err) {
    console.log(`postgres: not reachable (${err instanceof Error ? err.message : String(err)}), skipped`);
    return;
  }
  try {
    await (await openStore(url)).close();
    await client.query(`SET search_path TO "${schema}"`);
    await measure(
      'postgres',
      url,
      async (statements) => {
        for (const s of statements) await client.query(s);
        await client.query('ANALYZE');
      },
      async () => (await client.query(`SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'queue_messages' AND column_name = 'sender_key'`, [schema])).rowCount === 1,
    );
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
  }
}

await sqlite();
await postgres();
