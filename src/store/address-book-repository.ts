/**
 * Address books for CardDAV: collections, cards by href with conditional
 * writes, and the change log (card-writes.ts explains the locking that makes
 * sequence numbers a safe sync token).
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Contact, ContactEntry } from '../core/types.ts';
import type { AddressBook, AddressBookRepository, CardConditions, CardPutResult } from './types.ts';
import { StoreConflictError } from './types.ts';
import type { AddressBooksTable } from './schema.ts';
import { deleteBookCards, deleteCards, logChange, markAllowlistChanged, nextSeq, toContact, writeCard } from './card-writes.ts';
import { isUniqueViolation, num, toDate, type Db } from './db-util.ts';

function toBook(row: Selectable<AddressBooksTable>): AddressBook {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    displayName: row.display_name,
    description: row.description,
    syncSeq: num(row.sync_seq),
    prunedSeq: num(row.pruned_seq),
    createdAt: toDate(row.created_at),
  };
}

/** RFC 9110 13.1.1 and 13.1.2 with strong comparison; `current` undefined: no such resource. */
export function conditionsHold(conditions: CardConditions | undefined, current: string | undefined): boolean {
  if (!conditions) return true;
  const { ifMatch, ifNoneMatch } = conditions;
  if (ifMatch !== undefined) {
    if (current === undefined) return false;
    if (ifMatch !== '*' && !ifMatch.includes(current)) return false;
  }
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch === '*') return current === undefined;
    if (current !== undefined && ifNoneMatch.includes(current)) return false;
  }
  return true;
}

export class KyselyAddressBookRepository implements AddressBookRepository {
  constructor(private readonly s: Db) {}

  async list(userId: number): Promise<AddressBook[]> {
    const rows = await this.s.db.selectFrom('address_books').selectAll().where('user_id', '=', userId).orderBy('name').execute();
    return rows.map(toBook);
  }

  async get(userId: number, name: string): Promise<AddressBook | undefined> {
    const row = await this.s.db
      .selectFrom('address_books')
      .selectAll()
      .where('user_id', '=', userId)
      .where('name', '=', name)
      .executeTakeFirst();
    return row && toBook(row);
  }

  async ensure(userId: number, name: string): Promise<AddressBook> {
    await this.s.db
      .insertInto('address_books')
      .values({ user_id: userId, name, display_name: null, description: null, sync_seq: 0, pruned_seq: 0, created_at: Date.now() })
      .onConflict((oc) => oc.columns(['user_id', 'name']).doNothing())
      .execute();
    return (await this.get(userId, name))!;
  }

