/**
 * Address books for CardDAV: implements the hooks of
 * protocols/carddav/hooks.ts on the store (structurally: services do not
 * import protocol code; the HTTP app hands this object to the CardDAV
 * plugin, and the compiler checks that it fits there).
 *
 * Cards go through the same vCard parser as every other path
 * (core/vcard/index-entries.ts), so a card PUT by any client indexes exactly like
 * one written by the CLI, and the policy (`store.contacts.match`, all books
 * of the user) sees it at the next message.
 *
 * Sync tokens are `urn:twoway:sync:<book id>:<sequence>`: the book id makes
 * a token of a deleted and re-created book (or of another book) invalid.
 */
import { DomainError } from '../../core/errors.ts';
import type { Contact, User } from '../../core/types.ts';
import { parseContactCard } from '../../core/vcard/index-entries.ts';
import { VCardError } from '../../core/vcard/parse.ts';
import { StoreConflictError, type AddressBook, type CardConditions, type Store } from '../../store/types.ts';
import type { Accounts } from '../../services/accounts.ts';
import { DEFAULT_BOOK } from '../../services/contacts.ts';
import { expectCapProblem } from '../../services/expect-cap.ts';

export interface BookView {
  name: string;
  displayName: string | null;
  description: string | null;
  ctag: string;
  syncToken: string;
  isDefault: boolean;
}

export interface CardView {
  href: string;
  etag: string;
  vcard: string;
  lastModified: Date;
}

const token = (b: { id: number }, seq: number) => `urn:twoway:sync:${b.id}:${seq}`;

function bookView(b: AddressBook): BookView {
  const t = token(b, b.syncSeq);
  return { name: b.name, displayName: b.displayName, description: b.description, ctag: t, syncToken: t, isDefault: b.name === DEFAULT_BOOK };
}

const cardView = (c: Contact): CardView => ({ href: c.href, etag: c.etag, vcard: c.vcard, lastModified: c.updatedAt });

/** Past this many changes a sync reads the whole book once instead of card by card. */
const BULK_SYNC = 50;

/** `onChanged`: a card or book was written or removed (a latency hint; the store marks the allowlist as changed itself). */
export function createAddressBooks(store: Pick<Store, 'addressBooks' | 'contacts'>, accounts: Pick<Accounts, 'authenticate'>, onChanged: () => void = () => undefined) {
  return {
    async authenticate(address: string, password: string, client: string): Promise<{ ok: true; user: User } | { ok: false; status: 401 | 429; message: string }> {
      try {
        // Every credential reaches CardDAV: the account password and app passwords of either scope.
        return { ok: true, user: (await accounts.authenticate(address, password, client)).user };
      } catch (err) {
        if (err instanceof DomainError && (err.kind === 'unauthorized' || err.kind === 'throttled')) {
          return { ok: false, status: err.kind === 'unauthorized' ? 401 : 429, message: err.text };
        }
        throw err;
      }
    },

    async listBooks(user: User): Promise<BookView[]> {
      let books = await store.addressBooks.list(user.id);
      if (!books.some((b) => b.name === DEFAULT_BOOK)) {
        await store.addressBooks.ensure(user.id, DEFAULT_BOOK);
        books = await store.addressBooks.list(user.id);
      }
      return books.map(bookView);
    },

    async getBook(user: User, name: string): Promise<BookView | undefined> {
      const b = name === DEFAULT_BOOK ? await store.addressBooks.ensure(user.id, name) : await store.addressBooks.get(user.id, name);
      return b && bookView(b);
    },

    async createBook(user: User, book: { name: string; displayName: string | null; description: string | null }): Promise<'created' | 'exists'> {
      try {
        await store.addressBooks.create(user.id, book);
        return 'created';
      } catch (err) {
        if (err instanceof StoreConflictError) return 'exists';
        throw err;
      }
    },

    updateBook: (user: User, name: string, patch: { displayName?: string | null; description?: string | null }) =>
      store.addressBooks.update(user.id, name, patch),

    /** The default book stays: the allowlist always has a home that every client finds. */
    async deleteBook(user: User, name: string): Promise<'deleted' | 'not-found' | 'forbidden'> {
      if (name === DEFAULT_BOOK) return 'forbidden';
      if (!(await store.addressBooks.remove(user.id, name))) return 'not-found';
      onChanged();
      return 'deleted';
    },

    async listCards(user: User, book: string): Promise<CardView[]> {
      return (await store.contacts.list(user.id, book)).map(cardView);
    },

    async getCard(user: User, book: string, href: string): Promise<CardView | undefined> {
      const c = await store.addressBooks.getCard(user.id, book, href);
      return c && cardView(c);
    },

    putCard: (user: User, book: string, href: string, vcard: string, conditions: CardConditions) => putCard(store, onChanged, user, book, href, vcard, conditions),

    async deleteCard(user: User, book: string, href: string, conditions: CardConditions) {
      const r = await store.addressBooks.removeCard(user.id, book, href, conditions);
      if (r === 'deleted') onChanged();
      return r;
    },

    changes: (user: User, book: string, since: string | null) => changes(store, user, book, since),
  };
}

