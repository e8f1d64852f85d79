/**
 * Contacts: the address book as the allowlist. The list is newest first, 50
 * cards a page, key-paged by card id (page 200 costs what page 1 does), with
 * a search over the cards' text; add a person, a whole @domain or a mailing
 * list (allowed or blocked); one card's page shows what it allows or blocks
 * and its vCard, editable. Every write goes through services.contacts, and
 * edits of a card are writes by href with its ETag, as a CardDAV PUT is
 * (services/contacts-cards.ts), so clients see them at their next sync.
 * Expected senders and the .vcf import are in routes-contacts-more.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Contact, ContactEntry } from '../core/types.ts';
import { parseContactCard } from '../core/vcard/index-entries.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { form, seeOther, sendHtml, signedIn, type Signed, type WebDeps } from './context.ts';

export const CONTACTS_PAGE_SIZE = 50;

const NOTICES: Readonly<Record<string, string>> = {
  added: 'Added',
  blocked: 'Blocked',
  unblocked: 'Unblocked',
  removed: 'Removed',
  saved: 'Saved',
};

export function notice(request: FastifyRequest, labels: Readonly<Record<string, string>> = NOTICES): SafeHtml {
  const q = request.query as Record<string, string | undefined>;
  const label = q.done ? labels[q.done] : undefined;
  // The name comes back from our own redirect, but it is still only text.
  return html`<div role="status">${label ? html`<p class="notice">${label}${q.who ? ` ${q.who.slice(0, 200)}` : ''}.</p>` : ''}</div>`;
}

export const who = (s: Signed) => ({ address: s.user.address, csrf: s.session.csrfSecret });

export function contactsNav(current: 'list' | 'expected' | 'import'): SafeHtml {
  const link = (href: string, label: string, id: typeof current) => html`<li><a href="${href}" ${current === id ? html`aria-current="page"` : ''}>${label}</a></li>`;
  return html`<nav class="folders" aria-label="Contacts sections"><ul>${link('/contacts', 'Address book', 'list')}${link('/contacts/expected', 'Expected senders', 'expected')}${link('/contacts/import', 'Import .vcf', 'import')}</ul></nav>`;
}

interface Parsed {
  name: string | null;
  entries: ContactEntry[];
  broken: boolean;
}

function parsed(c: Contact): Parsed {
  try {
    const p = parseContactCard(c.vcard);
    return { name: p.fn, entries: p.entries, broken: false };
  } catch {
    // A stored card a later parser rejects is still listed; it allows nothing.
    return { name: null, entries: [], broken: true };
  }
}

const entryText = (e: ContactEntry) => (e.kind === 'domain' ? `@${e.value}` : e.kind === 'list' ? `list ${e.value}` : e.kind === 'expect' ? `expected: ${e.value}` : e.value);

function entriesText(p: Parsed): SafeHtml {
  if (p.broken) return html`<span class="muted">unreadable card (allows nothing)</span>`;
  const shown = p.entries.filter((e) => e.declaredFor === undefined);
  if (shown.length === 0) return html`<span class="muted">no address (allows nothing)</span>`;
  return html`${shown.map((e, i) => html`${i > 0 ? ', ' : ''}${e.action === 'block' ? html`<span class="status status-failed">blocked</span> ` : ''}${entryText(e)}`)}`;
}

const isBlocked = (p: Parsed) => p.entries.some((e) => e.action === 'block');
const canBlock = (p: Parsed) => !p.broken && p.entries.length > 0 && !p.entries.some((e) => e.kind === 'expect');

/**
 * One form per row (the CSRF token once): Remove is its action, Block or
 * Unblock its other button's formaction. With htmx each button posts the same
 * form (hx-post) and the list swaps in place (hx-target etc. are set once on
 * the table and inherited).
 */
function row(c: Contact, csrf: string, back: string): SafeHtml {
  const p = parsed(c);
  const nameId = `c-${c.id}`;
  const url = `/contacts/${c.id}`;
  const toggle = isBlocked(p) ? ['unblock', 'Unblock', ''] : ['block', 'Block', 'danger'];
  return html`<tr>
<td><a id="${nameId}" href="${url}">${p.name || c.uid}</a></td>
<td>${entriesText(p)}</td>
<td><form method="post" action="${url}/remove" class="actions"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="back" value="${back}">${
    canBlock(p) ? html`<button type="submit" formaction="${url}/${toggle[0]!}" hx-post="${url}/${toggle[0]!}" class="${toggle[2]!}" aria-describedby="${nameId}">${toggle[1]!}</button>` : ''
  }<button type="submit" hx-post="${url}/remove" class="danger" aria-describedby="${nameId}">Remove</button></form></td>
</tr>`;
}

