/**
 * Mail: the folder list and a mailbox's messages (newest first, 50 per page,
 * key-paged by UID so page 200 costs what page 1 does), search through
 * services.mailSearch (IMAP's SEARCH TEXT, the same code the IMAP server
 * runs: headers and the text of every part, so body text is found too; at
 * most 2,000 messages searched per request, then "Search older"), and
 * actions (flags, move, delete) through services.mail, the service the API
 * uses. The message view lives in routes-message.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { notFound } from '../core/errors.ts';
import { MAILBOXES, type MailboxName, type MessageSummary } from '../core/types.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { sendHtml, signedIn, type Signed, type WebDeps } from './context.ts';

export const MAIL_PAGE_SIZE = 50;

export function mailboxParam(raw: string): MailboxName {
  const found = MAILBOXES.find((m) => m.toLowerCase() === raw.toLowerCase());
  // An unknown folder is a page that does not exist.
  if (!found) throw notFound(`No folder ${raw}`);
  return found;
}

export const shortTime = (d: Date) => html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')}</time>`;

export async function folderNav(deps: WebDeps, s: Signed, current: MailboxName | null): Promise<SafeHtml> {
  const boxes = await deps.services.mail.mailboxes(s.user.id);
  const items = boxes.map(
    (b) => html`<li><a href="/mail/${encodeURIComponent(b.name)}" ${b.name === current ? html`aria-current="page"` : ''}>${b.name}</a> <span class="muted">${b.count}</span></li>`,
  );
  return html`<nav class="folders" aria-label="Folders"><ul>${items}</ul></nav>`;
}

function row(m: MessageSummary): SafeHtml {
  const unread = !m.flags.some((f) => f.toLowerCase() === '\\seen');
  const flagged = m.flags.some((f) => f.toLowerCase() === '\\flagged');
  return html`<tr class="${unread ? 'unread' : ''}">
<td>${flagged ? html`<span aria-label="Flagged" title="Flagged">★</span>` : ''}${unread ? html`<span class="visually-hidden">Unread. </span>` : ''}${m.from ?? m.sender ?? '(no sender)'}</td>
<td><a href="/message/${m.id}">${m.subject ?? '(no subject)'}</a></td>
<td>${shortTime(m.receivedAt)}</td></tr>`;
}

function query(request: FastifyRequest): { text: string; before: number | undefined } {
  const q = request.query as Record<string, string | undefined>;
  const text = (q.q ?? '').trim().slice(0, 200);
  const before = q.before !== undefined && /^[1-9]\d{0,15}$/.test(q.before) ? Number(q.before) : undefined;
  return { text, before };
}

export function mailRoutes(app: FastifyInstance, deps: WebDeps): void {
  app.get('/mail', async (_request, reply) => reply.code(303).header('location', '/mail/INBOX').send());

  app.get('/mail/:box', async (request, reply) => {
    const s = signedIn(request)!;
    const box = mailboxParam((request.params as { box: string }).box);
    const { text, before } = query(request);
    let shown: MessageSummary[];
    let older: number | undefined;
    let searched = '';
    if (text) {
      const found = await deps.services.mailSearch.text(s.user.id, box, text, { beforeUid: before, limit: MAIL_PAGE_SIZE });
      shown = found.hits;
      older = found.continueBefore ?? undefined;
      if (older !== undefined && found.hits.length < MAIL_PAGE_SIZE) searched = `Searched the ${found.scanned} ${before !== undefined ? 'next older' : 'newest'} messages.`;
    } else {
      const found = await deps.services.mail.page(s.user.id, box, { limit: MAIL_PAGE_SIZE, ...(before !== undefined ? { beforeUid: before } : {}) });
      shown = found.slice(0, MAIL_PAGE_SIZE);
      older = found.length > MAIL_PAGE_SIZE ? shown[shown.length - 1]!.uid : undefined;
    }
    const q = text ? `&q=${encodeURIComponent(text)}` : '';
    const self = `/mail/${encodeURIComponent(box)}`;
    const nav =
      before !== undefined || older !== undefined
        ? html`<nav class="pages" aria-label="Pages">${searched ? html`<span class="muted">${searched}</span> ` : ''}${before !== undefined ? html`<a href="${self}${text ? `?q=${encodeURIComponent(text)}` : ''}">Newest</a>` : ''}${older !== undefined ? html`<a href="${self}?before=${older}${q}" rel="next">${text ? 'Search older' : 'Older'}</a>` : ''}</nav>`
        : '';
    const list =
      shown.length > 0
        ? html`<table class="messages"><caption class="visually-hidden">Messages in ${box}</caption><thead><tr><th scope="col">From</th><th scope="col">Subject</th><th scope="col">Received (UTC)</th></tr></thead><tbody>${shown.map(row)}</tbody></table>`
        : html`<p class="muted">${text ? 'No message matches.' : 'No messages here.'}</p>`;
    return sendHtml(
      reply,
      page({
        title: box,
        section: 'mail',
        assets: deps.assets,
        who: { address: s.user.address, csrf: s.session.csrfSecret },
        body: html`<h1>${box}</h1>
${await folderNav(deps, s, box)}
<form method="get" action="${self}" class="search" role="search"><label for="q">Search messages (text, subject, sender)</label><input type="text" id="q" name="q" value="${text}"> <button type="submit">Search</button></form>
${list}
${nav}`,
      }),
    );
  });
}
