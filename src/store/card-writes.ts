/**
 * The one way a card is written or deleted, shared by the contacts
 * repository (writes by UID: CLI, API, expected-sender rewrites) and the
 * address-book repository (writes by href: CardDAV). Every write runs inside
 * the caller's transaction and, in that transaction, bumps the book's change
 * counter and records the href in the change log; so no write, whatever its
 * path, can change a card without changing the collection's ctag and sync
 * token.
 *
 * Locking: the first statement of every write is the UPDATE of the book's
 * row, which on PostgreSQL holds the row lock until commit. Writes to one
 * book are therefore serialised, sequence numbers commit in order, and a
 * reader that sees sync_seq = N has seen every change up to N. (SQLite runs
 * one write transaction at a time anyway.)
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Selectable, Transaction } from 'kysely';
import type { Contact, ContactEntry } from '../core/types.ts';
import type { ContactsTable, Database } from './schema.ts';
import { chunks, toDate } from './db-util.ts';
import { rankProbes, rankProbesOfCards, refreshRanks } from './request-rank.ts';

type Tx = Transaction<Database>;

/** A strong ETag (quoted), derived from the text so an unchanged card keeps its tag. */
export function vcardEtag(vcard: string): string {
  return `"${createHash('sha256').update(vcard, 'utf8').digest('hex').slice(0, 32)}"`;
}

export function toContact(row: Selectable<ContactsTable>): Contact {
  return {
    id: row.id,
    userId: row.user_id,
    book: row.book,
    uid: row.uid,
    href: row.href,
    vcard: row.vcard,
    etag: row.etag,
    updatedAt: toDate(row.updated_at),
  };
}

/**
 * Takes the book's next sequence number (and its row lock). With `create`,
 * a missing book is created first (the lazily created `default`, or a book
 * named by the CLI); without it, a missing book gives undefined.
 */
export async function nextSeq(tx: Tx, userId: number, book: string, create: boolean): Promise<{ bookId: number; seq: number } | undefined> {
  if (create) {
    await tx
      .insertInto('address_books')
      .values({ user_id: userId, name: book, display_name: null, description: null, sync_seq: 0, pruned_seq: 0, created_at: Date.now() })
      .onConflict((oc) => oc.columns(['user_id', 'name']).doNothing())
      .execute();
  }
  const row = await tx
    .updateTable('address_books')
    .set((eb) => ({ sync_seq: eb('sync_seq', '+', 1) }))
    .where('user_id', '=', userId)
    .where('name', '=', book)
    .returning(['id', 'sync_seq'])
    .executeTakeFirst();
  if (row) await markAllowlistChanged(tx, userId);
  return row && { bookId: row.id, seq: Number(row.sync_seq) };
}

/**
 * Records that the user's allowlist changed, in the write's transaction: the
 * decisions reconcile (services/decisions.ts) re-decides the user's pending
 * requests and TWM notices from it, whichever process made the write.
 */
export async function markAllowlistChanged(tx: Tx, userId: number): Promise<void> {
  const now = Date.now();
  await tx
    .insertInto('allowlist_changes')
    .values({ user_id: userId, version: 1, changed_at: now })
    .onConflict((oc) => oc.column('user_id').doUpdateSet((eb) => ({ version: eb('allowlist_changes.version', '+', 1), changed_at: now })))
    .execute();
}

/** Records the latest write of an href (a tombstone when deleted). One row per href keeps the log as small as the book. */
export async function logChange(tx: Tx, at: { bookId: number; seq: number }, href: string, deleted: boolean): Promise<void> {
  const values = { seq: at.seq, deleted: deleted ? 1 : 0, changed_at: Date.now() };
  await tx
    .insertInto('contact_changes')
    .values({ book_id: at.bookId, href, ...values })
    .onConflict((oc) => oc.columns(['book_id', 'href']).doUpdateSet(values))
    .execute();
}

const SAFE_HREF_UID = /^[A-Za-z0-9][A-Za-z0-9._@:+=-]{0,200}$/;

