/**
 * openStore(url): the one way to get a Store. Picks the dialect from the URL,
 * opens the database with durable settings, runs the migrations and wires the
 * repositories.
 *
 * URL forms:
 *   sqlite:/abs/path.db, sqlite:relative.db, sqlite:///abs/path.db, file:///abs/path.db,
 *   a plain file path, or sqlite::memory: (tests);
 *   postgres://user:pass@host:port/db[?schema=NAME] (also postgresql://). `schema`
 *   is created if missing and becomes the connection's search_path.
 */
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import type { Store } from './types.ts';
import type { Database as Tables, Dialect } from './schema.ts';
import { createWalSync, type WalSync } from './wal-sync.ts';
import { createMessageWriter, type MessageWriter } from './message-writer.ts';
import type { Db } from './db-util.ts';
import { migrations } from './migrations.ts';
import { runsDirectlyOn } from './prepared.ts';
import { cacheStatements } from './sqlite-statements.ts';
import { KyselyUserRepository } from './user-repository.ts';
import { KyselyContactRepository } from './contact-repository.ts';
import { KyselyMessageRepository } from './message-repository.ts';
import { KyselyImapRepository } from './imap-repository.ts';
import { createChangeBus, type ChangeBus } from './change-bus.ts';
import { localSignals, startPgNotifier, type PgNotifier, type StoreSignals } from './pg-notify.ts';
import { startSqliteChangePoll } from './sqlite-changes.ts';
import { KyselyContactRequestRepository } from './contact-request-repository.ts';
import { KyselyQueueRepository } from './queue-repository.ts';
import { KyselyAddressBookRepository } from './address-book-repository.ts';
import { KyselyTwmOutboundRepository } from './twm-outbound-repository.ts';
import { KyselyTwmInboundRepository } from './twm-inbound-repository.ts';
import { KyselySpamLearningRepository } from './spam-learning-repository.ts';
import { KyselyWebSessionRepository } from './web-session-repository.ts';
import { KyselyClusterLeaseRepository, KyselyTwmNonceRepository } from './lease-repository.ts';
import { KyselyTwmReportRepository } from './twm-report-repository.ts';

export interface OpenStoreOptions {
  /** Receives one line per notable event (migrations applied, idle connection errors). */
  log?: (msg: string) => void;
}

export type StoreLocation =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; connectionString: string; schema: string | undefined };

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** The URL with any password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) {
      u.password = '***';
      return u.toString();
    }
    return url;
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
  }
}

/** Parses a store URL; throws an Error naming the (redacted) URL if it is not one. */
export function parseStoreUrl(url: string): StoreLocation {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new Error(`Invalid PostgreSQL store URL ${redactUrl(url)}`);
    }
    const schema = u.searchParams.get('schema') ?? undefined;
    if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
      throw new Error(`Invalid schema name ${JSON.stringify(schema)} in store URL ${redactUrl(url)}`);
    }
    u.searchParams.delete('schema');
    return { kind: 'postgres', connectionString: u.toString(), schema };
  }
  if (scheme === 'sqlite') {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2); // sqlite:///abs/path -> /abs/path
    if (path === '') throw new Error(`Store URL ${url} names no file`);
    return { kind: 'sqlite', path };
  }
  if (scheme === 'file') return { kind: 'sqlite', path: fileURLToPath(url) };
  // One-letter "schemes" are Windows drive letters: a plain path.
  if (scheme !== undefined && scheme.length > 1) {
    throw new Error(`Unsupported store URL ${redactUrl(url)}: expected sqlite:PATH, postgres://... or a file path`);
  }
  if (url === '') throw new Error('The store URL is empty');
  return { kind: 'sqlite', path: url };
}

function message(err: unknown): string {
  if (err instanceof AggregateError && !err.message) {
    // Node reports a failed connect to a name with several addresses (localhost: ::1 and 127.0.0.1) this way.
    return err.errors.map(message).join('; ');
  }
  if (err instanceof Error) return err.message || String((err as { code?: unknown }).code ?? err.name);
  return String(err);
}

/** WAL pages between automatic checkpoints (see openSqlite). */
const WAL_AUTOCHECKPOINT_PAGES = 4000;

