/**
 * CONDSTORE bookkeeping shared by every writer of messages: each change to a
 * mailbox raises its HIGHESTMODSEQ by one (an UPDATE ... RETURNING, atomic
 * and row-locking on both dialects), and UIDs that leave a mailbox are
 * recorded with that modseq for QRESYNC.
 */
import type { Transaction } from 'kysely';
import type { Database } from './schema.ts';
import { chunks, num } from './db-util.ts';

type Tx = Transaction<Database>;

export async function nextModseq(tx: Tx, mailboxId: number): Promise<number> {
  const row = await tx
    .updateTable('mailboxes')
    .set((eb) => ({ highest_modseq: eb('highest_modseq', '+', 1) }))
    .where('id', '=', mailboxId)
    .returning('highest_modseq')
    .executeTakeFirstOrThrow();
  return num(row.highest_modseq);
}

/** Records removed UIDs of one mailbox under a fresh modseq; returns it. */
export async function recordExpunges(tx: Tx, mailboxId: number, uids: readonly number[]): Promise<number> {
  const modseq = await nextModseq(tx, mailboxId);
  await insertExpunges(tx, mailboxId, uids, modseq);
  return modseq;
}

/** Records removed UIDs of one mailbox under a modseq already taken (see nextModseq). */
export async function insertExpunges(tx: Tx, mailboxId: number, uids: readonly number[], modseq: number): Promise<void> {
  for (const part of chunks([...uids], 500)) {
    await tx
      .insertInto('imap_expunges')
      .values(part.map((uid) => ({ mailbox_id: mailboxId, uid, modseq })))
      .execute();
  }
}
