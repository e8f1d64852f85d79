/**
 * The statements every Two-Way Mail delivery runs, prepared (prepared.ts:
 * built and compiled once per shape, then run with new values), on both
 * sides: the sender's notice rows, its fetch and receipt reads and
 * transitions with their history rows, and the recipient's row updates.
 *
 * Why: a TWM message costs the sender about fifteen statements and the
 * recipient a few more (bench/twm-delivery.ts, BENCH_CPU_PROF=twm); kysely's
 * build and compile of each was a large part of the sender's CPU per message.
 * A shape's key carries everything that changes its SQL text (list lengths,
 * which columns are set); the values always go through slots.
 */
import type { Kysely, Updateable } from 'kysely';
import type { TwmInState, TwmOutState } from '../core/twm-types.ts';
import { preparedOf } from './prepared.ts';
import type { Database, Dialect, TwmInRecipientsTable, TwmOutNoticesTable } from './schema.ts';

/** A Kysely instance or a transaction (a transaction is a Kysely). */
type Executor = Kysely<Database>;

/** Every column of a sent notice but the body. */
export const NOTICE_COLUMNS = [
  'id',
  'message_id',
  'sender',
  'domain',
  'content',
  'subject',
  'message_id_header',
  'size',
  'sha256',
  'created_at',
  'expires_at',
  'body_removed_at',
  'expiry_reported_at',
] as const;

/** The notices of a queue message for a domain, oldest first (the notice transport, on every delivery). */
export function noticesOfMessage(db: Executor, dialect: Dialect, messageId: string, domain: string) {
  return preparedOf(dialect).run(db, 'twmOut.byMessage', [messageId, domain], (v) =>
    db
      .selectFrom('twm_out_notices')
      .select(NOTICE_COLUMNS)
      .where('message_id', '=', v<string>(0))
      .where('domain', '=', v<string>(1))
      .orderBy('created_at')
      .orderBy('id'),
  );
}

/** The recipient domain, expiry and recipients of a notice, one row per recipient (none: no row of recipients, one null row). */
export function noticeFacts(db: Executor, dialect: Dialect, id: string) {
  return preparedOf(dialect).run(db, 'twmOut.facts', [id], (v) =>
    db
      .selectFrom('twm_out_notices as n')
      .leftJoin('twm_out_recipients as r', 'r.notice_id', 'n.id')
      .select(['n.domain', 'n.expires_at', 'r.recipient'])
      .where('n.id', '=', v<string>(0))
      .orderBy('r.recipient'),
  );
}

/**
 * A notice's expiry and body (empty once removed, with `body_removed_at` set), and with
 * `body_in_queue` the queue's copy (`queue_raw`, null once the queue dropped it; twm-body-sharing.ts).
 */
export function servableNotice(db: Executor, dialect: Dialect, id: string) {
  return preparedOf(dialect).run(db, 'twmOut.servable', [id], (v) =>
    db
      .selectFrom('twm_out_notices as n')
      .leftJoin('queue_messages as q', (join) => join.onRef('q.message_id', '=', 'n.message_id').on('q.body_removed_at', 'is', null))
      .select(['n.expires_at', 'n.body', 'n.body_removed_at', 'n.body_in_queue', 'q.raw as queue_raw'])
      .where('n.id', '=', v<string>(0)),
  );
}

/** Inserts a notice with its body; returns its columns but the body. */
export function insertNotice(db: Executor, dialect: Dialect, row: TwmOutNoticesTable) {
  const keys = Object.keys(row) as Array<keyof TwmOutNoticesTable>;
  return preparedOf(dialect).run(
    db,
    `twmOut.insertNotice:${keys.join(',')}`,
    keys.map((k) => row[k]),
    (v) =>
      db
        .insertInto('twm_out_notices')
        .values(Object.fromEntries(keys.map((k, i) => [k, v(i)])) as unknown as TwmOutNoticesTable)
        .returning(NOTICE_COLUMNS),
  );
}

/** One `queued` row per recipient of a new notice. */
export async function insertRecipients(db: Executor, dialect: Dialect, noticeId: string, recipients: readonly string[], state: TwmOutState, at: number): Promise<void> {
  // Even the null is a slot: a prepared query takes no value in its builder.
  await preparedOf(dialect).run(db, `twmOut.insertRecipients:${recipients.length}`, [noticeId, state, at, null, ...recipients], (v) =>
    db
      .insertInto('twm_out_recipients')
      .values(recipients.map((_, i) => ({ notice_id: v<string>(0), recipient: v<string>(4 + i), state: v<TwmOutState>(1), reason: v<null>(3), updated_at: v<number>(2) }))),
  );
}