function openSqlite(path: string, log: (msg: string) => void): Kysely<Tables> {
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (err) {
    throw new Error(`Cannot open SQLite store sqlite:${path}: ${message(err)}`, { cause: err });
  }
  try {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    // An in-memory database reports "memory"; anything else means no WAL on this file system.
    if (mode !== 'wal' && path !== ':memory:') log(`store: SQLite journal_mode is ${String(mode)}, not wal`);
    db.pragma('synchronous = FULL'); // WAL + FULL: a committed transaction survives power loss.
    // Checkpoint at 4,000 WAL pages (16 MB) rather than SQLite's 1,000: every group commit of the
    // accept path rewrites the same index leaves and mailbox row, and a checkpoint copies each page
    // once however often it was rewritten, so fewer checkpoints copy fewer pages per message (the
    // checkpoint runs inside a COMMIT, on the event loop: bench/results.md, "CPU per accepted message").
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000'); // Other processes (the CLI) may hold the write lock briefly.
  } catch (err) {
    db.close();
    throw new Error(`Cannot open SQLite store sqlite:${path}: ${message(err)}`, { cause: err });
  }
  cacheStatements(db);
  const kysely = new Kysely<Tables>({ dialect: new SqliteDialect({ database: db }) });
  // Prepared reads run on the connection directly when it is free (prepared.ts).
  runsDirectlyOn(kysely, db);
  return kysely;
}

/**
 * int8 (bigint: timestamps, counts) arrives from pg as a string by default;
 * every int8 here is a millisecond time or a count, well inside 2^53, so it is
 * parsed to a number. Set per pool, not globally, so other pg users are unaffected.
 */
function pgTypes(types: typeof pg.types): pg.CustomTypesConfig {
  return {
    // The cast: pg's getTypeParser is declared with overloads that a single arrow function cannot satisfy.
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === types.builtins.INT8 ? (value: string) => Number(value) : types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
  };
}