  async create(userId: number, input: { name: string; displayName?: string | null; description?: string | null }): Promise<AddressBook> {
    try {
      const row = await this.s.db
        .insertInto('address_books')
        .values({
          user_id: userId,
          name: input.name,
          display_name: input.displayName ?? null,
          description: input.description ?? null,
          sync_seq: 0,
          pruned_seq: 0,
          created_at: Date.now(),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toBook(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError(`Address book ${input.name} exists`);
      throw err;
    }
  }

  async update(userId: number, name: string, patch: { displayName?: string | null; description?: string | null }): Promise<boolean> {
    const set = {
      ...(patch.displayName !== undefined ? { display_name: patch.displayName } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
    };
    if (Object.keys(set).length === 0) return (await this.get(userId, name)) !== undefined;
    const res = await this.s.db.updateTable('address_books').set(set).where('user_id', '=', userId).where('name', '=', name).executeTakeFirst();
    return num(res.numUpdatedRows) > 0;
  }

  async remove(userId: number, name: string): Promise<boolean> {
    return this.s.db.transaction().execute(async (tx) => {
      // Cards first (their entries cascade), then the book (its change log cascades).
      await deleteBookCards(tx, userId, name);
      const res = await tx.deleteFrom('address_books').where('user_id', '=', userId).where('name', '=', name).executeTakeFirst();
      const removed = num(res.numDeletedRows) > 0;
      if (removed) await markAllowlistChanged(tx, userId);
      return removed;
    });
  }

  async getCard(userId: number, book: string, href: string): Promise<Contact | undefined> {
    const row = await this.s.db
      .selectFrom('contacts')
      .selectAll()
      .where('user_id', '=', userId)
      .where('book', '=', book)
      .where('href', '=', href)
      .executeTakeFirst();
    return row && toContact(row);
  }

  async putCard(
    userId: number,
    card: { book: string; href: string; uid: string | null; vcard: string; entries: ContactEntry[] },
    conditions?: CardConditions,
  ): Promise<CardPutResult> {
    return this.s.db.transaction().execute(async (tx): Promise<CardPutResult> => {
      const at = await nextSeq(tx, userId, card.book, false);
      if (!at) return { status: 'no-book' };
      const existing = await tx
        .selectFrom('contacts')
        .select(['id', 'uid', 'etag'])
        .where('user_id', '=', userId)
        .where('book', '=', card.book)
        .where('href', '=', card.href)
        .executeTakeFirst();
      // A failed precondition returns before any write; the rolled-back sequence number is never seen.
      if (!conditionsHold(conditions, existing?.etag)) throw new Abort({ status: 'precondition-failed' });
      const uid = card.uid ?? existing?.uid ?? randomUUID();
      const sameUid = await tx
        .selectFrom('contacts')
        .select(['id', 'href'])
        .where('user_id', '=', userId)
        .where('book', '=', card.book)
        .where('uid', '=', uid)
        .executeTakeFirst();
      if (sameUid && sameUid.id !== existing?.id) throw new Abort({ status: 'uid-conflict', href: sameUid.href });
      const contact = await writeCard(tx, userId, at, { book: card.book, href: card.href, uid, vcard: card.vcard, entries: card.entries }, existing?.id);
      return { status: 'ok', contact, created: existing === undefined };
    }).catch((err: unknown) => {
      if (err instanceof Abort) return err.result as CardPutResult;
      throw err;
    });
  }

  async removeCard(userId: number, book: string, href: string, conditions?: CardConditions): Promise<'deleted' | 'not-found' | 'precondition-failed'> {
    return this.s.db.transaction().execute(async (tx) => {
      const at = await nextSeq(tx, userId, book, false);
      if (!at) return 'not-found';
      const existing = await tx
        .selectFrom('contacts')
        .select(['id', 'etag'])
        .where('user_id', '=', userId)
        .where('book', '=', book)
        .where('href', '=', href)
        .executeTakeFirst();
      if (!conditionsHold(conditions, existing?.etag)) throw new Abort('precondition-failed');
      if (!existing) throw new Abort('not-found');
      await deleteCards(tx, [existing.id]);
      await logChange(tx, at, href, true);
      return 'deleted' as const;
    }).catch((err: unknown) => {
      if (err instanceof Abort) return err.result as 'not-found' | 'precondition-failed';
      throw err;
    });
  }

  async changes(userId: number, book: string, sinceSeq: number): Promise<{ seq: number; changes: Array<{ href: string; deleted: boolean }> } | 'invalid' | undefined> {
    // The book's counter first: every change up to it has committed (card-writes.ts), so nothing below it is missed.
    const b = await this.get(userId, book);
    if (!b) return undefined;
    if (!Number.isSafeInteger(sinceSeq) || sinceSeq < b.prunedSeq || sinceSeq > b.syncSeq) return 'invalid';
    const rows = await this.s.db
      .selectFrom('contact_changes')
      .select(['href', 'deleted'])
      .where('book_id', '=', b.id)
      .where('seq', '>', sinceSeq)
      .where('seq', '<=', b.syncSeq)
      .orderBy('seq')
      .execute();
    return { seq: b.syncSeq, changes: rows.map((r) => ({ href: r.href, deleted: num(r.deleted) === 1 })) };
  }

  async changedAllowlists(limit: number): Promise<Array<{ userId: number; version: number }>> {
    const rows = await this.s.db.selectFrom('allowlist_changes').select(['user_id', 'version']).orderBy('changed_at').orderBy('user_id').limit(limit).execute();
    return rows.map((r) => ({ userId: r.user_id, version: num(r.version) }));
  }

  async settleAllowlist(userId: number, version: number): Promise<boolean> {
    // Only the version that was read: a write since then keeps the mark for the next round.
    const res = await this.s.db.deleteFrom('allowlist_changes').where('user_id', '=', userId).where('version', '=', version).executeTakeFirst();
    return num(res.numDeletedRows) > 0;
  }

  async pruneTombstones(olderThan: Date): Promise<number> {
    return this.s.db.transaction().execute(async (tx) => {
      const cutoff = olderThan.getTime();
      const gone = await tx
        .selectFrom('contact_changes')
        .select(['book_id', (eb) => eb.fn.max('seq').as('seq')])
        .where('deleted', '=', 1)
        .where('changed_at', '<', cutoff)
        .groupBy('book_id')
        .execute();
      let n = 0;
      for (const g of gone) {
        const seq = num(g.seq);
        // A token older than the last forgotten tombstone could miss that deletion: it stops being valid.
        await tx
          .updateTable('address_books')
          .set({ pruned_seq: seq })
          .where('id', '=', g.book_id)
          .where('pruned_seq', '<', seq)
          .execute();
        const res = await tx
          .deleteFrom('contact_changes')
          .where('book_id', '=', g.book_id)
          .where('deleted', '=', 1)
          .where('seq', '<=', seq)
          .executeTakeFirst();
        n += num(res.numDeletedRows);
      }
      return n;
    });
  }

  async cardsWithEntryKind(kind: ContactEntry['kind'], userId?: number): Promise<Array<{ userId: number; book: string; href: string }>> {
    let q = this.s.db
      .selectFrom('contact_entries as e')
      .innerJoin('contacts as c', 'c.id', 'e.contact_id')
      .select(['c.user_id', 'c.book', 'c.href'])
      .where('e.kind', '=', kind);
    if (userId !== undefined) q = q.where('c.user_id', '=', userId);
    const rows = await q
      .distinct()
      .orderBy('c.user_id')
      .execute();
    return rows.map((r) => ({ userId: r.user_id, book: r.book, href: r.href }));
  }
}

/** Ends a transaction early with a result (rolls it back). */
class Abort extends Error {
  constructor(readonly result: unknown) {
    super('aborted');
  }
}