/** The href of a card created without one (CLI, API, import): `<uid>.vcf` when that is a plain, free name. */
export async function freeHref(tx: Tx, userId: number, book: string, uid: string): Promise<string> {
  if (SAFE_HREF_UID.test(uid)) {
    const href = `${uid}.vcf`;
    const taken = await tx
      .selectFrom('contacts')
      .select('id')
      .where('user_id', '=', userId)
      .where('book', '=', book)
      .where('href', '=', href)
      .executeTakeFirst();
    if (!taken) return href;
  }
  return `${randomUUID()}.vcf`;
}

/**
 * Replaces a card's policy index entries, and ranks again the Screener
 * requests (of every account) whose "known on this server" they change.
 */
export async function replaceEntries(tx: Tx, userId: number, contactId: number, entries: ContactEntry[]): Promise<void> {
  const before = await rankProbesOfCards(tx, [contactId]);
  await tx.deleteFrom('contact_entries').where('contact_id', '=', contactId).execute();
  // Six values a row: stay far below SQLite's and PostgreSQL's bound-parameter limits.
  for (const part of chunks(entries, 1000)) {
    await tx
      .insertInto('contact_entries')
      .values(part.map((e) => ({ contact_id: contactId, user_id: userId, kind: e.kind, value: e.value, action: e.action })))
      .execute();
  }
  const changed = symmetricDifference(before, rankProbes(entries));
  if (changed.length > 0) await refreshRanks(tx, changed);
}

/** The probes in one list and not the other: an unchanged allow entry changes no rank. */
function symmetricDifference(a: ReturnType<typeof rankProbes>, b: ReturnType<typeof rankProbes>) {
  const key = (p: { kind: string; value: string }) => `${p.kind}\n${p.value}`;
  const inA = new Set(a.map(key));
  const inB = new Set(b.map(key));
  return [...a.filter((p) => !inB.has(key(p))), ...b.filter((p) => !inA.has(key(p)))];
}

/**
 * Deletes cards (their entries cascade) and ranks again the Screener
 * requests their allow entries bore on: every deletion of a card goes
 * through here or through `deleteBookCards`.
 */
export async function deleteCards(tx: Tx, contactIds: readonly number[]): Promise<void> {
  const probes = await rankProbesOfCards(tx, contactIds);
  for (const part of chunks([...contactIds], 1000)) await tx.deleteFrom('contacts').where('id', 'in', part).execute();
  if (probes.length > 0) await refreshRanks(tx, probes);
}

/** Deletes every card of a book, as deleteCards does. */
export async function deleteBookCards(tx: Tx, userId: number, book: string): Promise<void> {
  const ids = await tx.selectFrom('contacts').select('id').where('user_id', '=', userId).where('book', '=', book).execute();
  await deleteCards(
    tx,
    ids.map((r) => r.id),
  );
}

export interface CardWrite {
  book: string;
  href: string;
  uid: string;
  vcard: string;
  entries: ContactEntry[];
}

/** Inserts or replaces the card at `existingId` (or a new one), with its entries and the change-log row. */
export async function writeCard(
  tx: Tx,
  userId: number,
  at: { bookId: number; seq: number },
  card: CardWrite,
  existingId: number | undefined,
): Promise<Contact> {
  const etag = vcardEtag(card.vcard);
  const now = Date.now();
  const row =
    existingId === undefined
      ? await tx
          .insertInto('contacts')
          .values({ user_id: userId, book: card.book, uid: card.uid, href: card.href, vcard: card.vcard, etag, updated_at: now })
          .returningAll()
          .executeTakeFirstOrThrow()
      : await tx
          .updateTable('contacts')
          .set({ uid: card.uid, href: card.href, vcard: card.vcard, etag, updated_at: now })
          .where('id', '=', existingId)
          .returningAll()
          .executeTakeFirstOrThrow();
  await replaceEntries(tx, userId, row.id, card.entries);
  await logChange(tx, at, card.href, false);
  return toContact(row);
}