async function openPostgres(
  loc: { connectionString: string; schema: string | undefined },
  url: string,
  log: (msg: string) => void,
): Promise<{ db: Kysely<Tables>; schema: string; pool: pg.Pool; connect: () => pg.Client }> {
  // Loaded here, not at the top: a CLI command on SQLite should not pay for pg's start-up.
  const { default: pgModule } = await import('pg');
  const clientConfig = {
    connectionString: loc.connectionString,
    // A startup parameter, so every pooled connection has it before its first query.
    // synchronous_commit=on whatever the server's default: a commit (and so an
    // SMTP 250) means the WAL is flushed to disk.
    options: ['-c synchronous_commit=on', ...(loc.schema !== undefined ? [`-c search_path=${loc.schema}`] : [])].join(' '),
    types: pgTypes(pgModule.types),
    connectionTimeoutMillis: 10_000,
  };
  const pool = new pgModule.Pool(clientConfig);
  // Without a listener, an idle client's error (server restart) would crash the process.
  pool.on('error', (err) => log(`store: idle PostgreSQL connection error: ${err.message}`));
  // The pool listens only while a client is idle: a client checked out by kysely
  // between two statements (a pinned connection, a transaction) that loses its
  // server emits 'error' with no listener, an uncaught exception that killed the
  // process on a PostgreSQL restart (test/faults-postgres.test.ts). Its next
  // query fails instead, and the pool discards it on release.
  pool.on('connect', (client) => client.on('error', (err) => log(`store: PostgreSQL connection error: ${err.message}`)));
  let schema: string;
  try {
    const client = await pool.connect();
    try {
      if (loc.schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS "${loc.schema}"`);
      const res = await client.query<{ schema: string | null }>('SELECT current_schema() AS schema');
      const current = res.rows[0]?.schema;
      if (!current) throw new Error('no current schema (check search_path)');
      schema = current;
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new Error(`Cannot open PostgreSQL store ${redactUrl(url)}: ${message(err)}`, { cause: err });
  }
  // A dedicated connection for LISTEN (pg-notify.ts): a pooled one would be handed to other queries.
  return { db: new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) }), schema, pool, connect: () => new pgModule.Client(clientConfig) };
}

/**
 * Session-level advisory lock held while migrating. Kysely's own migration
 * lock does not cover its catalog introspection, which fails if another
 * process drops or creates a schema at that moment (several servers, or the
 * CLI and a server, starting together on one database). Anything that
 * changes schemas (tests dropping theirs) takes the same lock.
 */
export const SCHEMA_LOCK_ID = 7_465_731_201;

async function withSchemaLock<T>(pool: pg.Pool, run: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [SCHEMA_LOCK_ID]);
    try {
      return await run();
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [SCHEMA_LOCK_ID]);
    }
  } finally {
    client.release();
  }
}

/** The change bus and signals of a store, and how to stop what feeds them. */
interface StoreEvents {
  changes: ChangeBus;
  signals: StoreSignals;
  close(): Promise<void>;
}

/**
 * Where other processes' changes come from: LISTEN/NOTIFY on PostgreSQL
 * (pg-notify.ts), a poll of the file on SQLite (sqlite-changes.ts; the queue
 * signal stays in the process, the queue workers poll anyway), nowhere for
 * an in-memory database, which no other connection can open.
 */
function storeEvents(db: Kysely<Tables>, loc: StoreLocation, notifier: PgNotifier | undefined, log: (msg: string) => void): StoreEvents {
  if (notifier) return { changes: notifier.bus(createChangeBus()), signals: notifier, close: () => notifier.close() };
  if (loc.kind === 'sqlite' && loc.path !== ':memory:') {
    const poll = startSqliteChangePoll({ db, log });
    return { changes: poll.bus(createChangeBus()), signals: localSignals(), close: () => poll.close() };
  }
  return { changes: createChangeBus(), signals: localSignals(), close: async () => {} };
}

class KyselyStore implements Store {
  readonly users: KyselyUserRepository;
  readonly contacts: KyselyContactRepository;
  readonly messages: KyselyMessageRepository;
  readonly requests: KyselyContactRequestRepository;
  readonly queue: KyselyQueueRepository;
  readonly addressBooks: KyselyAddressBookRepository;
  readonly twmOut: KyselyTwmOutboundRepository;
  readonly twmIn: KyselyTwmInboundRepository;
  readonly changes: ChangeBus;
  readonly imap: KyselyImapRepository;
  readonly spamLearning: KyselySpamLearningRepository;
  readonly webSessions: KyselyWebSessionRepository;
  readonly leases: KyselyClusterLeaseRepository;
  readonly twmNonces: KyselyTwmNonceRepository;
  readonly twmReports: KyselyTwmReportRepository;
  readonly signals: StoreSignals;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly s: Db,
    private readonly events: StoreEvents,
    readonly createdNow = false,
  ) {
    this.users = new KyselyUserRepository(s);
    this.contacts = new KyselyContactRepository(s);
    this.changes = events.changes;
    this.signals = events.signals;
    this.messages = new KyselyMessageRepository(s, this.changes);
    this.imap = new KyselyImapRepository(s, this.changes, this.messages);
    this.requests = new KyselyContactRequestRepository(s);
    this.queue = new KyselyQueueRepository(s, this.changes);
    this.addressBooks = new KyselyAddressBookRepository(s);
    this.twmOut = new KyselyTwmOutboundRepository(s);
    this.twmIn = new KyselyTwmInboundRepository(s, this.changes);
    this.spamLearning = new KyselySpamLearningRepository(s);
    this.webSessions = new KyselyWebSessionRepository(s);
    this.leases = new KyselyClusterLeaseRepository(s);
    this.twmNonces = new KyselyTwmNonceRepository(s);
    this.twmReports = new KyselyTwmReportRepository(s);
  }

  get kind(): Dialect {
    return this.s.dialect;
  }

  /** Lets queued deliveries commit, then closes the database. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.messages.drain();
      await this.queue.drain();
      await this.twmOut.drain();
      await this.twmIn.drain();
      await this.twmNonces.drain();
      await this.events.close();
      // The writer's and the checkpointer's connections first: the store's own is then the last, and SQLite tidies the WAL as it closes.
      await this.s.messageWriter?.close();
      await this.s.walSync?.close();
      await this.s.db.destroy();
    })();
    return this.closing;
  }
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const log = options.log ?? (() => {});
  const loc = parseStoreUrl(url);
  let db: Kysely<Tables>;
  let migrationTableSchema: string | undefined;
  let pool: pg.Pool | undefined;
  let notifier: PgNotifier | undefined;
  let walSync: WalSync | undefined;
  let messageWriter: MessageWriter | undefined;
  if (loc.kind === 'sqlite') {
    db = openSqlite(loc.path, log);
    if (loc.path !== ':memory:') {
      const sync = createWalSync(loc.path);
      walSync = sync;
      messageWriter = createMessageWriter(loc.path, db, () => sync.checkpoints());
    }
  } else {
    const opened = await openPostgres(loc, url, log);
    db = opened.db;
    pool = opened.pool;
    notifier = startPgNotifier({ pool, connect: opened.connect, schema: opened.schema, log });
    // Kysely looks for its migration table in every schema unless told which:
    // name ours, or another schema's table would be taken for this one's.
    migrationTableSchema = opened.schema;
  }

  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations(loc.kind) },
    ...(migrationTableSchema !== undefined ? { migrationTableSchema } : {}),
  });
  const { error, results } = pool ? await withSchemaLock(pool, () => migrator.migrateToLatest()) : await migrator.migrateToLatest();
  for (const r of results ?? []) {
    if (r.status === 'Success') log(`store: applied migration ${r.migrationName}`);
    if (r.status === 'Error') log(`store: migration ${r.migrationName} failed`);
  }
  if (error) {
    await notifier?.close();
    await db.destroy().catch(() => undefined);
    throw new Error(`Cannot migrate store ${redactUrl(url)}: ${message(error)}`, { cause: error });
  }
  // The first migration ran in this open: the store is new, so no earlier process used it.
  const createdNow = (results ?? []).some((r) => r.status === 'Success' && r.migrationName === '0001_initial');
  return new KyselyStore({ db, dialect: loc.kind, ...(walSync ? { walSync } : {}), ...(messageWriter ? { messageWriter } : {}) }, storeEvents(db, loc, notifier, log), createdNow);
}
