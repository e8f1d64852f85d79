/**
 * REPORTs on an address book: addressbook-multiget and addressbook-query
 * (RFC 6352 section 8) and sync-collection (RFC 6578). Each answers a
 * multistatus with the requested properties of each card.
 *
 * Isolation: a multiget href is resolved through the same path parser as a
 * request URL; one that names another user's resource is answered 403 for
 * that href, one outside the addressed book 404, and neither is ever looked
 * up.
 *
 * Time: an addressbook-query evaluates its filter card by card in slices of
 * about SLICE_MS, yielding to the event loop between slices, so a costly
 * query delays other requests by one slice at most; past its budget
 * (REPORT_BUDGET_MS) it stops with 503 and says so. The filter's size and the
 * cards' property counts are bounded as well (filter.ts, core/vcard/parse.ts).
 */
import type { DavUser } from './hooks.ts';
import type { DavContext } from './context.ts';
import { compileFilter, FilterError, parseFilter, type CardFilter } from './filter.ts';
import { cardHref, hrefPath, parseDavPath } from './paths.ts';
import { propstats, type PropRequest } from './props.ts';
import { propNames } from './propfind.ts';
import { davError, hrefEl, multistatus, statusResponse, type DavResponse } from './response.ts';
import { card, child, children, d, escapeXml, is, NS, parseXml, textOf } from './xml.ts';
import type { Element } from '@xmldom/xmldom';

/** Wall-clock budget of one REPORT's filtering, slices and waits included. */
export const REPORT_BUDGET_MS = 5_000;
/** CPU time between two yields to the event loop. */
const SLICE_MS = 10;

class BudgetExceeded extends Error {}

/**
 * Runs `step` on each item, yielding to the event loop whenever a slice has
 * run SLICE_MS; throws BudgetExceeded once `budgetMs` have passed.
 */
async function inSlices<T>(items: readonly T[], budgetMs: number, step: (item: T) => void): Promise<void> {
  const started = performance.now();
  let slice = started;
  for (const item of items) {
    step(item);
    const now = performance.now();
    if (now - slice < SLICE_MS) continue;
    if (now - started > budgetMs) throw new BudgetExceeded();
    await new Promise<void>((resolve) => setImmediate(resolve));
    slice = performance.now();
  }
}

function propRequest(root: Element): PropRequest {
  const prop = child(root, NS.dav, 'prop');
  if (prop) return { type: 'prop', props: propNames(prop) };
  if (child(root, NS.dav, 'allprop')) return { type: 'allprop', include: [] };
  // No prop element: the ETag at least, which every client wants.
  return { type: 'prop', props: [{ ns: NS.dav, name: 'getetag' }] };
}

/** `<limit><nresults>N</nresults></limit>` (CardDAV and RFC 6578 spell it in their own namespaces). */
function limitOf(root: Element, ns: string): number | null | 'bad' {
  const limit = child(root, ns, 'limit');
  if (!limit) return null;
  const n = child(limit, ns, 'nresults');
  const v = n ? textOf(n).trim() : '';
  return /^\d{1,9}$/.test(v) ? Number(v) : 'bad';
}

export async function report<U extends DavUser>(ctx: DavContext<U>, book: string, body: string): Promise<DavResponse> {
  const root = parseXml(body).documentElement!;
  if (!(await ctx.hooks.getBook(ctx.user, book))) return davError(404, '', 'No such address book');
  if (is(root, NS.card, 'addressbook-multiget')) return multiget(ctx, book, root);
  if (is(root, NS.card, 'addressbook-query')) return query(ctx, book, root);
  if (is(root, NS.dav, 'sync-collection')) return syncCollection(ctx, book, root);
  return davError(403, d('supported-report'), `Unsupported report ${root.localName}: use addressbook-multiget, addressbook-query or sync-collection`);
}

