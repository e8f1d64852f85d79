/**
 * The URL space of the CardDAV server, and the one place that turns a
 * request path into a resource. Everything lives under /dav/:
 *
 *   /dav/                                   root (current-user-principal)
 *   /dav/principals/                        principal collection
 *   /dav/principals/<address>/              a user's principal
 *   /dav/addressbooks/                      parent of the homes
 *   /dav/addressbooks/<address>/            a user's address-book home
 *   /dav/addressbooks/<address>/<book>/     an address book
 *   /dav/addressbooks/<address>/<book>/<card>  a vCard
 *
 * Path traversal is refused here, before anything else looks at the path:
 * `.` and `..` segments (also percent-encoded), empty segments (`//`), a
 * decoded `/`, `\` or control character in a segment, and bad
 * percent-encoding are all "bad path" (400). Node does not normalise request
 * paths, so these arrive exactly as the client sent them.
 */

export const DAV_ROOT = '/dav/';

export type DavPath =
  | { kind: 'root' }
  | { kind: 'principals' }
  | { kind: 'principal'; user: string }
  | { kind: 'homes' }
  | { kind: 'home'; user: string }
  | { kind: 'book'; user: string; book: string }
  | { kind: 'card'; user: string; book: string; card: string };

export type ParsedPath = { ok: true; path: DavPath } | { ok: false; status: 400 | 404; reason: string };

const MAX_SEGMENT = 255;

/** Parses the path part of a request URL (no query) that starts with /dav. */
export function parseDavPath(rawPath: string): ParsedPath {
  if (rawPath !== '/dav' && !rawPath.startsWith('/dav/')) return { ok: false, status: 404, reason: 'not a CardDAV path' };
  const rest = rawPath.slice('/dav'.length);
  // Split the raw path: an encoded %2F stays inside its segment and is refused below.
  const raw = rest.split('/').slice(1);
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop(); // one trailing slash is fine
  const segs: string[] = [];
  for (const r of raw) {
    if (r === '') return { ok: false, status: 400, reason: 'empty path segment (//)' };
    let s: string;
    try {
      s = decodeURIComponent(r);
    } catch {
      return { ok: false, status: 400, reason: 'bad percent-encoding in the path' };
    }
    if (s === '.' || s === '..') return { ok: false, status: 400, reason: 'dot segments are not allowed in the path' };
    if (/[/\\\u0000-\u001f\u007f]/.test(s)) return { ok: false, status: 400, reason: 'forbidden character in a path segment' };
    if (s.length > MAX_SEGMENT) return { ok: false, status: 400, reason: 'path segment too long' };
    segs.push(s);
  }
  const [top, user, book, cardName, ...more] = segs;
  const notFound: ParsedPath = { ok: false, status: 404, reason: 'no such resource' };
  if (top === undefined) return { ok: true, path: { kind: 'root' } };
  if (top === 'principals') {
    if (user === undefined) return { ok: true, path: { kind: 'principals' } };
    return book === undefined ? { ok: true, path: { kind: 'principal', user: user.toLowerCase() } } : notFound;
  }
  if (top === 'addressbooks') {
    if (more.length > 0) return notFound;
    if (user === undefined) return { ok: true, path: { kind: 'homes' } };
    const u = user.toLowerCase();
    if (book === undefined) return { ok: true, path: { kind: 'home', user: u } };
    if (cardName === undefined) return { ok: true, path: { kind: 'book', user: u, book } };
    return { ok: true, path: { kind: 'card', user: u, book, card: cardName } };
  }
  return notFound;
}

/** Percent-encodes one segment; `@` stays readable (RFC 3986 allows it in a path). */
export function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/%40/g, '@');
}

export const principalHref = (user: string) => `/dav/principals/${encodeSegment(user)}/`;
export const homeHref = (user: string) => `/dav/addressbooks/${encodeSegment(user)}/`;
export const bookHref = (user: string, book: string) => `${homeHref(user)}${encodeSegment(book)}/`;
export const cardHref = (user: string, book: string, card: string) => `${bookHref(user, book)}${encodeSegment(card)}`;

export function hrefOf(p: DavPath): string {
  switch (p.kind) {
    case 'root':
      return DAV_ROOT;
    case 'principals':
      return '/dav/principals/';
    case 'principal':
      return principalHref(p.user);
    case 'homes':
      return '/dav/addressbooks/';
    case 'home':
      return homeHref(p.user);
    case 'book':
      return bookHref(p.user, p.book);
    case 'card':
      return cardHref(p.user, p.book, p.card);
  }
}

/**
 * The path of an href found in a request body (multiget, a Destination):
 * an absolute path, or an absolute URL whose path is taken (its host is not
 * checked: a client behind a proxy may name another one). Query and fragment
 * are dropped.
 */
export function hrefPath(href: string): string | undefined {
  const h = href.trim();
  if (h.startsWith('/')) return h.replace(/[?#].*$/, '');
  const m = /^https?:\/\/[^/?#]*(\/[^?#]*)?/i.exec(h);
  return m ? (m[1] ?? '/') : undefined;
}

/** Book names a client may create: short and plain, so every client can put them in a URL. */
export const BOOK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
