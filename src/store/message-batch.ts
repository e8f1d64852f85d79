/**
 * The body of one delivery transaction: stores a batch of messages with as
 * few statements as the batch allows (one uid reservation per mailbox, one
 * upsert per request sender, bodies and messages in multi-row inserts).
 */
import { createHash } from 'node:crypto';
import type { Insertable, Transaction } from 'kysely';
import type { MailboxName, MessageSummary } from '../core/types.ts';
import type { NewMessage } from './types.ts';
import type { Database, Dialect, MessagesTable } from './schema.ts';
import { preparedOf } from './prepared.ts';
import { chunks, num } from './db-util.ts';
import { upsertRequests } from './request-upsert.ts';
import { consumeExpectInTx } from './expect-consume.ts';
import { structureColumns } from '../core/prepared-body.ts';

export { structureColumns, wireColumns } from '../core/prepared-body.ts';

/** structureColumns as values, in MESSAGE_COLUMNS order: those computed ahead (NewMessage.prepared) when given. */
function structureValues(m: NewMessage): Array<string | null> {
  const c = m.prepared?.columns ?? structureColumns(m.raw);
  return [c.structure, c.imap_envelope, c.imap_bodystructure, c.imap_body];
}

type Tx = Transaction<Database>;

/** The columns of a stored message, in the order storeMessages lists their values. */
const MESSAGE_COLUMNS = [
  'user_id',
  'mailbox_id',
  'uid',
  'flags',
  'size',
  'sender',
  'from_addr',
  'subject',
  'received_at',
  'first_contact',
  'request_id',
  'body_id',
  'twm_key',
  'modseq',
  'structure',
  'imap_envelope',
  'imap_bodystructure',
  'imap_body',
] as const satisfies ReadonlyArray<keyof MessagesTable>;

/** Rows per multi-row statement: at 18 parameters a message row, 9,000 stays well under both dialects' limits (SQLite 32,766, PostgreSQL 65,535). */
const ROWS_PER_INSERT = 500;
/** Bodies are large; keep each statement to a reasonable size. */
const BODIES_PER_INSERT = 50;

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const g = groups.get(k);
    if (g) g.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/**
 * Reserves consecutive UIDs in each target mailbox: one UPDATE ... RETURNING
 * per mailbox, which also takes the mailbox's row lock on PostgreSQL, so
 * concurrent writers never hand out the same UID. Mailboxes are locked in a
 * fixed order to rule out deadlocks between writers.
 */
async function reserveUids(tx: Tx, dialect: Dialect, items: readonly NewMessage[]): Promise<Array<{ mailboxId: number; uid: number; modseq: number }>> {
  const out = new Array<{ mailboxId: number; uid: number; modseq: number }>(items.length);
  const indexes = items.map((_, i) => i);
  const groups = [...groupBy(indexes, (i) => `${items[i]!.userId}\n${items[i]!.mailbox}`).values()].sort((a, b) => {
    const x = items[a[0]!]!;
    const y = items[b[0]!]!;
    return x.userId - y.userId || (x.mailbox < y.mailbox ? -1 : x.mailbox > y.mailbox ? 1 : 0);
  });
  for (const group of groups) {
    const first = items[group[0]!]!;
    const [row] = await preparedOf(dialect).run(tx, 'mailboxes.reserveUids', [group.length, first.userId, first.mailbox], (v) =>
      tx
        .updateTable('mailboxes')
        // One modseq for the whole arrival (RFC 7162: a change to the mailbox).
        .set((eb) => ({ uid_next: eb('uid_next', '+', v<number>(0)), highest_modseq: eb('highest_modseq', '+', eb.lit(1)) }))
        .where('user_id', '=', v<number>(1))
        .where('name', '=', v<MailboxName>(2))
        .returning(['id', 'uid_next', 'highest_modseq']),
    );
    if (!row) throw new Error(`No mailbox ${first.mailbox} for user ${first.userId}`);
    const start = num(row.uid_next) - group.length;
    group.forEach((i, n) => {
      out[i] = { mailboxId: row.id, uid: start + n, modseq: num(row.highest_modseq) };
    });
  }
  return out;
}

/**
 * The Screener request of each item that has one (request-upsert.ts folds a
 * batch's attempts per (user, sender)). Returns the request id per item
 * (undefined for items without a request).
 */
async function requestIds(tx: Tx, dialect: Dialect, items: readonly NewMessage[]): Promise<Array<number | undefined>> {
  const out = new Array<number | undefined>(items.length);
  const withRequest = items.map((_, i) => i).filter((i) => items[i]!.request);
  const ids = await upsertRequests(
    tx,
    dialect,
    withRequest.map((i) => {
      const m = items[i]!;
      const r = m.request!;
      return {
        userId: m.userId,
        sender: r.sender,
        authDomain: r.authDomain,
        subject: r.subject,
        intro: null,
        at: m.receivedAt,
        spamScore: r.spamScore ?? null,
        likelySpam: r.likelySpam ?? false,
        dmarc: r.dmarc ?? null,
      };
    }),
  );
  withRequest.forEach((i, n) => {
    out[i] = ids[n];
  });
  return out;
}

