/**
 * The Screener page: pending contact requests, best first (services.screener
 * ranks them, and each shows why), 50 per page, with approve / approve
 * domain / deny / spam (held mail to Junk, teaching the spam filter). Actions are
 * plain form posts answered with 303; with htmx they swap only the list. The
 * list polls (every 5 s) with a digest of what it shows: the server answers
 * 204 (htmx swaps nothing) until the page would change.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RankedRequest } from '../services/screener.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { form, seeOther, sendHtml, signedIn, type Signed, type WebDeps } from './context.ts';

export const PAGE_SIZE = 50;

const time = (d: Date) => html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>`;

function pageNumber(request: FastifyRequest): number {
  const raw = (request.query as Record<string, string | undefined>).page;
  const n = raw === undefined ? 1 : Number(raw);
  return Number.isSafeInteger(n) && n >= 1 && n <= 1_000_000 ? n : 1;
}

const NOTICES: Readonly<Record<string, string>> = {
  approved: 'Approved',
  'approved-domain': 'Approved the domain',
  denied: 'Denied',
  spam: 'Marked as spam',
};

function requestItem(r: RankedRequest, i: number, csrf: string, pageNo: number): SafeHtml {
  const headingId = `req-${i}`;
  const action = (path: string, label: string, cls: string, field: SafeHtml) => html`<form method="post" action="${path}" hx-post="${path}" hx-target="#requests" hx-select="#requests" hx-swap="outerHTML">
<input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="page" value="${pageNo}">${field}
<button type="submit" class="${cls}" aria-describedby="${headingId}">${label}</button></form>`;
  const sender = html`<input type="hidden" name="sender" value="${r.sender}">`;
  return html`<li class="request">
<h2 id="${headingId}">${r.sender}</h2>
<dl>
<dt>Authenticated</dt><dd>${r.authDomain ?? 'not authenticated'}</dd>
<dt>Messages</dt><dd>${r.count}${r.held > 0 ? html` <span class="muted">(${r.held} held)</span>` : ''}</dd>
<dt>Subject</dt><dd>${r.sampleSubject ?? html`<span class="muted">none</span>`}</dd>
<dt>Last seen</dt><dd>${time(r.lastSeen)}</dd>
<dt>Ranked by</dt><dd>score ${r.reputation.score}: ${r.reputation.reasons.join(', ')}</dd>
</dl>
${r.intro !== null ? html`<p class="muted">Introduction (Two-Way Mail; the message itself stays on the sender's server until you approve):</p><p class="intro">${r.intro}</p>` : ''}
<div class="actions">
${action('/screener/approve', 'Approve', 'primary', sender)}
${r.authDomain ? action('/screener/approve-domain', `Approve all of @${r.authDomain}`, '', html`<input type="hidden" name="domain" value="${r.authDomain}">`) : ''}
${action('/screener/deny', 'Deny', 'danger', sender)}
${action('/screener/spam', 'Spam', 'danger', sender)}
</div>
</li>`;
}

async function listSection(deps: WebDeps, s: Signed, pageNo: number, notice: string | undefined): Promise<{ section: SafeHtml; digest: string }> {
  const all = await deps.services.screener.list(s.user.id, 'pending');
  const pages = Math.max(1, Math.ceil(all.length / PAGE_SIZE));
  const p = Math.min(pageNo, pages);
  const shown = all.slice((p - 1) * PAGE_SIZE, p * PAGE_SIZE);
  const digest = createHash('sha256')
    .update(JSON.stringify([all.length, shown.map((r) => [r.sender, r.count, r.lastSeen.getTime(), r.intro, r.authDomain])]))
    .digest('base64url')
    .slice(0, 16);
  const csrf = s.session.csrfSecret;
  const nav =
    pages > 1
      ? html`<nav class="pages" aria-label="Pages">${p > 1 ? html`<a href="/screener?page=${p - 1}" rel="prev">Previous</a>` : ''}<span>Page ${p} of ${pages}</span>${p < pages ? html`<a href="/screener?page=${p + 1}" rel="next">Next</a>` : ''}</nav>`
      : '';
  const section = html`<section id="requests" aria-labelledby="requests-heading" hx-get="/screener/requests?page=${p}&amp;v=${digest}" hx-trigger="every 5s" hx-swap="outerHTML">
<h2 id="requests-heading">${all.length === 0 ? 'No pending requests' : `${all.length} pending ${all.length === 1 ? 'request' : 'requests'}`}</h2>
<div role="status">${notice ? html`<p class="notice">${notice}</p>` : ''}</div>
${shown.length > 0 ? html`<ol class="requests">${shown.map((r, i) => requestItem(r, i, csrf, p))}</ol>` : html`<p class="muted">New senders you have not decided on appear here.</p>`}
${nav}
</section>`;
  return { section, digest };
}

export function screenerRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { services } = deps;

  app.get('/screener', async (request, reply) => {
    const s = signedIn(request)!;
    const q = request.query as Record<string, string | undefined>;
    const label = q.done ? NOTICES[q.done] : undefined;
    const notice = label && q.who ? `${label} ${q.who}${q.n !== undefined ? `: ${Number(q.n) || 0} held ${Number(q.n) === 1 ? 'message' : 'messages'} handled` : ''}.` : undefined;
    const { section } = await listSection(deps, s, pageNumber(request), notice);
    return sendHtml(
      reply,
      page({
        title: 'Screener',
        section: 'screener',
        assets: deps.assets,
        who: { address: s.user.address, csrf: s.session.csrfSecret },
        body: html`<h1>Screener</h1>
<p class="muted">People who wrote to you for the first time. Approve to let them (and their held mail) into your inbox; deny to block them.</p>
${section}`,
      }),
    );
  });

  // The list alone, for htmx polling: 204 while the digest still matches.
  app.get('/screener/requests', async (request, reply) => {
    const s = signedIn(request)!;
    const { section, digest } = await listSection(deps, s, pageNumber(request), undefined);
    if ((request.query as Record<string, string | undefined>).v === digest) return reply.code(204).send();
    return sendHtml(reply, section);
  });

  const back = (f: Record<string, string>, done: string, who: string, n: number) => {
    const p = Number(f.page);
    const pageNo = Number.isSafeInteger(p) && p >= 1 ? p : 1;
    return `/screener?page=${pageNo}&done=${done}&who=${encodeURIComponent(who)}&n=${n}`;
  };
  const sum = (rs: Array<{ released?: number; dropped?: number; junked?: number }>) => rs.reduce((a, r) => a + (r.released ?? 0) + (r.dropped ?? 0) + (r.junked ?? 0), 0);

  app.post('/screener/approve', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.approve(s.user.id, [String(f.sender ?? '')]);
    return seeOther(reply, back(f, 'approved', String(f.sender), sum(results)));
  });

  app.post('/screener/approve-domain', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.approveDomain(s.user.id, String(f.domain ?? ''));
    return seeOther(reply, back(f, 'approved-domain', `@${String(f.domain ?? '').replace(/^@/, '')}`, sum(results)));
  });

  app.post('/screener/deny', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.deny(s.user.id, [String(f.sender ?? '')]);
    return seeOther(reply, back(f, 'denied', String(f.sender), sum(results)));
  });

  // Held mail to Junk (teaching the spam filter spam when [spam] learns), the request denied, nobody blocked.
  app.post('/screener/spam', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.spam(s.user.id, [String(f.sender ?? '')]);
    return seeOther(reply, back(f, 'spam', String(f.sender), sum(results)));
  });
}
