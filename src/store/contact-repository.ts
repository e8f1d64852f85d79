/**
 * Address books: the vCard text as written, plus the policy index entries
 * derived from it (core/vcard-index.ts computes them; this layer stores them).
 */
import { createHash } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Contact, ContactEntry } from '../core/types.ts';
import type { ContactRepository } from './types.ts';
import type { ContactsTable } from './schema.ts';
import { chunks, num, toDate, type Db } from './db-util.ts';

/** A strong ETag (quoted), derived from the text so an unchanged card keeps its tag. */
export function vcardEtag(vcard: string): string {
  return `"${createHash('sha256').update(vcard, 'utf8').digest('hex').slice(0, 32)}"`;
}

function toContact(row: Selectable<ContactsTable>): Contact {
  return {
    id: row.id,
    userId: row.user_id,
    book: row.book,
    uid: row.uid,
    vcard: row.vcard,
    etag: row.etag,
    updatedAt: toDate(row.updated_at),
  };
}

export class KyselyContactRepository implements ContactRepository {
  constructor(private readonly s: Db) {}

  async list(userId: number, book?: string): Promise<Contact[]> {
    let q = this.s.db.selectFrom('contacts').selectAll().where('user_id', '=', userId);
    if (book !== undefined) q = q.where('book', '=', book);
    const rows = await q.orderBy('book').orderBy('uid').execute();
    return rows.map(toContact);
  }

  async get(userId: number, book: string, uid: string): Promise<Contact | undefined> {
    const row = await this.s.db
      .selectFrom('contacts')
      .selectAll()
      .where('user_id', '=', userId)
      .where('book', '=', book)
      .where('uid', '=', uid)
      .executeTakeFirst();
    return row && toContact(row);
  }

  async put(userId: number, card: { book: string; uid: string; vcard: string; entries: ContactEntry[] }): Promise<Contact> {
    const etag = vcardEtag(card.vcard);
    const now = Date.now();
    return this.s.db.transaction().execute(async (tx) => {
      const row = await tx
        .insertInto('contacts')
        .values({ user_id: userId, book: card.book, uid: card.uid, vcard: card.vcard, etag, updated_at: now })
        .onConflict((oc) =>
          oc.columns(['user_id', 'book', 'uid']).doUpdateSet({ vcard: card.vcard, etag, updated_at: now }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      await tx.deleteFrom('contact_entries').where('contact_id', '=', row.id).execute();
      // Six values a row: stay far below SQLite's and PostgreSQL's bound-parameter limits.
      for (const part of chunks(card.entries, 1000)) {
        await tx
          .insertInto('contact_entries')
          .values(part.map((e) => ({ contact_id: row.id, user_id: userId, kind: e.kind, value: e.value, action: e.action })))
          .execute();
      }
      return toContact(row);
    });
  }

  async remove(userId: number, book: string, uid: string): Promise<boolean> {
    // Entries go with the card (ON DELETE CASCADE).
    const res = await this.s.db
      .deleteFrom('contacts')
      .where('user_id', '=', userId)
      .where('book', '=', book)
      .where('uid', '=', uid)
      .executeTakeFirst();
    return num(res.numDeletedRows) > 0;
  }

  async match(
    userId: number,
    probes: Array<{ kind: ContactEntry['kind']; value: string }>,
  ): Promise<Array<ContactEntry & { uid: string; book: string }>> {
    const distinct = [...new Map(probes.map((p) => [`${p.kind}\n${p.value}`, p])).values()];
    if (distinct.length === 0) return [];
    // One query: each (kind, value) pair is an equality on the index
    // (user_id, kind, value), which both planners combine (OR / BitmapOr).
    const rows = await this.s.db
      .selectFrom('contact_entries as e')
      .innerJoin('contacts as c', 'c.id', 'e.contact_id')
      .select(['e.kind', 'e.value', 'e.action', 'c.uid', 'c.book'])
      .where('e.user_id', '=', userId)
      .where((eb) => eb.or(distinct.map((p) => eb.and([eb('e.kind', '=', p.kind), eb('e.value', '=', p.value)]))))
      .orderBy('e.id')
      .execute();
    return rows.map((r) => ({
      kind: r.kind,
      value: r.value,
      action: r.action,
      uid: r.uid,
      book: r.book,
    }));
  }
}