/**
 * Finds or stores each distinct body once (content-addressed by SHA-256).
 *
 * Inserted first, looked up only where the insert met an existing body: the stored form of a
 * received message starts with its own Received: line (with its queue id), so a body already
 * stored is the rare case (the same bytes for the recipients of one delivery share a row within
 * the batch), and a lookup ahead of every insert was one more statement per group commit round
 * for nothing. On PostgreSQL an existing body is then read FOR KEY SHARE, so that a concurrent
 * garbage collection (messages.remove) cannot delete it before this transaction's messages
 * reference it; one collected between the insert and that read is inserted again.
 */
async function upsertBodies(tx: Tx, dialect: Dialect, items: readonly NewMessage[]): Promise<number[]> {
  const hashes = items.map((m) => m.prepared?.sha256 ?? createHash('sha256').update(m.raw).digest('hex'));
  const bySha = new Map<string, Buffer>();
  for (const [i, h] of hashes.entries()) bySha.set(h, items[i]!.raw);
  const ids = new Map<string, number>();

  const insert = async (shas: string[]): Promise<void> => {
    for (const part of chunks(shas, BODIES_PER_INSERT)) {
      const values = part.flatMap((sha256) => [sha256, bySha.get(sha256)!, bySha.get(sha256)!.length]);
      const rows = await preparedOf(dialect).run(tx, `bodies.insert:${part.length}`, values, (v) =>
        tx
          .insertInto('message_bodies')
          .values(part.map((_, i) => ({ sha256: v<string>(3 * i), raw: v<Buffer>(3 * i + 1), size: v<number>(3 * i + 2) })))
          .onConflict((oc) => oc.column('sha256').doNothing())
          .returning(['id', 'sha256']),
      );
      for (const r of rows) ids.set(r.sha256, r.id);
    }
  };
  const lookup = async (shas: string[]): Promise<void> => {
    for (const part of chunks(shas, ROWS_PER_INSERT)) {
      const rows = await preparedOf(dialect).run(tx, `bodies.lookup:${part.length}`, part, (v) =>
        tx
          .selectFrom('message_bodies')
          .select(['id', 'sha256'])
          .where(
            'sha256',
            'in',
            part.map((_, i) => v<string>(i)),
          )
          .$if(dialect === 'postgres', (q) => q.forKeyShare()),
      );
      for (const r of rows) ids.set(r.sha256, r.id);
    }
  };
  const missing = () => [...bySha.keys()].filter((h) => !ids.has(h)).sort(); // sorted: a fixed lock order

  // Bounded: each pass needs another transaction to collect the body between the two statements.
  for (let pass = 0; pass < 3 && missing().length > 0; pass++) {
    await insert(missing());
    const existing = missing();
    if (existing.length > 0) await lookup(existing);
  }

  return hashes.map((h) => {
    const id = ids.get(h);
    if (id === undefined) throw new Error(`Message body ${h} vanished during delivery`);
    return id;
  });
}

/** Stores `items` inside `tx` and returns their summaries, in order. */
export async function storeMessages(tx: Tx, dialect: Dialect, items: readonly NewMessage[]): Promise<MessageSummary[]> {
  // Writes first: on SQLite the transaction takes the write lock at once
  // instead of upgrading a read snapshot later (which can fail with BUSY).
  const slots = await reserveUids(tx, dialect, items);
  const requestIdOf = await requestIds(tx, dialect, items);
  const bodyIds = await upsertBodies(tx, dialect, items);

  // One row of values per message, in MESSAGE_COLUMNS order.
  const rows = items.map((m, i) => [
    m.userId,
    slots[i]!.mailboxId,
    slots[i]!.uid,
    JSON.stringify(m.flags),
    m.raw.length,
    m.sender,
    m.from,
    m.subject,
    m.receivedAt.getTime(),
    m.firstContact ? 1 : 0,
    // Only a message held in the Screener belongs to its request.
    m.mailbox === 'Screener' ? (requestIdOf[i] ?? null) : null,
    bodyIds[i]!,
    m.twmKey ?? null,
    slots[i]!.modseq,
    // Computed once here, so that IMAP FETCH never parses a stored message again.
    ...structureValues(m),
  ]);

  // RETURNING order is not guaranteed, so rows are matched back by (mailbox, uid), which is unique.
  const idBySlot = new Map<string, number>();
  for (const part of chunks(rows, ROWS_PER_INSERT)) {
    const inserted = await preparedOf(dialect).run(tx, `messages.insert:${part.length}`, part.flat(), (v) =>
      tx
        .insertInto('messages')
        .values(part.map((_, r) => Object.fromEntries(MESSAGE_COLUMNS.map((c, k) => [c, v(r * MESSAGE_COLUMNS.length + k)])) as Insertable<MessagesTable>))
        .returning(['id', 'mailbox_id', 'uid']),
    );
    for (const r of inserted) idBySlot.set(`${r.mailbox_id}:${num(r.uid)}`, r.id);
  }

  // In the delivery's transaction: the message and the use it consumes commit together (9.3).
  for (const m of items) if (m.consumeExpect) await consumeExpectInTx(tx, m.userId, m.consumeExpect);

  return items.map((m, i) => ({
    id: idBySlot.get(`${slots[i]!.mailboxId}:${slots[i]!.uid}`)!,
    userId: m.userId,
    mailbox: m.mailbox,
    uid: slots[i]!.uid,
    flags: [...m.flags],
    size: m.raw.length,
    sender: m.sender,
    from: m.from,
    subject: m.subject,
    receivedAt: new Date(m.receivedAt.getTime()),
    firstContact: m.firstContact,
  }));
}
