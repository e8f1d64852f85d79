/**
 * One CardDAV request, framework-neutral: path checks, the per-user
 * isolation rule, method dispatch, GET/PUT/DELETE/MKCOL/OPTIONS here,
 * PROPFIND/PROPPATCH in propfind.ts and REPORT in report.ts.
 *
 * Order: the path is parsed first (traversal refused with 400 before
 * anything is looked up), then a path that names a user must name the
 * authenticated one (403 otherwise, whether or not that user exists), then
 * the method runs. Bodies are decoded as strict UTF-8 and XML bodies parsed
 * without DTDs (xml.ts).
 */
import type { DavConditions, DavUser } from './hooks.ts';
import { ownerOf, resolve, type DavContext, type DavRequest } from './context.ts';
import { BOOK_NAME, cardHref, parseDavPath, type DavPath } from './paths.ts';
import { VCARD_CONTENT_TYPE } from './props.ts';
import { propfind, proppatch } from './propfind.ts';
import { report } from './report.ts';
import { davError, hrefEl, xml, type DavResponse } from './response.ts';
import { card, child, children, d, document, el, is, NS, parseXml, qnameOf, textOf, XmlError } from './xml.ts';
import { propstat } from './props.ts';

export const DAV_METHODS = ['OPTIONS', 'GET', 'HEAD', 'PUT', 'DELETE', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'REPORT', 'COPY', 'MOVE', 'LOCK', 'UNLOCK'];
export const ALLOW = 'OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, REPORT';
/** Class 1 and 3 WebDAV (no locks), CardDAV, extended MKCOL. */
export const DAV_HEADER = '1, 3, addressbook, extended-mkcol';

const VCARD_TYPES = new Set(['text/vcard', 'text/x-vcard', 'text/directory']);
const XML_TYPES = new Set(['application/xml', 'text/xml']);

const mediaType = (header: string | undefined) => header?.split(';')[0]?.trim().toLowerCase() ?? '';

/** The body as strict UTF-8 (a BOM is kept: the text is stored as sent). */
function utf8(body: Buffer | undefined): string | undefined {
  if (!body || body.length === 0) return '';
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return undefined;
  }
}

