/**
 * PROPFIND (RFC 4918 9.1) at depth 0 and 1, and PROPPATCH (9.2) of the two
 * writable properties of an address book: DAV:displayname and
 * CARDDAV:addressbook-description. Dead properties are not stored, so any
 * other property in a PROPPATCH fails with 403 (and the rest with 424, the
 * update being atomic).
 */
import type { Element } from '@xmldom/xmldom';
import type { DavUser } from './hooks.ts';
import { resolve, type DavContext } from './context.ts';
import { hrefOf, cardHref, bookHref, principalHref, homeHref, type DavPath } from './paths.ts';
import { isProtected, propstat, propstats, type PropRequest, type Resource } from './props.ts';
import { davError, hrefEl, multistatus, type DavResponse } from './response.ts';
import { child, children, d, el, is, NS, parseXml, qkey, qnameOf, textOf, type QName } from './xml.ts';

export type Depth = '0' | '1' | 'infinity';

/** The Depth header; absent means infinity (RFC 4918 10.2). Undefined for a value that is none of the three. */
export function parseDepth(header: string | undefined, absent: Depth = 'infinity'): Depth | undefined {
  if (header === undefined) return absent;
  const v = header.trim().toLowerCase();
  return v === '0' || v === '1' || v === 'infinity' ? v : undefined;
}

/** The property names inside a DAV:prop element. */
export function propNames(prop: Element): QName[] {
  return children(prop).map(qnameOf);
}

/** Parses a PROPFIND body (empty: allprop). @throws XmlError */
export function parsePropfind(body: string): PropRequest | 'bad' {
  if (body.trim() === '') return { type: 'allprop', include: [] };
  const root = parseXml(body).documentElement!;
  if (!is(root, NS.dav, 'propfind')) return 'bad';
  const [first] = children(root);
  if (!first) return 'bad';
  if (is(first, NS.dav, 'prop')) return { type: 'prop', props: propNames(first) };
  if (is(first, NS.dav, 'propname')) return { type: 'propname' };
  if (is(first, NS.dav, 'allprop')) {
    const include = child(root, NS.dav, 'include');
    return { type: 'allprop', include: include ? propNames(include) : [] };
  }
  return 'bad';
}

async function members<U extends DavUser>(ctx: DavContext<U>, p: DavPath, r: Resource): Promise<Array<{ href: string; r: Resource }>> {
  const me = ctx.me;
  switch (r.kind) {
    case 'root':
      return [
        { href: '/dav/principals/', r: { kind: 'principals' } },
        { href: '/dav/addressbooks/', r: { kind: 'homes' } },
      ];
    // Only the user's own principal and home are listed: other users are not discoverable.
    case 'principals':
      return [{ href: principalHref(me), r: { kind: 'principal', user: me } }];
    case 'homes':
      return [{ href: homeHref(me), r: { kind: 'home', user: me } }];
    case 'home':
      return (await ctx.hooks.listBooks(ctx.user)).map((book) => ({ href: bookHref(me, book.name), r: { kind: 'book', user: me, book } }));
    case 'book': {
      const book = p.kind === 'book' ? p.book : r.book.name;
      return (await ctx.hooks.listCards(ctx.user, book)).map((c) => ({ href: cardHref(me, book, c.href), r: { kind: 'card', user: me, card: c } }));
    }
    default:
      return [];
  }
}

export async function propfind<U extends DavUser>(ctx: DavContext<U>, p: DavPath, depthHeader: string | undefined, body: string): Promise<DavResponse> {
  const depth = parseDepth(depthHeader);
  if (depth === undefined) return davError(400, '', `Depth must be 0, 1 or infinity, not "${depthHeader}"`);
  const req = parsePropfind(body);
  if (req === 'bad') return davError(400, '', 'The body must be a DAV:propfind with prop, allprop or propname');
  const r = await resolve(ctx, p);
  if (!r) return davError(404, '', 'No such resource');
  if (depth === 'infinity' && r.kind !== 'card') {
    return davError(403, d('propfind-finite-depth'), 'Depth: infinity is not supported; use 0 or 1');
  }
  const list = [{ href: hrefOf(p), r }];
  if (depth === '1') list.push(...(await members(ctx, p, r)));
  return multistatus(list.map((x) => d('response', hrefEl(x.href) + propstats(req, x.r, ctx))));
}

const WRITABLE = new Set([qkey({ ns: NS.dav, name: 'displayname' }), qkey({ ns: NS.card, name: 'addressbook-description' })]);

export async function proppatch<U extends DavUser>(ctx: DavContext<U>, p: DavPath, body: string): Promise<DavResponse> {
  const root = parseXml(body).documentElement!;
  if (!is(root, NS.dav, 'propertyupdate')) return davError(400, '', 'The body must be a DAV:propertyupdate');
  const r = await resolve(ctx, p);
  if (!r) return davError(404, '', 'No such resource');
  // Instructions in document order; the last one for a property wins.
  const ops: Array<{ q: QName; value: string | null }> = [];
  for (const op of children(root)) {
    const set = is(op, NS.dav, 'set');
    if (!set && !is(op, NS.dav, 'remove')) return davError(400, '', 'propertyupdate may contain only set and remove');
    const prop = child(op, NS.dav, 'prop');
    if (!prop) return davError(400, '', `${set ? 'set' : 'remove'} without a prop`);
    for (const e of children(prop)) ops.push({ q: qnameOf(e), value: set ? textOf(e).trim() : null });
  }
  const failed = new Map<string, { q: QName; status: number; why: string }>();
  for (const op of ops) {
    if (r.kind !== 'book' || !WRITABLE.has(qkey(op.q))) {
      const why = isProtected(op.q) ? 'cannot-modify-protected-property' : '';
      failed.set(qkey(op.q), { q: op.q, status: 403, why });
    }
  }
  const names = [...new Map(ops.map((o) => [qkey(o.q), o.q])).values()];
  if (failed.size > 0) {
    const ok = names.filter((q) => !failed.has(qkey(q)));
    const stats =
      [...failed.values()].map((f) => propstat(el(f.q), f.status)).join('') + (ok.length > 0 ? propstat(ok.map((q) => el(q)).join(''), 424) : '');
    return multistatus([d('response', hrefEl(hrefOf(p)) + stats)]);
  }
  const patch: { displayName?: string | null; description?: string | null } = {};
  for (const op of ops) {
    if (op.q.ns === NS.dav) patch.displayName = op.value === '' ? null : op.value;
    else patch.description = op.value === '' ? null : op.value;
  }
  if (r.kind === 'book') await ctx.hooks.updateBook(ctx.user, r.book.name, patch);
  return multistatus([d('response', hrefEl(hrefOf(p)) + propstat(names.map((q) => el(q)).join(''), 200))]);
}