export type AddressBooks = ReturnType<typeof createAddressBooks>;

/** A card written by a client: parsed and checked (the expected-sender cap) before the store's conditional write. */
async function putCard(
  store: Pick<Store, 'addressBooks' | 'contacts'>,
  onChanged: () => void,
  user: User,
  book: string,
  href: string,
  vcard: string,
  conditions: CardConditions,
): Promise<
  | { status: 'created' | 'updated'; etag: string }
  | { status: 'precondition-failed' | 'no-book' }
  | { status: 'uid-conflict'; href: string }
  | { status: 'invalid-card' | 'limit'; message: string }
> {
  let parsed: ReturnType<typeof parseContactCard>;
  try {
    parsed = parseContactCard(vcard);
  } catch (err) {
    if (err instanceof VCardError) return { status: 'invalid-card', message: err.message };
    throw err;
  }
  const tooMany = await expectCapProblem(store, user.id, { book, href, uid: parsed.uid }, parsed.entries, new Date());
  if (tooMany !== null) return { status: 'limit', message: tooMany };
  const r = await store.addressBooks.putCard(user.id, { book, href, uid: parsed.uid, vcard, entries: parsed.entries }, conditions);
  if (r.status !== 'ok') return r;
  onChanged();
  return { status: r.created ? 'created' : 'updated', etag: r.contact.etag };
}

/** sync-collection (RFC 6578): the changes since a token, or the whole book for an initial sync. */
async function changes(
  store: Pick<Store, 'addressBooks' | 'contacts'>,
  user: User,
  book: string,
  since: string | null,
): Promise<{ status: 'ok'; token: string; changed: CardView[]; deleted: string[] } | { status: 'invalid-token' } | undefined> {
  const b = await store.addressBooks.get(user.id, book);
  if (!b) return undefined;
  if (since === null) {
    // An initial sync: the token first, so a write racing the listing is reported again next time, never lost.
    const cards = await store.contacts.list(user.id, book);
    return { status: 'ok', token: token(b, b.syncSeq), changed: cards.map(cardView), deleted: [] };
  }
  const m = /^urn:twoway:sync:(\d+):(\d+)$/.exec(since);
  if (!m || Number(m[1]) !== b.id) return { status: 'invalid-token' };
  const log = await store.addressBooks.changes(user.id, book, Number(m[2]));
  if (log === undefined) return undefined;
  if (log === 'invalid') return { status: 'invalid-token' };
  const changed: CardView[] = [];
  const deleted: string[] = [];
  const live = log.changes.filter((c) => !c.deleted);
  const all = live.length > BULK_SYNC ? new Map((await store.contacts.list(user.id, book)).map((c) => [c.href, c])) : undefined;
  for (const c of log.changes) {
    if (c.deleted) {
      deleted.push(c.href);
      continue;
    }
    const card = all ? all.get(c.href) : await store.addressBooks.getCard(user.id, book, c.href);
    // Deleted after the log was read: report it as gone; the next sync sees the tombstone again, harmlessly.
    if (card) changed.push(cardView(card));
    else deleted.push(c.href);
  }
  return { status: 'ok', token: token(b, log.seq), changed, deleted };
}