/** An If-Match / If-None-Match header: `*` or a list of entity tags (kept quoted; weak ones never match strongly). */
export function parseEtagList(header: string | undefined): '*' | string[] | undefined {
  if (header === undefined) return undefined;
  const h = header.trim();
  if (h === '*') return '*';
  return [...h.matchAll(/(?:W\/)?"[^"]*"/g)].map((m) => m[0]);
}

function conditions(req: DavRequest): DavConditions {
  const ifMatch = parseEtagList(req.headers['if-match']);
  const ifNoneMatch = parseEtagList(req.headers['if-none-match']);
  return { ...(ifMatch !== undefined ? { ifMatch } : {}), ...(ifNoneMatch !== undefined ? { ifNoneMatch } : {}) };
}

export async function handleDav<U extends DavUser>(ctx: DavContext<U>, req: DavRequest): Promise<DavResponse> {
  const parsed = parseDavPath(req.rawPath);
  if (!parsed.ok) {
    // MKCOL below a missing (or impossible) parent is a conflict in WebDAV's terms.
    if (req.method === 'MKCOL' && parsed.status === 404) return davError(409, '', 'The parent collection does not exist');
    return davError(parsed.status, '', parsed.reason === 'no such resource' ? 'No such resource' : `Bad path: ${parsed.reason}`);
  }
  const p = parsed.path;
  const owner = ownerOf(p);
  if (owner !== undefined && owner !== ctx.me) return davError(403, d('need-privileges'), 'This resource belongs to another user');

  const text = utf8(req.body);
  if (text === undefined) return davError(400, '', 'The request body is not valid UTF-8');
  // `return await` below: an XmlError thrown inside a handler must reach this catch.
  try {
    switch (req.method) {
      case 'OPTIONS':
        return { status: 200, headers: { dav: DAV_HEADER, allow: ALLOW, 'content-length': '0' } };
      case 'GET':
      case 'HEAD':
        return await get(ctx, p, req);
      case 'PUT':
        return await put(ctx, p, req, text);
      case 'DELETE':
        return await del(ctx, p, req);
      case 'MKCOL':
        return await mkcol(ctx, p, req, text);
      case 'PROPFIND':
        if (text !== '' && !XML_TYPES.has(mediaType(req.headers['content-type'])) && req.headers['content-type'] !== undefined) {
          return davError(415, '', 'PROPFIND bodies are XML (application/xml)');
        }
        return await propfind(ctx, p, req.headers.depth, text);
      case 'PROPPATCH':
        return await proppatch(ctx, p, text);
      case 'REPORT':
        if (p.kind !== 'book') return davError(403, d('supported-report'), 'Reports are supported on address books only');
        return await report(ctx, p.book, text);
      default:
        return davError(405, '', `${req.method} is not supported here`, { allow: ALLOW });
    }
  } catch (err) {
    if (err instanceof XmlError) return davError(400, '', `Malformed XML: ${err.message}`);
    throw err;
  }
}

async function get<U extends DavUser>(ctx: DavContext<U>, p: DavPath, req: DavRequest): Promise<DavResponse> {
  if (p.kind === 'book') {
    // A book as one .vcf file: handy for a browser or curl; DAV clients use REPORTs.
    if (!(await ctx.hooks.getBook(ctx.user, p.book))) return davError(404, '', 'No such address book');
    const cards = await ctx.hooks.listCards(ctx.user, p.book);
    return { status: 200, headers: { 'content-type': VCARD_CONTENT_TYPE }, body: cards.map((c) => (c.vcard.endsWith('\n') ? c.vcard : `${c.vcard}\r\n`)).join('') };
  }
  if (p.kind !== 'card') {
    const r = await resolve(ctx, p);
    return r ? davError(405, '', 'Collections have no content here; use PROPFIND', { allow: ALLOW }) : davError(404, '', 'No such resource');
  }
  const c = await ctx.hooks.getCard(ctx.user, p.book, p.card);
  if (!c) return davError(404, '', 'No such card');
  const headers = { etag: c.etag, 'last-modified': c.lastModified.toUTCString(), 'content-type': VCARD_CONTENT_TYPE };
  const inm = parseEtagList(req.headers['if-none-match']);
  if (inm === '*' || inm?.some((t) => t.replace(/^W\//, '') === c.etag)) return { status: 304, headers: { etag: c.etag } };
  return { status: 200, headers, body: c.vcard };
}

async function put<U extends DavUser>(ctx: DavContext<U>, p: DavPath, req: DavRequest, text: string): Promise<DavResponse> {
  if (p.kind !== 'card') return davError(405, '', 'PUT creates or replaces a vCard inside an address book', { allow: ALLOW });
  const type = mediaType(req.headers['content-type']);
  if (req.headers['content-type'] !== undefined && !VCARD_TYPES.has(type)) {
    return davError(415, card('supported-address-data'), `Only vCards (text/vcard, version 3.0 or 4.0) can be stored here, not ${type || 'this content type'}`);
  }
  if (Buffer.byteLength(text, 'utf8') > ctx.maxResourceSize) {
    return davError(413, card('max-resource-size'), `A vCard may have at most ${ctx.maxResourceSize} bytes`);
  }
  if (!(await ctx.hooks.getBook(ctx.user, p.book))) return davError(409, '', 'No such address book (create it with MKCOL first)');
  const r = await ctx.hooks.putCard(ctx.user, p.book, p.card, text, conditions(req));
  switch (r.status) {
    case 'created':
      return { status: 201, headers: { etag: r.etag, 'content-length': '0' } };
    case 'updated':
      return { status: 204, headers: { etag: r.etag } };
    case 'precondition-failed':
      return davError(412, '', 'The card changed since you read it (If-Match / If-None-Match failed)');
    case 'uid-conflict':
      return davError(403, card('no-uid-conflict', hrefEl(cardHref(ctx.me, p.book, r.href))), 'Another card in this address book has the same UID');
    case 'invalid-card':
      return davError(400, card('valid-address-data'), r.message);
    case 'limit':
      // A precondition element of our namespace a client can act on (RFC 4918 section 16); the text says which limit.
      return davError(403, el({ ns: NS.tw, name: 'expected-sender-limit' }, ''), r.message);
    case 'no-book':
      return davError(409, '', 'No such address book');
  }
}

async function del<U extends DavUser>(ctx: DavContext<U>, p: DavPath, req: DavRequest): Promise<DavResponse> {
  if (p.kind === 'card') {
    const r = await ctx.hooks.deleteCard(ctx.user, p.book, p.card, conditions(req));
    if (r === 'not-found') return davError(404, '', 'No such card');
    if (r === 'precondition-failed') return davError(412, '', 'The card changed since you read it (If-Match failed)');
    return { status: 204, headers: {} };
  }
  if (p.kind === 'book') {
    const r = await ctx.hooks.deleteBook(ctx.user, p.book);
    if (r === 'not-found') return davError(404, '', 'No such address book');
    if (r === 'forbidden') return davError(403, '', 'The default address book cannot be deleted');
    return { status: 204, headers: {} };
  }
  return davError(403, '', 'This collection cannot be deleted');
}

/** MKCOL, plain or extended (RFC 5689): creates an address book in the user's home. */
async function mkcol<U extends DavUser>(ctx: DavContext<U>, p: DavPath, req: DavRequest, text: string): Promise<DavResponse> {
  // RFC 4918 9.3: a body the server does not understand is 415, wherever the collection would go.
  if (text !== '' && !XML_TYPES.has(mediaType(req.headers['content-type']))) return davError(415, '', 'An MKCOL body must be an XML DAV:mkcol element');
  if (p.kind === 'card') return davError(403, '', 'Address books cannot contain collections');
  if (p.kind !== 'book') return davError(405, '', 'This collection exists', { allow: ALLOW });
  let displayName: string | null = null;
  let description: string | null = null;
  if (text !== '') {
    const root = parseXml(text).documentElement!;
    if (!is(root, NS.dav, 'mkcol')) return davError(415, '', 'An MKCOL body must be a DAV:mkcol element');
    const failed: string[] = [];
    const fine: string[] = [];
    let isBook = true;
    for (const set of children(root)) {
      if (!is(set, NS.dav, 'set')) return davError(400, '', 'mkcol may contain only set elements');
      const prop = child(set, NS.dav, 'prop');
      for (const e of prop ? children(prop) : []) {
        const q = qnameOf(e);
        if (is(e, NS.dav, 'resourcetype')) {
          isBook = children(e).some((c) => is(c, NS.card, 'addressbook')) && children(e).every((c) => is(c, NS.dav, 'collection') || is(c, NS.card, 'addressbook'));
          (isBook ? fine : failed).push(d('resourcetype'));
        } else if (is(e, NS.dav, 'displayname')) {
          displayName = textOf(e).trim() || null;
          fine.push(d('displayname'));
        } else if (is(e, NS.card, 'addressbook-description')) {
          description = textOf(e).trim() || null;
          fine.push(card('addressbook-description'));
        } else failed.push(el(q));
      }
    }
    if (!isBook) return davError(403, d('valid-resourcetype'), 'Only address books (resourcetype addressbook) can be created here');
    if (failed.length > 0) {
      // RFC 5689 3.3: the whole request fails, each property with its own status.
      return xml(403, document('mkcol-response', propstat(failed.join(''), 403) + (fine.length > 0 ? propstat(fine.join(''), 424) : '')));
    }
  }
  if (!BOOK_NAME.test(p.book)) return davError(403, '', 'Address book names: letters, digits, dot, dash and underscore, at most 64');
  const r = await ctx.hooks.createBook(ctx.user, { name: p.book, displayName, description });
  if (r === 'exists') return davError(405, '', 'This address book exists', { allow: ALLOW });
  return { status: 201, headers: { 'content-length': '0' } };
}