async function multiget<U extends DavUser>(ctx: DavContext<U>, book: string, root: Element): Promise<DavResponse> {
  const req = propRequest(root);
  const hrefs = children(root).filter((e) => is(e, NS.dav, 'href')).map((e) => textOf(e).trim());
  const out: string[] = [];
  for (const href of hrefs) {
    const path = hrefPath(href);
    const parsed = path === undefined ? undefined : parseDavPath(path);
    if (!parsed?.ok) {
      out.push(statusResponse(href, parsed?.ok === false ? parsed.status : 404));
      continue;
    }
    const p = parsed.path;
    if ('user' in p && p.user !== ctx.me) {
      out.push(statusResponse(href, 403));
      continue;
    }
    if (p.kind !== 'card' || p.book !== book) {
      out.push(statusResponse(href, 404));
      continue;
    }
    const c = await ctx.hooks.getCard(ctx.user, book, p.card);
    out.push(c ? d('response', hrefEl(href) + propstats(req, { kind: 'card', user: ctx.me, card: c }, ctx)) : statusResponse(href, 404));
  }
  return multistatus(out);
}

async function query<U extends DavUser>(ctx: DavContext<U>, book: string, root: Element): Promise<DavResponse> {
  const req = propRequest(root);
  const filterEl = child(root, NS.card, 'filter');
  let filter: CardFilter = { test: 'anyof', props: [] };
  if (filterEl) {
    try {
      filter = parseFilter(filterEl);
    } catch (err) {
      if (err instanceof FilterError) return davError(403, card(err.precondition), err.message);
      throw err;
    }
  }
  const limit = limitOf(root, NS.card);
  if (limit === 'bad') return davError(400, '', 'limit needs an nresults number');
  const compiled = compileFilter(filter);
  const cards = await ctx.hooks.listCards(ctx.user, book);
  const budget = ctx.reportBudgetMs ?? REPORT_BUDGET_MS;
  const hits: typeof cards = [];
  const out: string[] = [];
  let shown: typeof cards = [];
  try {
    await inSlices(cards, budget, (c) => {
      if (compiled.matches(c.vcard)) hits.push(c);
    });
    shown = limit === null ? hits : hits.slice(0, limit);
    await inSlices(shown, budget, (c) => {
      out.push(d('response', hrefEl(cardHref(ctx.me, book, c.href)) + propstats(req, { kind: 'card', user: ctx.me, card: c }, ctx)));
    });
  } catch (err) {
    if (!(err instanceof BudgetExceeded)) throw err;
    return davError(503, '', `The query ran past its time budget (${budget} ms): narrow the filter or ask for fewer cards`, { 'retry-after': '60' });
  }
  // RFC 6352 8.6.1: a truncated result says so with 507 on the request URI.
  if (shown.length < hits.length) {
    out.push(
      d('response', hrefEl(`/dav/addressbooks/${ctx.me}/${book}/`) + d('status', 'HTTP/1.1 507 Insufficient Storage') + d('error', d('number-of-matches-within-limits'))),
    );
  }
  return multistatus(out);
}

async function syncCollection<U extends DavUser>(ctx: DavContext<U>, book: string, root: Element): Promise<DavResponse> {
  const tokenEl = child(root, NS.dav, 'sync-token');
  if (!tokenEl) return davError(400, '', 'sync-collection needs a sync-token element (empty for an initial sync)');
  const level = child(root, NS.dav, 'sync-level');
  const levelText = level ? textOf(level).trim() : '1';
  // An address book has no child collections, so "infinite" means the same as "1".
  if (levelText !== '1' && levelText !== 'infinite') return davError(400, '', 'sync-level must be 1 or infinite');
  const limit = limitOf(root, NS.dav);
  if (limit === 'bad') return davError(400, '', 'limit needs an nresults number');
  const token = textOf(tokenEl).trim();
  const result = await ctx.hooks.changes(ctx.user, book, token === '' ? null : token);
  if (!result) return davError(404, '', 'No such address book');
  if (result.status === 'invalid-token') {
    return davError(403, d('valid-sync-token'), 'The sync token is not valid for this address book (or too old); sync again from scratch');
  }
  if (limit !== null && result.changed.length + result.deleted.length > limit) {
    // Paging a sync needs intermediate tokens; a client that asks for fewer results is told to ask without a limit.
    return davError(507, d('number-of-matches-within-limits'), `More than ${limit} changes; repeat without a limit`);
  }
  const req = propRequest(root);
  const out = [
    ...result.changed.map((c) => d('response', hrefEl(cardHref(ctx.me, book, c.href)) + propstats(req, { kind: 'card', user: ctx.me, card: c }, ctx))),
    ...result.deleted.map((href) => statusResponse(cardHref(ctx.me, book, href), 404)),
  ];
  return multistatus(out, d('sync-token', escapeXml(result.token)));
}
