/**
 * Cards by id, for the web app's Contacts page: a key-paged, searchable
 * list, one card, and edits of one card. An edit is a write by href with
 * the card's ETag as If-Match, through the same store call as a CardDAV PUT
 * (store.addressBooks.putCard: the index entries, the book's sync token and
 * the allowlist mark in one transaction), so a CardDAV client sees it at its
 * next sync, and an edit made from a stale page is refused, not lost.
 */
import { conflict, forbidden, invalid, notFound } from '../core/errors.ts';
import type { Contact } from '../core/types.ts';
import { parseContactCard } from '../core/vcard/index-entries.ts';
import { VCardError } from '../core/vcard/parse.ts';
import { setBlocked } from '../core/vcard/write.ts';
import type { Store } from '../store/types.ts';
import { expectCapProblem } from './expect-cap.ts';

export interface ExpectedSender {
  /** The card's id (removing the entry removes its card, which the server wrote for it alone). */
  id: number;
  domain: string;
  purpose: string;
  until: Date;
  uses: number | null;
  from: string | null;
  requireMarker: boolean;
}

export function contactCards(store: Pick<Store, 'contacts' | 'addressBooks'>, clock: () => Date, changed: () => void) {
  async function byId(userId: number, id: number): Promise<Contact> {
    // Another user's id is exactly as absent as an id that never existed.
    const card = Number.isSafeInteger(id) && id > 0 ? await store.contacts.byId(userId, id) : undefined;
    if (!card) throw notFound('No such contact');
    return card;
  }

  const rewrite = (userId: number, card: Contact, vcard: string, etag: string) => rewriteCard({ store, clock, changed }, userId, card, vcard, etag);

  return {
    byId,

    /** Newest first, key-paged by id; `older` is the `beforeId` of the next page, if there is one. */
    async page(userId: number, options: { beforeId?: number; text?: string; limit: number }): Promise<{ cards: Contact[]; older: number | undefined }> {
      const rows = await store.contacts.page(userId, options);
      const cards = rows.slice(0, options.limit);
      return { cards, older: rows.length > options.limit ? cards[cards.length - 1]!.id : undefined };
    },

    count: (userId: number) => store.contacts.count(userId),

    /** Replaces the card's text as the user edited it (its UID stays). */
    async replace(userId: number, id: number, vcard: string, etag: string): Promise<Contact> {
      return rewrite(userId, await byId(userId, id), vcard, etag);
    },

    /** Sets or lifts X-TWOWAY-BLOCKED on the card itself (its other lines unchanged). */
    async setBlocked(userId: number, id: number, blocked: boolean): Promise<Contact> {
      const card = await byId(userId, id);
      let entries: ReturnType<typeof parseContactCard>['entries'];
      try {
        entries = parseContactCard(card.vcard).entries;
      } catch (err) {
        throw invalid(`This card cannot be read (${err instanceof VCardError ? err.message : String(err)}); edit its vCard instead`);
      }
      if (blocked && entries.some((e) => e.kind === 'expect')) throw invalid('An expected-sender entry cannot be blocked; remove it instead');
      return rewrite(userId, card, setBlocked(card.vcard, blocked), card.etag);
    },

    async removeById(userId: number, id: number): Promise<Contact> {
      const card = await byId(userId, id);
      if (!(await store.contacts.remove(userId, card.book, card.uid))) throw notFound('No such contact');
      changed();
      return card;
    },

    /**
     * Every expected-sender entry of the user, soonest to expire first
     * (few: the cap on live entries bounds them, plus expired ones the sweep
     * has not removed yet).
     */
    expected: (userId: number) => expectedSenders(store, userId),
  };
}

/** Writes new text for a card at its href, if it still has `etag` (no edit from a stale page overwrites a newer one). */
async function rewriteCard(
  { store, clock, changed }: { store: Pick<Store, 'contacts' | 'addressBooks'>; clock: () => Date; changed: () => void },
  userId: number,
  card: Contact,
  vcard: string,
  etag: string,
): Promise<Contact> {
  let parsed: ReturnType<typeof parseContactCard>;
  try {
    parsed = parseContactCard(vcard);
  } catch (err) {
    throw invalid(err instanceof VCardError ? err.message : `Malformed vCard: ${String(err)}`);
  }
  if (parsed.uid !== null && parsed.uid !== card.uid) throw invalid(`The UID cannot change (it is ${card.uid}); add a new contact instead`);
  const tooMany = await expectCapProblem(store, userId, { book: card.book, href: card.href, uid: card.uid }, parsed.entries, clock());
  if (tooMany !== null) throw forbidden(tooMany);
  const r = await store.addressBooks.putCard(userId, { book: card.book, href: card.href, uid: parsed.uid, vcard, entries: parsed.entries }, { ifMatch: [etag] });
  if (r.status === 'precondition-failed') throw conflict('The card was changed elsewhere (another device or client) since this page was loaded; reload it and edit again');
  if (r.status === 'uid-conflict') throw conflict('Another card of this address book has that UID');
  if (r.status === 'no-book') throw notFound('No such contact');
  changed();
  return r.contact;
}

/** Every expected-sender entry of the user (contactCards' `expected`). */
async function expectedSenders(store: Pick<Store, 'addressBooks'>, userId: number): Promise<ExpectedSender[]> {
  const out: ExpectedSender[] = [];
  for (const ref of await store.addressBooks.cardsWithEntryKind('expect', userId)) {
    const card = await store.addressBooks.getCard(userId, ref.book, ref.href);
    if (!card) continue;
    let entries: ReturnType<typeof parseContactCard>['entries'];
    try {
      entries = parseContactCard(card.vcard).entries;
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e.kind !== 'expect' || e.declaredFor !== undefined || !e.expect) continue;
      out.push({ id: card.id, domain: e.value, purpose: e.expect.purpose, until: e.expect.until, uses: e.expect.uses, from: e.expect.from, requireMarker: e.expect.requireMarker });
    }
  }
  return out.sort((a, b) => a.until.getTime() - b.until.getTime() || a.domain.localeCompare(b.domain));
}
