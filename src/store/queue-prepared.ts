/**
 * The statements every queued message runs, prepared (prepared.ts: built and
 * compiled once per shape, then run with new values): the enqueue's inserts
 * and history rows, the claim and its read, the read of the message, and
 * the outcome's update with its history row.
 *
 * Why: a message relayed over SMTP costs the sending server about ten queue
 * statements, and kysely's build and compile of each, its connection
 * provider and promise layers were about 7% of the relay sender's CPU
 * (perf with bench/smtp-relay.ts), besides the optimising compiler's
 * recompiles of kysely's many node kinds; the store work per message fell
 * by about a quarter (bench/smtp-sender-store.ts measures it alone). A shape's key carries everything that
 * changes its SQL text (list lengths, which columns are set, the dialect by
 * its cache); the values always go through slots.
 */
import { sql, type Kysely } from 'kysely';
import type { QueueState } from '../core/types.ts';
import { preparedOf, type SlotOf } from './prepared.ts';
import type { Database, Dialect } from './schema.ts';

/** A Kysely instance or a transaction (a transaction is a Kysely). */
type Executor = Kysely<Database>;

/** Rows per multi-row statement: bounds the shapes kept (one per length) and the bound parameters. */
export const ROWS_PER_STATEMENT = 100;

/**
 * `state` where a query must reach due entries through `queue_recipients_due` (next_attempt_at,
 * id), the order it reads them in: SQLite's planner, without statistics, prefers any index with
 * an equality on `state` (`queue_recipients_done`) and then sorts every due entry; a unary plus
 * keeps the column out of its index choice. PostgreSQL's planner weighs the LIMIT itself.
 */
export function unindexedState(dialect: Dialect) {
  return dialect === 'sqlite' ? sql<QueueState['state']>`+${sql.ref('state')}` : sql.ref<QueueState['state']>('state');
}

/** The columns of a queue entry (queue-repository.ts `toEntry`). */
export interface EntryRow {
  id: number;
  message_id: string;
  sender: string;
  recipient: string;
  created_at: number;
  state: QueueState['state'];
  next_attempt_at: number | null;
  attempts: number;
  last_error: string | null;
  reply: string | null;
  done_at: number | null;
  warned_at: number | null;
}

const ENTRY_COLUMNS = [
  'r.id',
  'q.message_id',
  'q.sender',
  'r.recipient',
  'q.created_at',
  'r.state',
  'r.next_attempt_at',
  'r.attempts',
  'r.last_error',
  'r.reply',
  'r.done_at',
  'r.warned_at',
] as const;

/** The queue entry's columns: its recipient row joined with its message (queue-repository.ts reads them too). */
export function entries(db: Executor) {
  return db.selectFrom('queue_recipients as r').innerJoin('queue_messages as q', 'q.id', 'r.queue_message').select(ENTRY_COLUMNS);
}

/** The entries of a queued message, in insertion order (after an enqueue). */
export function entriesOfMessage(db: Executor, dialect: Dialect, messageId: string): Promise<EntryRow[]> {
  return preparedOf(dialect).run(db, 'queue.entriesOfMessage', [messageId], (v) => entries(db).where('q.message_id', '=', v<string>(0)).orderBy('r.id'));
}

/** The entries with these ids (at most ROWS_PER_STATEMENT), oldest due first (after a claim). */
export function entriesById(db: Executor, dialect: Dialect, ids: readonly number[]): Promise<EntryRow[]> {
  return preparedOf(dialect).run(db, `queue.entriesById:${ids.length}`, ids, (v) =>
    entries(db)
      .where(
        'r.id',
        'in',
        ids.map((_, i) => v<number>(i)),
      )
      .orderBy('r.next_attempt_at')
      .orderBy('r.id'),
  );
}

