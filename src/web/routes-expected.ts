/**
 * Expected senders (docs/protocol.md 10.2): each entry with the uses and the
 * time it has left, a form to add one (domain, how long, how many uses)
 * through services.contacts.expect, the service of `twoway expect`, and
 * remove (the entry's card, which the server wrote for it alone).
 */
import type { FastifyInstance } from 'fastify';
import { invalid, notFound } from '../core/errors.ts';
import { parseDuration } from '../core/duration.ts';
import { html } from './html.ts';
import { page } from './layout.ts';
import { form, seeOther, sendHtml, signedIn, type WebDeps } from './context.ts';
import { contactsNav, notice, who } from './routes-contacts.ts';

/** "2 d 3 h", "4 h 10 min", "3 min", "expired": coarse, as a person reads a countdown. */
export function timeLeft(until: Date, now: Date): string {
  const ms = until.getTime() - now.getTime();
  if (ms <= 0) return 'expired';
  const min = Math.floor(ms / 60_000);
  if (min === 0) return 'under a minute';
  const d = Math.floor(min / 1440);
  const h = Math.floor((min % 1440) / 60);
  const m = min % 60;
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  return `${m} min`;
}

const NOTICES = { added: 'Now expecting', removed: 'No longer expecting' };

export function expectedRoutes(app: FastifyInstance, deps: WebDeps): void {
  const contacts = deps.services.contacts;

  app.get('/contacts/expected', async (request, reply) => {
    const s = signedIn(request)!;
    const now = new Date();
    const entries = await contacts.cards.expected(s.user.id);
    const csrf = s.session.csrfSecret;
    const rows = entries.map((e, i) => {
      const left = timeLeft(e.until, now);
      const label = `exp-${i}`;
      return html`<tr>
<td id="${label}">${e.domain}${e.from ? html`<br><span class="muted">also from ${e.from}</span>` : ''}</td>
<td>${e.uses === null ? 'unlimited' : `${e.uses} ${e.uses === 1 ? 'use' : 'uses'} left`}</td>
<td><span class="${left === 'expired' ? 'status status-expired' : ''}">${left === 'expired' ? 'expired' : `${left} left`}</span><br><span class="muted"><time datetime="${e.until.toISOString()}">until ${e.until.toISOString().slice(0, 16).replace('T', ' ')} UTC</time></span></td>
<td>${e.purpose}${e.requireMarker ? html`<br><span class="muted">marked mail only</span>` : ''}</td>
<td><form method="post" action="/contacts/expected/${e.id}/remove"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" class="danger" aria-describedby="${label}">Remove</button></form></td>
</tr>`;
    });
    return sendHtml(
      reply,
      page({
        title: 'Expected senders',
        section: 'contacts',
        assets: deps.assets,
        who: who(s),
        body: html`<h1>Expected senders</h1>
${contactsNav('expected')}
<p class="muted">Signing up at a site? Expect its confirmation mail: authenticated mail from that domain reaches your inbox in every mode until the time or the uses run out.</p>
${notice(request, NOTICES)}
${
  entries.length > 0
    ? html`<table class="expected"><caption class="visually-hidden">Expected senders</caption><thead><tr><th scope="col">Domain</th><th scope="col">Uses</th><th scope="col">Time left</th><th scope="col">Purpose</th><th scope="col">Actions</th></tr></thead><tbody>${rows}</tbody></table>`
    : html`<p class="muted">No expected senders.</p>`
}
<form method="post" action="/contacts/expected">
<input type="hidden" name="_csrf" value="${csrf}">
<fieldset><legend>Expect a sender</legend>
<label for="exp-domain">Domain</label>
<input type="text" id="exp-domain" name="domain" required maxlength="253" autocomplete="off" aria-describedby="exp-domain-help">
<p class="muted" id="exp-domain-help">The site's domain, for example shop.example (its subdomains count too).</p>
<label for="exp-for">For how long</label>
<input type="text" id="exp-for" name="for" value="24h" required maxlength="20" aria-describedby="exp-for-help">
<p class="muted" id="exp-for-help">A duration such as 30m, 2h or 7d.</p>
<label for="exp-uses">Uses</label>
<input type="number" id="exp-uses" name="uses" value="1" min="1" max="9999" required>
<div class="actions"><button type="submit" class="primary">Expect</button></div>
</fieldset>
</form>`,
      }),
    );
  });

  app.post('/contacts/expected', async (request, reply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const forMs = parseDuration(String(f.for ?? ''));
    if (forMs === null) throw invalid(`"${String(f.for ?? '').slice(0, 40)}" is not a duration such as 30m, 2h or 7d`);
    const usesText = String(f.uses ?? '1').trim();
    if (!/^\d{1,4}$/.test(usesText) || Number(usesText) < 1) throw invalid('Uses must be a whole number from 1 to 9999');
    const card = await contacts.expect(s.user.id, String(f.domain ?? ''), { forMs, uses: Number(usesText) });
    return seeOther(reply, `/contacts/expected?done=added&who=${encodeURIComponent(card.domain)}`);
  });

  app.post('/contacts/expected/:id/remove', async (request, reply) => {
    const s = signedIn(request)!;
    const id = Number((request.params as { id: string }).id);
    // Only an expected-sender card is removed from this page, so a stray id cannot remove a person.
    const entries = await contacts.cards.expected(s.user.id);
    const entry = entries.find((e) => e.id === id);
    if (!entry) throw notFound('No such expected sender');
    await contacts.cards.removeById(s.user.id, id);
    return seeOther(reply, `/contacts/expected?done=removed&who=${encodeURIComponent(entry.domain)}`);
  });
}
