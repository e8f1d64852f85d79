/**
 * The contract between the CardDAV wire code and whatever keeps address
 * books (endpoints/carddav/hooks.ts). The wire code parses requests, checks
 * that the URL belongs to the authenticated user, evaluates filters and
 * writes XML; everything it knows about storage comes through these hooks.
 *
 * The user type is the implementer's (`U`): the wire code reads only its
 * `address`, to build and check URLs, and hands it back to every hook, so a
 * hook can never be asked about a user other than the one who logged in.
 */

export interface DavUser {
  /** The login and the URL segment of the user's principal and address-book home. */
  readonly address: string;
}

export type DavAuthResult<U extends DavUser> =
  | { ok: true; user: U }
  /** 401 (bad credentials) or 429 (locked out for a while); `message` is safe to show. */
  | { ok: false; status: 401 | 429; message: string };

export interface DavBook {
  /** The collection's URL segment. */
  name: string;
  displayName: string | null;
  description: string | null;
  /** Changes whenever a card of the book changes (CalendarServer getctag). */
  ctag: string;
  /** RFC 6578 sync token (a URI) for the book's current state. */
  syncToken: string;
  /** The user's default book, which cannot be deleted. */
  isDefault: boolean;
}

export interface DavCard {
  /** The resource name within its book (decoded; the wire code encodes it in URLs). */
  href: string;
  /** A strong ETag, quoted. */
  etag: string;
  /** The vCard exactly as stored. */
  vcard: string;
  lastModified: Date;
}

/** RFC 9110 preconditions; lists hold quoted ETags. Checked by the implementer atomically with the write. */
export interface DavConditions {
  ifMatch?: '*' | string[];
  ifNoneMatch?: '*' | string[];
}

export type DavPutResult =
  | { status: 'created' | 'updated'; etag: string }
  | { status: 'precondition-failed' }
  /** Another resource of the book has this card's UID; `href` is its resource name. */
  | { status: 'uid-conflict'; href: string }
  /** Not a vCard this server accepts; `message` names the line. */
  | { status: 'invalid-card'; message: string }
  /** A limit of the account (e.g. live expected-sender entries); `message` says which. */
  | { status: 'limit'; message: string }
  | { status: 'no-book' };

export type DavSyncResult =
  | { status: 'ok'; token: string; changed: DavCard[]; deleted: string[] }
  | { status: 'invalid-token' };

export interface DavBookInput {
  name: string;
  displayName: string | null;
  description: string | null;
}

export interface CardDavHooks<U extends DavUser> {
  /** Checks a login (HTTP Basic); `client` is the peer address, for throttling guesses. */
  authenticate(address: string, password: string, client: string): Promise<DavAuthResult<U>>;
  /** The user's books; the default one always among them (created on first use). */
  listBooks(user: U): Promise<DavBook[]>;
  getBook(user: U, name: string): Promise<DavBook | undefined>;
  createBook(user: U, book: DavBookInput): Promise<'created' | 'exists'>;
  /** Sets displayname / description (undefined: unchanged; null: removed). False if there is no such book. */
  updateBook(user: U, name: string, patch: { displayName?: string | null; description?: string | null }): Promise<boolean>;
  /** Deletes a book and its cards; 'forbidden' for the default book. */
  deleteBook(user: U, name: string): Promise<'deleted' | 'not-found' | 'forbidden'>;
  listCards(user: U, book: string): Promise<DavCard[]>;
  getCard(user: U, book: string, href: string): Promise<DavCard | undefined>;
  /** Stores the text as given (after checking it is a vCard 3.0 or 4.0) if the conditions hold. */
  putCard(user: U, book: string, href: string, vcard: string, conditions: DavConditions): Promise<DavPutResult>;
  deleteCard(user: U, book: string, href: string, conditions: DavConditions): Promise<'deleted' | 'not-found' | 'precondition-failed'>;
  /**
   * RFC 6578: the cards changed and the hrefs deleted since `token` (null:
   * an initial sync, every card), with the token of the state returned.
   * Undefined when there is no such book.
   */
  changes(user: U, book: string, token: string | null): Promise<DavSyncResult | undefined>;
}