/** A queued message whose body is still kept. */
export async function queuedMessage(db: Executor, dialect: Dialect, messageId: string) {
  const [row] = await preparedOf(dialect).run(db, 'queue.message', [messageId], (v) =>
    db.selectFrom('queue_messages').select(['message_id', 'sender', 'raw', 'created_at']).where('message_id', '=', v<string>(0)).where('body_removed_at', 'is', null),
  );
  return row;
}

/** Inserts a queued message; returns its row id. */
export async function insertQueueMessage(
  db: Executor,
  dialect: Dialect,
  row: { message_id: string; sender: string; sender_key: string | null; raw: Buffer; created_at: number },
): Promise<number> {
  const [inserted] = await preparedOf(dialect).run(db, 'queue.insertMessage', [row.message_id, row.sender, row.raw, row.created_at, row.sender_key], (v) =>
    db
      .insertInto('queue_messages')
      .values({ message_id: v<string>(0), sender: v<string>(1), raw: v<Buffer>(2), created_at: v<number>(3), sender_key: v<string | null>(4) })
      .returning('id'),
  );
  if (!inserted) throw new Error(`queue: no id for the inserted message ${row.message_id}`);
  return inserted.id;
}

/** One `scheduled` row per recipient (at most ROWS_PER_STATEMENT); returns their ids and recipients. */
export function insertQueueRecipients(db: Executor, dialect: Dialect, queueMessage: number, recipients: readonly string[], nextAttemptAt: number) {
  return preparedOf(dialect).run(db, `queue.insertRecipients:${recipients.length}`, [queueMessage, 'scheduled', nextAttemptAt, ...recipients], (v) =>
    db
      .insertInto('queue_recipients')
      .values(recipients.map((_, i) => ({ queue_message: v<number>(0), recipient: v<string>(3 + i), state: v<'scheduled'>(1), next_attempt_at: v<number>(2) })))
      .returning(['id', 'recipient']),
  );
}

/** The history rows of queue entries (recipient-events.ts), at most ROWS_PER_STATEMENT. */
export async function insertQueueEvents(
  db: Executor,
  dialect: Dialect,
  rows: ReadonlyArray<{ queueRecipientId: number; recipient: string; state: string; detail: string | null; at: number }>,
): Promise<void> {
  if (rows.length === 0) return;
  await preparedOf(dialect).run(db, `queue.events:${rows.length}`, [null, ...rows.flatMap((r) => [r.queueRecipientId, r.recipient, r.state, r.detail, r.at])], (v) =>
    db.insertInto('recipient_events').values(
      rows.map((_, i) => ({
        queue_recipient_id: v<number>(1 + 5 * i),
        twm_notice_id: v<null>(0),
        recipient: v<string>(2 + 5 * i),
        state: v<string>(3 + 5 * i),
        detail: v<string | null>(4 + 5 * i),
        at: v<number>(5 + 5 * i),
      })),
    ),
  );
}

/**
 * Writes a state's columns (`columns`, from queue-repository.ts `stateColumns`) to one entry,
 * only while `owner` holds its lease when given (the write ends the lease); returns the recipient
 * if the row was written.
 */
export async function updateQueueState(db: Executor, dialect: Dialect, id: number, columns: Record<string, string | number | null>, owner: string | undefined): Promise<string | undefined> {
  const keys = Object.keys(columns);
  const values: unknown[] = [id, owner ?? null, null, ...keys.map((k) => columns[k])];
  const rows = await preparedOf(dialect).run(db, `queue.update:${keys.join(',')}:${owner === undefined ? 'any' : 'owner'}`, values, (v) => {
    const set = Object.fromEntries(keys.map((k, i) => [k, v(3 + i)]));
    const q = db.updateTable('queue_recipients').where('id', '=', v<number>(0));
    return (owner === undefined ? q.set(set) : q.set({ ...set, lease_owner: v<null>(2), lease_until: v<null>(2) }).where('lease_owner', '=', v<string>(1))).returning('recipient');
  });
  return rows[0]?.recipient;
}