function listQuery(request: FastifyRequest): { text: string; before: number | undefined } {
  const q = request.query as Record<string, string | undefined>;
  const text = (q.q ?? '').trim().slice(0, 200);
  const before = q.before !== undefined && /^[1-9]\d{0,15}$/.test(q.before) ? Number(q.before) : undefined;
  return { text, before };
}

/** Where a card action returns to: a page of the list (only our own paths), else the list. */
function backTo(raw: string | undefined): string {
  return raw && /^\/contacts(?:\?[A-Za-z0-9=&%._~+!*'()-]*)?$/.test(raw) ? raw : '/contacts';
}

const withNotice = (path: string, done: string, name: string) => `${path}${path.includes('?') ? '&' : '?'}done=${done}&who=${encodeURIComponent(name.slice(0, 200))}`;

const cardName = (c: Contact) => parsed(c).name || c.uid;

export function contactsRoutes(app: FastifyInstance, deps: WebDeps): void {
  contactListRoutes(app, deps);
  contactCardRoutes(app, deps);
}

/** The list of contacts (searchable, key-paged) and adding one. */
function contactListRoutes(app: FastifyInstance, deps: WebDeps): void {
  const cards = deps.services.contacts.cards;

  app.get('/contacts', async (request, reply) => {
    const s = signedIn(request)!;
    const { text, before } = listQuery(request);
    const [found, total] = await Promise.all([
      cards.page(s.user.id, { limit: CONTACTS_PAGE_SIZE, text, ...(before !== undefined ? { beforeId: before } : {}) }),
      cards.count(s.user.id),
    ]);
    const q = text ? `q=${encodeURIComponent(text)}` : '';
    const self = `/contacts${before !== undefined || q ? `?${[q, before !== undefined ? `before=${before}` : ''].filter(Boolean).join('&')}` : ''}`;
    const csrf = s.session.csrfSecret;
    const nav =
      before !== undefined || found.older !== undefined
        ? html`<nav class="pages" aria-label="Pages">${before !== undefined ? html`<a href="/contacts${q ? `?${q}` : ''}">Newest</a>` : ''}${found.older !== undefined ? html`<a href="/contacts?before=${found.older}${q ? `&${q}` : ''}" rel="next">Older</a>` : ''}</nav>`
        : '';
    const list =
      found.cards.length > 0
        ? html`<table class="contacts" hx-target="#contacts" hx-select="#contacts" hx-swap="outerHTML"><caption class="visually-hidden">Contacts</caption><thead><tr><th scope="col">Name</th><th scope="col">Allows or blocks</th><th scope="col">Actions</th></tr></thead><tbody>${found.cards.map((c) => row(c, csrf, self))}</tbody></table>`
        : html`<p class="muted">${text ? 'No contact matches.' : 'No contacts yet. People you write to are added here, and so are senders you approve in the Screener.'}</p>`;
    return sendHtml(
      reply,
      page({
        title: 'Contacts',
        section: 'contacts',
        assets: deps.assets,
        who: who(s),
        body: html`<h1>Contacts</h1>
${contactsNav('list')}
<p class="muted">Your address book is your allowlist: mail from these people, domains and lists reaches your inbox; blocked ones never do. ${total} ${total === 1 ? 'card' : 'cards'}; CardDAV clients see the same cards.</p>
<form method="post" action="/contacts/add" class="add-contact">
<input type="hidden" name="_csrf" value="${csrf}">
<fieldset><legend>Add a contact</legend>
<label for="add-sender">Address, @domain or mailing list id</label>
<input type="text" id="add-sender" name="sender" required maxlength="320" autocomplete="off" aria-describedby="add-sender-help">
<p class="muted" id="add-sender-help">For example ann@example.org, @example.org (everyone there) or dev.lists.example.org.</p>
<label for="add-name">Name (optional)</label>
<input type="text" id="add-name" name="name" maxlength="200" autocomplete="off">
<label for="add-kind">Kind</label>
<select id="add-kind" name="kind"><option value="sender">A person or a whole @domain</option><option value="list">A mailing list (List-Id)</option></select>
<div class="actions"><button type="submit" name="action" value="allow" class="primary">Add</button><button type="submit" name="action" value="block" class="danger">Block</button></div>
</fieldset>
</form>
<section id="contacts" aria-labelledby="contacts-heading">
<h2 id="contacts-heading">${text ? `Contacts matching “${text}”` : 'All contacts'}</h2>
${notice(request)}
<form method="get" action="/contacts" class="search" role="search"><label for="q">Search contacts</label><input type="text" id="q" name="q" value="${text}" maxlength="200"> <button type="submit">Search</button></form>
${list}
${nav}
</section>`,
      }),
    );
  });

  app.post('/contacts/add', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const blocked = f.action === 'block';
    const view = await deps.services.contacts.add(s.user.id, { sender: String(f.sender ?? ''), name: String(f.name ?? ''), blocked, list: f.kind === 'list' });
    return seeOther(reply, withNotice('/contacts', blocked ? 'blocked' : 'added', view.name ?? view.uid));
  });
}

/** One contact: its page, edits and removal. */
function contactCardRoutes(app: FastifyInstance, deps: WebDeps): void {
  const cards = deps.services.contacts.cards;

  app.get('/contacts/:id', async (request, reply) => {
    const s = signedIn(request)!;
    const c = await cards.byId(s.user.id, Number((request.params as { id: string }).id));
    const p = parsed(c);
    const csrf = s.session.csrfSecret;
    const self = `/contacts/${c.id}`;
    const post = (path: string, label: string, cls: string) =>
      html`<form method="post" action="${self}/${path}"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="back" value="${self}"><button type="submit" class="${cls}">${label}</button></form>`;
    return sendHtml(
      reply,
      page({
        title: p.name || c.uid,
        section: 'contacts',
        assets: deps.assets,
        who: who(s),
        body: html`<p><a href="/contacts">All contacts</a></p>
<h1 class="card-name">${p.name || c.uid}</h1>
${notice(request)}
<dl class="headers">
<dt>Allows or blocks</dt><dd>${entriesText(p)}</dd>
<dt>Address book</dt><dd>${c.book}</dd>
<dt>Changed</dt><dd><time datetime="${c.updatedAt.toISOString()}">${c.updatedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC</time></dd>
</dl>
<div class="actions">${canBlock(p) ? (isBlocked(p) ? post('unblock', 'Unblock', '') : post('block', 'Block', 'danger')) : ''}${post('remove', 'Remove', 'danger')}</div>
<form method="post" action="${self}/edit">
<input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="etag" value="${c.etag}">
<label for="vcard">vCard</label>
<textarea id="vcard" name="vcard" rows="14" spellcheck="false" aria-describedby="vcard-help">${c.vcard}</textarea>
<p class="muted" id="vcard-help">The card as stored and as CardDAV clients see it. EMAIL allows an address, X-TWOWAY-DOMAIN a whole domain, X-TWOWAY-LIST a mailing list; X-TWOWAY-BLOCKED:TRUE blocks them instead.</p>
<button type="submit" class="primary">Save vCard</button>
</form>`,
      }),
    );
  });

  app.post('/contacts/:id/edit', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const c = await cards.replace(s.user.id, Number((request.params as { id: string }).id), String(f.vcard ?? ''), String(f.etag ?? ''));
    return seeOther(reply, withNotice(`/contacts/${c.id}`, 'saved', cardName(c)));
  });

  for (const [path, blocked] of [['block', true], ['unblock', false]] as const) {
    app.post(`/contacts/:id/${path}`, async (request, reply) => {
      const s = signedIn(request)!;
      const c = await cards.setBlocked(s.user.id, Number((request.params as { id: string }).id), blocked);
      const back = String(form(request).back ?? '');
      return seeOther(reply, withNotice(back === `/contacts/${c.id}` ? back : backTo(back), path === 'block' ? 'blocked' : 'unblocked', cardName(c)));
    });
  }

  app.post('/contacts/:id/remove', async (request, reply) => {
    const s = signedIn(request)!;
    const c = await cards.removeById(s.user.id, Number((request.params as { id: string }).id));
    return seeOther(reply, withNotice(backTo(String(form(request).back ?? '')), 'removed', cardName(c)));
  });
}
