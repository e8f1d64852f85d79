/**
 * The statements a TWM notice runs at the recipient (docs/protocol.md 8.1),
 * prepared once per shape (prepared.ts): the lookup of a notice already
 * received, the sender's and the user's pending counts (12.7), the notice's
 * insert with its recipient rows, and the nonce (5.5).
 *
 * Why: a stranger's notice must cost the recipient far less CPU than the
 * same message over SMTP (bench/twm-stranger-cost.ts), and kysely built and
 * compiled each of these statements afresh for every notice, the same SQL
 * each time. The shapes here take every value through a slot; a value
 * written into a builder would be refused when the shape compiles.
 */
import { sql, type Compilable, type Insertable, type Kysely, type Selectable } from 'kysely';
import type { Database, TwmInNoticesTable, TwmInRecipientsTable } from './schema.ts';
import { preparedOf, type SlotOf } from './prepared.ts';
import type { Db } from './db-util.ts';

type NoticeRow = Selectable<TwmInNoticesTable>;
type RecipientRow = Selectable<TwmInRecipientsTable>;
/** The database or one of its transactions. */
type Tx = Kysely<Database>;

/** Recipient rows per insert statement with a prepared shape; larger notices build their insert per call. */
export const PREPARED_RECIPIENT_ROWS = 8;

/** The notice columns, in the order `insertNotice` takes their values. */
const NOTICE_COLUMNS = [
  'sender_domain',
  'id',
  'content_sha256',
  'from_addr',
  'to_addrs',
  'size',
  'sha256',
  'created_at',
  'expires_at',
  'intro',
  'purpose',
  'list_id',
  'received_at',
] as const satisfies ReadonlyArray<keyof NoticeRow>;

/** The recipient columns, in the order `insertRecipients` takes each row's values. */
const RECIPIENT_COLUMNS = [
  'sender_domain',
  'notice_id',
  'rcpt',
  'user_id',
  'state',
  'receipt',
  'receipt_error',
  'next_attempt_at',
  'attempts',
  'last_error',
  'updated_at',
] as const satisfies ReadonlyArray<keyof RecipientRow>;

export type NoticeValues = { [K in (typeof NOTICE_COLUMNS)[number]]: Insertable<TwmInNoticesTable>[K] };
export type RecipientValues = { [K in (typeof RECIPIENT_COLUMNS)[number]]: Insertable<TwmInRecipientsTable>[K] };

function run<R>(s: Db, on: Tx, key: string, values: readonly unknown[], build: (v: SlotOf) => Compilable<R>): Promise<R[]> {
  return preparedOf(s.dialect).run(on, key, values, build);
}

/** The notice received from `senderDomain` with `id`, if any; `on`: the database or a transaction. */
export async function selectNotice(s: Db, senderDomain: string, id: string, on: Tx = s.db): Promise<NoticeRow | undefined> {
  const [row] = await run(s, on, 'twm-in.notice', [senderDomain, id], (v) =>
    on.selectFrom('twm_in_notices').selectAll().where('sender_domain', '=', v<string>(0)).where('id', '=', v<string>(1)),
  );
  return row;
}

/** The notice's recipient rows, by address. */
export function selectRecipients(s: Db, senderDomain: string, id: string, on: Tx = s.db): Promise<RecipientRow[]> {
  return run(s, on, 'twm-in.recipients', [senderDomain, id], (v) =>
    on.selectFrom('twm_in_recipients').selectAll().where('sender_domain', '=', v<string>(0)).where('notice_id', '=', v<string>(1)).orderBy('rcpt'),
  );
}

/**
 * The sender's pending notices for the user. SQLite without statistics (no
 * ANALYZE on a young store) ranked (user_id, state) as selective as the
 * sender's index and walked every pending row of the user: 2.4 ms per notice
 * at 3,000 pending (bench/twm-stranger-cost.ts). The unary `+` keeps the
 * planner off that index, so the query walks the sender's notices
 * (twm_in_notices_from, migration 0018) and checks each one's row by primary
 * key (its plan is tested in twm.test.ts). PostgreSQL plans by its
 * statistics (and has no unary + on text).
 */
