/**
 * The Screener page: pending contact requests, best first (services.screener
 * ranks them, and each shows why), 50 per key page (`after=` the key of the
 * last request shown: one ranked query with LIMIT whatever the depth), with
 * approve / approve domain / deny / spam (held mail to Junk, teaching the
 * spam filter). Requests can be selected (checkboxes of the form `#bulk`)
 * and decided together; screener-script.ts adds the keys j/k/x/a/d. Likely
 * spam is listed only with `likely=1`. Actions are plain form posts answered
 * with 303; with htmx they swap only the list. The list polls (every 5 s)
 * with a digest of what it shows: the server answers 204 (htmx swaps
 * nothing) until the page would change. A request's preview lists the mail
 * it holds (each opens on the message page, sanitised there like any mail);
 * a Two-Way Mail request holds none, and the preview says why.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RankedRequest, ScreenerActionResult } from '../services/screener.ts';
import type { RequestPageKey } from '../store/types.ts';
import { screenerScript } from './assets.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { form, seeOther, sendHtml, signedIn, type Signed, type WebDeps } from './context.ts';

export const PAGE_SIZE = 50;

const time = (d: Date) => html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>`;

/** Where a page starts and what it lists, from the query or a form's hidden fields. */
interface View {
  after: RequestPageKey | undefined;
  likely: boolean;
}

/** A page key as text: `rank_lastSeenMs_id` (rank may be negative). */
const keyText = (k: RequestPageKey) => `${k.rank}_${k.lastSeen.getTime()}_${k.id}`;

function parseKey(raw: string | undefined): RequestPageKey | undefined {
  const m = raw === undefined ? null : /^(-?\d{1,6})_(\d{1,15})_(\d{1,15})$/.exec(raw);
  return m ? { rank: Number(m[1]), lastSeen: new Date(Number(m[2])), id: Number(m[3]) } : undefined;
}

const viewOf = (fields: Record<string, string | undefined>): View => ({ after: parseKey(fields.after), likely: fields.likely === '1' });

