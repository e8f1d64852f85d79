/**
 * The properties of each kind of resource (RFC 4918 live properties, RFC
 * 3744 principal properties, RFC 5397 current-user-principal, RFC 6352
 * CardDAV, RFC 6578 sync-token, CalendarServer getctag), rendered as the
 * inner XML of a DAV:prop element. A property a resource does not have is
 * `undefined` (a 404 propstat); an empty value is ''.
 */
import type { DavBook, DavCard } from './hooks.ts';
import { principalHref, homeHref } from './paths.ts';
import { hrefEl, statusLine } from './response.ts';
import { card, d, el, escapeXml, NS, qkey, type QName } from './xml.ts';

/** A resource whose properties are asked for, with what is needed to render them. */
export type Resource =
  | { kind: 'root' | 'principals' | 'homes' }
  | { kind: 'principal' | 'home'; user: string }
  | { kind: 'book'; user: string; book: DavBook }
  | { kind: 'card'; user: string; card: DavCard };

export interface PropContext {
  /** The authenticated user's address. */
  me: string;
  maxResourceSize: number;
}

export const VCARD_CONTENT_TYPE = 'text/vcard; charset=utf-8';

const dav = (name: string): QName => ({ ns: NS.dav, name });
const cardq = (name: string): QName => ({ ns: NS.card, name });

const privileges = (names: string[]) => names.map((n) => d('privilege', d(n))).join('');
const report = (q: string) => d('supported-report', d('report', q));

type Getter = (r: Resource, ctx: PropContext) => string | undefined;

/** Every property this server knows, by `ns|name`. */
const GETTERS = new Map<string, { q: QName; get: Getter }>();
function prop(q: QName, get: Getter): void {
  GETTERS.set(qkey(q), { q, get });
}

prop(dav('resourcetype'), (r) => {
  switch (r.kind) {
    case 'principal':
      return d('collection') + d('principal');
    case 'book':
      return d('collection') + card('addressbook');
    case 'card':
      return '';
    default:
      return d('collection');
  }
});
prop(dav('displayname'), (r) => {
  if (r.kind === 'principal') return escapeXml(r.user);
  if (r.kind === 'home') return 'Address books';
  if (r.kind === 'book') return escapeXml(r.book.displayName ?? (r.book.isDefault ? 'Contacts' : r.book.name));
  return undefined;
});
prop(dav('current-user-principal'), (_r, ctx) => hrefEl(principalHref(ctx.me)));
prop(dav('principal-URL'), (r) => (r.kind === 'principal' ? hrefEl(principalHref(r.user)) : undefined));
prop(dav('principal-collection-set'), () => hrefEl('/dav/principals/'));
prop(dav('owner'), (r) => ('user' in r ? hrefEl(principalHref(r.user)) : undefined));
prop(dav('supported-report-set'), (r) =>
  r.kind === 'book' ? report(card('addressbook-multiget')) + report(card('addressbook-query')) + report(d('sync-collection')) : '',
);
prop(dav('current-user-privilege-set'), (r) => {
  if (r.kind === 'book') return privileges(['read', 'write', 'write-properties', 'write-content', 'bind', 'unbind', 'read-current-user-privilege-set']);
  if (r.kind === 'card') return privileges(['read', 'write', 'write-properties', 'write-content', 'read-current-user-privilege-set']);
  if (r.kind === 'home') return privileges(['read', 'bind', 'unbind', 'read-current-user-privilege-set']);
  return privileges(['read', 'read-current-user-privilege-set']);
});
prop(dav('getetag'), (r) => (r.kind === 'card' ? escapeXml(r.card.etag) : undefined));
prop(dav('getcontenttype'), (r) => (r.kind === 'card' ? VCARD_CONTENT_TYPE : undefined));
prop(dav('getcontentlength'), (r) => (r.kind === 'card' ? String(Buffer.byteLength(r.card.vcard, 'utf8')) : undefined));
prop(dav('getlastmodified'), (r) => (r.kind === 'card' ? r.card.lastModified.toUTCString() : undefined));
prop(dav('sync-token'), (r) => (r.kind === 'book' ? escapeXml(r.book.syncToken) : undefined));
prop(cardq('addressbook-home-set'), (r) => (r.kind === 'principal' ? hrefEl(homeHref(r.user)) : undefined));
prop(cardq('addressbook-description'), (r) => (r.kind === 'book' && r.book.description !== null ? escapeXml(r.book.description) : undefined));
prop(cardq('supported-address-data'), (r) =>
  r.kind === 'book'
    ? card('address-data-type', '', { 'content-type': 'text/vcard', version: '3.0' }) + card('address-data-type', '', { 'content-type': 'text/vcard', version: '4.0' })
    : undefined,
);
prop(cardq('max-resource-size'), (r, ctx) => (r.kind === 'book' ? String(ctx.maxResourceSize) : undefined));
// The card itself; vCards are returned whole, whatever properties address-data selects (RFC 6352 10.4 allows it).
prop(cardq('address-data'), (r) => (r.kind === 'card' ? escapeXml(r.card.vcard) : undefined));
prop({ ns: NS.cs, name: 'getctag' }, (r) => (r.kind === 'book' ? escapeXml(r.book.ctag) : undefined));

/** The properties DAV:allprop returns (RFC 4918 9.1: the live properties it defines, not expensive or computed ones). */
const ALLPROP = ['resourcetype', 'displayname', 'getetag', 'getcontenttype', 'getcontentlength', 'getlastmodified'].map(dav);

/** Properties that only the server sets (a PROPPATCH of them is 403 cannot-modify-protected-property). */
export function isProtected(q: QName): boolean {
  return GETTERS.has(qkey(q)) && !(q.ns === NS.dav && q.name === 'displayname') && !(q.ns === NS.card && q.name === 'addressbook-description');
}

export function propValue(q: QName, r: Resource, ctx: PropContext): string | undefined {
  return GETTERS.get(qkey(q))?.get(r, ctx);
}

export type PropRequest = { type: 'prop'; props: QName[] } | { type: 'allprop'; include: QName[] } | { type: 'propname' };

/** The propstat elements of one resource. */
export function propstats(req: PropRequest, r: Resource, ctx: PropContext): string {
  if (req.type === 'propname') {
    const names = [...GETTERS.values()].filter((g) => g.get(r, ctx) !== undefined).map((g) => el(g.q));
    return propstat(names.join(''), 200);
  }
  const asked = req.type === 'prop' ? req.props : [...ALLPROP, ...req.include];
  const found: string[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  for (const q of asked) {
    if (seen.has(qkey(q))) continue;
    seen.add(qkey(q));
    const v = propValue(q, r, ctx);
    if (v !== undefined) found.push(el(q, v));
    else if (req.type === 'prop') missing.push(el(q));
  }
  let out = '';
  if (found.length > 0 || missing.length === 0) out += propstat(found.join(''), 200);
  if (missing.length > 0) out += propstat(missing.join(''), 404);
  return out;
}

export function propstat(inner: string, status: number): string {
  return d('propstat', d('prop', inner) + d('status', statusLine(status)));
}