/** The history rows of TWM recipients (recipient-events.ts): one per recipient that entered `state`. */
export async function insertTwmEvents(db: Executor, dialect: Dialect, noticeId: string, state: string, at: number, rows: ReadonlyArray<{ recipient: string; detail: string | null }>): Promise<void> {
  if (rows.length === 0) return;
  await preparedOf(dialect).run(db, `twmOut.events:${rows.length}`, [noticeId, state, at, null, ...rows.flatMap((r) => [r.recipient, r.detail])], (v) =>
    db.insertInto('recipient_events').values(
      rows.map((_, i) => ({ queue_recipient_id: v<null>(3), twm_notice_id: v<string>(0), recipient: v<string>(4 + 2 * i), state: v<string>(1), detail: v<string | null>(5 + 2 * i), at: v<number>(2) })),
    ),
  );
}

/** The conditional move of listed recipients from one of `from` to `to`; `reason` undefined keeps the stored one. */
export function moveRecipients(
  db: Executor,
  dialect: Dialect,
  change: { id: string; recipients: readonly string[]; from: readonly TwmOutState[]; to: TwmOutState; reason: string | null | undefined; at: number },
) {
  const { recipients, from } = change;
  const withReason = change.reason !== undefined;
  const values = [change.to, change.at, change.reason ?? null, change.id, ...recipients, ...from];
  return preparedOf(dialect).run(db, `twmOut.move:${recipients.length}:${from.length}:${withReason}`, values, (v) =>
    db
      .updateTable('twm_out_recipients')
      .set({ state: v<TwmOutState>(0), updated_at: v<number>(1), ...(withReason ? { reason: v<string | null>(2) } : {}) })
      .where('notice_id', '=', v<string>(3))
      .where(
        'recipient',
        'in',
        recipients.map((_, i) => v<string>(4 + i)),
      )
      .where(
        'state',
        'in',
        from.map((_, i) => v<TwmOutState>(4 + recipients.length + i)),
      )
      .returning(['recipient', 'reason']),
  );
}

/**
 * Empties the body of a notice none of whose recipients is open any more (`final`: the final
 * states), in one statement; returns the notice's message and whether its body is the queue's
 * (no row: the body stays).
 */
export function dropBodyIfFinal(db: Executor, dialect: Dialect, id: string, at: number, final: readonly TwmOutState[]) {
  return preparedOf(dialect).run(db, `twmOut.dropBodyIfFinal:${final.length}`, [Buffer.alloc(0), at, id, ...final], (v) =>
    db
      .updateTable('twm_out_notices')
      .set({ body: v<Buffer>(0), body_removed_at: v<number>(1) })
      .where('id', '=', v<string>(2))
      .where('body_removed_at', 'is', null)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('twm_out_recipients as r')
              .select('r.recipient')
              .whereRef('r.notice_id', '=', 'twm_out_notices.id')
              .where(
                'r.state',
                'not in',
                final.map((_, i) => v<TwmOutState>(3 + i)),
              ),
          ),
        ),
      )
      .returning(['message_id', 'body_in_queue']),
  );
}

type InColumns = Omit<Updateable<TwmInRecipientsTable>, 'sender_domain' | 'notice_id' | 'rcpt' | 'user_id'>;

/**
 * The recipient's conditional update of its rows (twm-inbound-repository.ts
 * update): the columns of `set`, where the state is one of `from` and, with
 * an owner, only rows it still holds.
 */
export function updateInRecipients(
  db: Executor,
  dialect: Dialect,
  where: { senderDomain: string; id: string; rcpts: readonly string[]; from: readonly TwmInState[]; owner: string | undefined },
  set: InColumns,
) {
  const keys = Object.keys(set) as Array<keyof InColumns>;
  const { rcpts, from, owner } = where;
  const head = [...keys.map((k) => set[k]), where.senderDomain, where.id, owner ?? null];
  const base = head.length;
  const values = [...head, ...rcpts, ...from];
  const key = `twmIn.update:${keys.join(',')}:${rcpts.length}:${from.length}:${owner !== undefined}`;
  return preparedOf(dialect).run(db, key, values, (v) => {
    let q = db
      .updateTable('twm_in_recipients')
      .set(Object.fromEntries(keys.map((k, i) => [k, v(i)])) as InColumns)
      .where('sender_domain', '=', v<string>(keys.length))
      .where('notice_id', '=', v<string>(keys.length + 1))
      .where(
        'rcpt',
        'in',
        rcpts.map((_, i) => v<string>(base + i)),
      )
      .where(
        'state',
        'in',
        from.map((_, i) => v<TwmInState>(base + rcpts.length + i)),
      );
    if (owner !== undefined) q = q.where('lease_owner', '=', v<string>(keys.length + 2));
    return q.returning('rcpt');
  });
}