/**
 * Claims the `limit` entries first due and free (queue-claims.ts says how), and with them the
 * other due, free entries of their messages, so that a message's recipients at one domain go in one transport call (one round,
 * one DSN) however small the limit. Leaves out the recipients of `excludeDomains` and the ids
 * `excludeIds`. Returns the ids claimed.
 */
export async function claimDue(
  db: Executor,
  dialect: Dialect,
  at: number,
  limit: number,
  lease: { owner: string; until: number },
  excludeDomains: readonly string[],
  excludeIds: readonly number[],
): Promise<number[]> {
  const values = claimValues(at, limit, lease, excludeDomains, excludeIds);
  const rows = await preparedOf(dialect).run(db, `queue.claim:${excludeDomains.length}:${excludeIds.length}`, values, (v) => claimShape(db, dialect, excludeDomains.length, excludeIds.length, v));
  return rows.map((r) => r.id);
}

/** The values of claimShape's slots, in order. */
export function claimValues(at: number, limit: number, lease: { owner: string; until: number }, excludeDomains: readonly string[], excludeIds: readonly number[]): unknown[] {
  // The LIKE patterns of the domains left out: lower() and LIKE ... ESCAPE behave alike on both
  // dialects for ASCII; a non-ASCII domain that slips through is only a wasted claim, released at once.
  const patterns = excludeDomains.map((domain) => `%@${domain.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}`);
  return [lease.owner, lease.until, at, limit, 'scheduled', 'deferred', ...patterns, ...excludeIds];
}

/**
 * The claim's statement for `patterns` domains and `ids` ids left out (exported for the test of
 * its plan). Its two picks, the first messages due (`first`) and their claimable entries
 * (`picked`), are MATERIALIZED CTEs, each evaluated once: as `IN (subquery)`, PostgreSQL may plan
 * a nested-loop semi join that runs a subquery again for every outer row, and each run's FOR
 * UPDATE SKIP LOCKED passes over the rows this statement already updated and takes the next
 * ones: a claim of one message leased every due entry (claims-nested-loop.test.ts).
 */
export function claimShape(db: Executor, dialect: Dialect, patterns: number, ids: number, v: SlotOf) {
  const pg = dialect === 'postgres';
  return db
    .with(
      (cte) => cte('first').materialized(),
      () => {
        const first = claimable(db, dialect, patterns, ids, v).select('queue_message').orderBy('next_attempt_at').orderBy('id').limit(v<number>(3));
        return pg ? first.forUpdate().skipLocked() : first;
      },
    )
    .with(
      (cte) => cte('picked').materialized(),
      (q) => {
        const pick = claimable(db, dialect, patterns, ids, v)
          .select('id')
          .where('queue_message', 'in', q.selectFrom('first').select('first.queue_message'));
        return pg ? pick.forUpdate().skipLocked() : pick;
      },
    )
    .updateTable('queue_recipients')
    .set({ lease_owner: v<string>(0), lease_until: v<number>(1) })
    .where('id', 'in', (eb) => eb.selectFrom('picked').select('picked.id'))
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', v<number>(2))]))
    .returning('id');
}

/** The entries a claim may take: due, free, and neither at a domain left out nor in the caller's own flight (at most its active set). */
function claimable(db: Executor, dialect: Dialect, patterns: number, ids: number, v: SlotOf) {
  const base = 6;
  let q = db
    .selectFrom('queue_recipients')
    .where(unindexedState(dialect), 'in', [v<'scheduled'>(4), v<'deferred'>(5)])
    .where('next_attempt_at', '<=', v<number>(2))
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', v<number>(2))]));
  for (let i = 0; i < patterns; i++) q = q.where(sql<boolean>`lower(recipient) not like ${v<string>(base + i)} escape '\\'`);
  if (ids > 0) {
    q = q.where(
      'id',
      'not in',
      Array.from({ length: ids }, (_, i) => v<number>(base + patterns + i)),
    );
  }
  return q;
}