/** The query string of a view (with `&` as in a URL; the html template escapes it in attributes). */
function query(v: View, extra = ''): string {
  const parts = [v.after ? `after=${keyText(v.after)}` : '', v.likely ? 'likely=1' : '', extra].filter((p) => p !== '');
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

const NOTICES: Readonly<Record<string, string>> = {
  approved: 'Approved',
  'approved-domain': 'Approved the domain',
  denied: 'Denied',
  spam: 'Marked as spam',
};

/** The hidden fields that bring a form's answer back to the same view. */
const viewFields = (v: View) =>
  html`${v.after ? html`<input type="hidden" name="after" value="${keyText(v.after)}">` : ''}${v.likely ? html`<input type="hidden" name="likely" value="1">` : ''}`;

function requestItem(r: RankedRequest, i: number, csrf: string, v: View): SafeHtml {
  const headingId = `req-${i}`;
  const action = (path: string, label: string, cls: string, field: SafeHtml, key = '') => html`<form method="post" action="${path}" hx-post="${path}" hx-target="#requests" hx-select="#requests" hx-swap="outerHTML">
<input type="hidden" name="_csrf" value="${csrf}">${viewFields(v)}${field}
<button type="submit" class="${cls}" aria-describedby="${headingId}"${key ? html` data-key="${key}"` : ''}>${label}</button></form>`;
  const sender = html`<input type="hidden" name="sender" value="${r.sender}">`;
  return html`<li class="request${r.likelySpam ? ' spam' : ''}" tabindex="-1" aria-labelledby="${headingId}">
<div class="request-head"><input type="checkbox" form="bulk" name="s${i}" value="${r.sender}" id="pick-${i}" aria-labelledby="pick-label-${i} ${headingId}"><label for="pick-${i}" id="pick-label-${i}" class="visually-hidden">Select</label>
<h2 id="${headingId}">${r.sender}</h2>${r.likelySpam ? html`<span class="tag">likely spam</span>` : ''}</div>
<dl>
<dt>Authenticated</dt><dd>${r.authDomain ?? 'not authenticated'}</dd>
<dt>Messages</dt><dd>${r.count}${r.held > 0 ? html` <span class="muted">(${r.held} held)</span>` : ''}</dd>
<dt>Subject</dt><dd>${r.sampleSubject ?? html`<span class="muted">none</span>`}</dd>
<dt>Last seen</dt><dd>${time(r.lastSeen)}</dd>
<dt>Ranked by</dt><dd>score ${r.reputation.score}: ${r.reputation.reasons.join(', ')}</dd>
</dl>
${r.intro !== null ? html`<p class="muted">Introduction (Two-Way Mail; the message itself stays on the sender's server until you approve):</p><p class="intro">${r.intro}</p>` : ''}
<div class="actions">
${action('/screener/approve', 'Approve', 'primary', sender, 'approve')}
${r.authDomain ? action('/screener/approve-domain', `Approve all of @${r.authDomain}`, '', html`<input type="hidden" name="domain" value="${r.authDomain}">`) : ''}
${action('/screener/deny', 'Deny', 'danger', sender, 'deny')}
${action('/screener/spam', 'Spam', 'danger', sender)}
<a class="button" href="/screener/preview?sender=${encodeURIComponent(r.sender)}" aria-describedby="${headingId}">Preview</a>
</div>
</li>`;
}

async function listSection(deps: WebDeps, s: Signed, v: View, notice: string | undefined): Promise<{ section: SafeHtml; digest: string }> {
  const p = await deps.services.screener.page(s.user.id, { after: v.after, limit: PAGE_SIZE, likelySpam: v.likely });
  const total = p.listed + (v.likely ? p.likelySpam : 0);
  const digest = createHash('sha256')
    .update(JSON.stringify([total, p.likelySpam, p.requests.map((r) => [r.sender, r.count, r.lastSeen.getTime(), r.intro, r.authDomain, r.held])]))
    .digest('base64url')
    .slice(0, 16);
  const csrf = s.session.csrfSecret;
  const first = { after: undefined, likely: v.likely };
  const nav =
    v.after || p.next
      ? html`<nav class="pages" aria-label="Pages">${v.after ? html`<a href="/screener${query(first)}">First page</a>` : ''}${p.next ? html`<a href="/screener${query({ after: p.next, likely: v.likely })}" rel="next">Next ${PAGE_SIZE}</a>` : ''}</nav>`
      : '';
  const spamLine =
    p.likelySpam > 0
      ? v.likely
        ? html`<p class="muted">Likely spam is listed (ranked last). <a href="/screener">Hide it</a></p>`
        : html`<p class="muted">${p.likelySpam} more judged likely spam ${p.likelySpam === 1 ? 'is' : 'are'} not listed. <a href="/screener?likely=1">Show ${p.likelySpam === 1 ? 'it' : 'them'}</a></p>`
      : '';
  const bulkButton = (value: string, label: string, cls: string) => html`<button type="submit" name="do" value="${value}" class="${cls}">${label}</button>`;
  const section = html`<section id="requests" aria-labelledby="requests-heading" hx-get="/screener/requests${query(v, `v=${digest}`)}" hx-trigger="every 5s" hx-swap="outerHTML">
<h2 id="requests-heading">${total === 0 ? 'No pending requests' : `${total} pending ${total === 1 ? 'request' : 'requests'}`}</h2>
<div role="status">${notice ? html`<p class="notice">${notice}</p>` : ''}</div>
${spamLine}
${
  p.requests.length > 0
    ? html`<form id="bulk" class="bulk" method="post" action="/screener/bulk" hx-post="/screener/bulk" hx-target="#requests" hx-select="#requests" hx-swap="outerHTML">
<input type="hidden" name="_csrf" value="${csrf}">${viewFields(v)}<span class="muted">Selected requests:</span>
${bulkButton('approve', 'Approve selected', 'primary')} ${bulkButton('deny', 'Deny selected', 'danger')} ${bulkButton('spam', 'Spam selected', 'danger')}
</form>
<ol class="requests">${p.requests.map((r, i) => requestItem(r, i, csrf, v))}</ol>`
    : html`<p class="muted">New senders you have not decided on appear here.</p>`
}
${nav}
</section>`;
  return { section, digest };
}

export function screenerRoutes(app: FastifyInstance, deps: WebDeps): void {
  screenerPageRoutes(app, deps);
  screenerActionRoutes(app, deps);
}

/** The Screener page, a request's preview and the list fragment it polls. */
function screenerPageRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { services } = deps;
  const q = (request: FastifyRequest) => request.query as Record<string, string | undefined>;

  app.get('/screener', async (request, reply) => {
    const s = signedIn(request)!;
    const fields = q(request);
    const label = fields.done ? NOTICES[fields.done] : undefined;
    const n = Number(fields.n) || 0;
    const notice =
      fields.done === 'none'
        ? 'Nothing was selected: tick the requests first (or press x on each).'
        : label && fields.who
          ? `${label} ${fields.who}${fields.n !== undefined ? `: ${n} held ${n === 1 ? 'message' : 'messages'} handled` : ''}.`
          : undefined;
    const { section } = await listSection(deps, s, viewOf(fields), notice);
    return sendHtml(
      reply,
      page({
        title: 'Screener',
        section: 'screener',
        assets: deps.assets,
        who: { address: s.user.address, csrf: s.session.csrfSecret },
        body: html`<h1>Screener</h1>
<p class="muted">People who wrote to you for the first time. Approve to let them (and their held mail) into your inbox; deny to block them.</p>
<p class="muted keys">Keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous, <kbd>x</kbd> select, <kbd>a</kbd> approve, <kbd>d</kbd> deny (the selected requests, or the current one).</p>
${section}
<script src="${screenerScript.path}" defer></script>`,
      }),
    );
  });

  app.get('/screener/preview', async (request, reply) => {
    const s = signedIn(request)!;
    const { request: r, held } = await services.screener.preview(s.user.id, String(q(request).sender ?? ''));
    const decide = (path: string, label: string, cls: string) => html`<form method="post" action="${path}">
<input type="hidden" name="_csrf" value="${s.session.csrfSecret}"><input type="hidden" name="sender" value="${r.sender}">
<button type="submit" class="${cls}">${label}</button></form>`;
    const mail =
      held.length > 0
        ? html`<h2>Held mail</h2><ul class="held">${held.map((m) => html`<li><a href="/message/${m.id}">${m.subject ?? '(no subject)'}</a> <span class="muted">${time(m.receivedAt)}</span></li>`)}</ul>`
        : html`<p>Nothing from this sender is stored on this server. A Two-Way Mail request's message stays on the sender's server until you approve; then it is fetched. If you deny, it is never fetched.</p>`;
    return sendHtml(
      reply,
      page({
        title: `Preview: ${r.sender}`,
        section: 'screener',
        assets: deps.assets,
        who: { address: s.user.address, csrf: s.session.csrfSecret },
        body: html`<p><a href="/screener">Back to the Screener</a></p>
<h1>${r.sender}</h1>
<dl>
<dt>Authenticated</dt><dd>${r.authDomain ?? 'not authenticated'}</dd>
<dt>Attempts</dt><dd>${r.count}</dd>
<dt>Last seen</dt><dd>${time(r.lastSeen)}</dd>
<dt>Status</dt><dd>${r.status}</dd>
</dl>
${r.intro !== null ? html`<h2>Introduction</h2><p class="intro">${r.intro}</p>` : ''}
${mail}
${r.status === 'pending' ? html`<div class="actions">${decide('/screener/approve', 'Approve', 'primary')}${decide('/screener/deny', 'Deny', 'danger')}</div>` : ''}`,
      }),
    );
  });

  // The list alone, for htmx polling: 204 while the digest still matches.
  app.get('/screener/requests', async (request, reply) => {
    const s = signedIn(request)!;
    const { section, digest } = await listSection(deps, s, viewOf(q(request)), undefined);
    if (q(request).v === digest) return reply.code(204).send();
    return sendHtml(reply, section);
  });
}

/** Back to the Screener after a decision, in the same view, with what was done for the notice. */
function back(f: Record<string, string>, done: string, who: string, results: ScreenerActionResult[]): string {
  const n = results.reduce((a, r) => a + (r.released ?? 0) + (r.dropped ?? 0) + (r.junked ?? 0), 0);
  return `/screener${query(viewOf(f), `done=${done}&who=${encodeURIComponent(who)}&n=${n}`)}`;
}

/** Decisions on requests: approve, approve the domain, deny, spam, and in bulk. */
function screenerActionRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { services } = deps;

  app.post('/screener/approve', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.approve(s.user.id, [String(f.sender ?? '')]);
    return seeOther(reply, back(f, 'approved', String(f.sender), results));
  });

  app.post('/screener/approve-domain', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.approveDomain(s.user.id, String(f.domain ?? ''));
    return seeOther(reply, back(f, 'approved-domain', `@${String(f.domain ?? '').replace(/^@/, '')}`, results));
  });

  app.post('/screener/deny', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.deny(s.user.id, [String(f.sender ?? '')]);
    return seeOther(reply, back(f, 'denied', String(f.sender), results));
  });

  // Held mail to Junk (teaching the spam filter spam when [spam] learns), the request denied, nobody blocked.
  app.post('/screener/spam', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const results = await services.screener.spam(s.user.id, [String(f.sender ?? '')]);
    return seeOther(reply, back(f, 'spam', String(f.sender), results));
  });

  // The selected requests of a page (checkboxes s0..s49 of the form #bulk), decided together.
  app.post('/screener/bulk', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const senders = [...new Set(Array.from({ length: PAGE_SIZE }, (_, i) => f[`s${i}`]).filter((x): x is string => typeof x === 'string' && x !== ''))];
    const how = f.do;
    if (how !== 'approve' && how !== 'deny' && how !== 'spam') return seeOther(reply, `/screener${query(viewOf(f))}`);
    if (senders.length === 0) return seeOther(reply, `/screener${query(viewOf(f), 'done=none')}`);
    const results = await services.screener[how](s.user.id, senders);
    const who = senders.length === 1 ? senders[0]! : `${senders.length} senders`;
    return seeOther(reply, back(f, how === 'approve' ? 'approved' : how === 'deny' ? 'denied' : 'spam', who, results));
  });
}