export function pendingFromShape(s: Db, v: SlotOf) {
  const unindexed = (column: 'r.user_id' | 'r.state') => (s.dialect === 'sqlite' ? sql`+${sql.ref(column)}` : sql.ref(column));
  return s.db
    .selectFrom('twm_in_notices as n')
    .innerJoin('twm_in_recipients as r', (j) => j.onRef('r.sender_domain', '=', 'n.sender_domain').onRef('r.notice_id', '=', 'n.id'))
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('n.from_addr', '=', v<string>(0))
    .where(unindexed('r.user_id'), '=', v<number>(1))
    .where(unindexed('r.state'), '=', sql.lit('pending'));
}

export async function countPendingFrom(s: Db, userId: number, sender: string): Promise<number | string> {
  const [row] = await run(s, s.db, 'twm-in.pendingFrom', [sender, userId], (v) => pendingFromShape(s, v));
  return row?.n ?? 0;
}

/** Every pending notice row of the user, on its own index (twm_in_recipients_user). */
export async function countPendingTotal(s: Db, userId: number): Promise<number | string> {
  const [row] = await run(s, s.db, 'twm-in.pendingTotal', [userId], (v) =>
    s.db
      .selectFrom('twm_in_recipients')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('user_id', '=', v<number>(0))
      .where('state', '=', sql.lit('pending')),
  );
  return row?.n ?? 0;
}

/**
 * Inserts the notice unless its key (sender_domain, id) is taken: true if inserted. A taken key
 * is not an error, so that a sender's retry does not fail (and roll back) the group commit it
 * shares with other notices (twm-inbound-repository.ts recordUnlessKnown).
 */
export async function insertNotice(s: Db, tx: Tx, notice: NoticeValues): Promise<boolean> {
  const rows = await run(s, tx, 'twm-in.insertNotice', NOTICE_COLUMNS.map((c) => notice[c]), (v) =>
    tx
      .insertInto('twm_in_notices')
      .values(Object.fromEntries(NOTICE_COLUMNS.map((c, i) => [c, v(i)])) as unknown as Insertable<TwmInNoticesTable>)
      .onConflict((oc) => oc.columns(['sender_domain', 'id']).doNothing())
      .returning('id'),
  );
  return rows.length === 1;
}

/** Up to PREPARED_RECIPIENT_ROWS rows in one statement, one shape per row count. */
export async function insertRecipients(s: Db, tx: Tx, rows: readonly RecipientValues[]): Promise<void> {
  if (rows.length === 0) return;
  if (rows.length > PREPARED_RECIPIENT_ROWS) throw new Error(`insertRecipients: ${rows.length} rows; at most ${PREPARED_RECIPIENT_ROWS} per prepared statement`);
  const width = RECIPIENT_COLUMNS.length;
  const values: unknown[] = [];
  for (const r of rows) for (const c of RECIPIENT_COLUMNS) values.push(r[c]);
  await run(s, tx, `twm-in.insertRecipients:${rows.length}`, values, (v) =>
    tx
      .insertInto('twm_in_recipients')
      .values(rows.map((_, n) => Object.fromEntries(RECIPIENT_COLUMNS.map((c, i) => [c, v(n * width + i)])) as unknown as Insertable<TwmInRecipientsTable>)),
  );
}

/**
 * Insert-or-conflict for a nonce (5.5): a row comes back unless the key is
 * taken by an unexpired nonce, whose row is then left as it was. An expired
 * one is taken over in the same statement.
 */
export async function rememberNonce(s: Db, on: Tx, key: string, until: number, now: number): Promise<boolean> {
  const rows = await run(s, on, 'twm-nonce.remember', [key, until, now], (v) => ({
    compile: () =>
      sql<{ key: string }>`
        INSERT INTO twm_nonces (key, expires_at) VALUES (${v<string>(0)}, ${v<number>(1)})
        ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
        WHERE twm_nonces.expires_at <= ${v<number>(2)}
        RETURNING key`.compile(on),
  }));
  return rows.length === 1;
}
