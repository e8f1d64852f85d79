/**
 * Sent: what became of each message the user sent, per recipient, from
 * services.sent (the source of `twoway sent` and GET /api/sent). Each
 * recipient shows its current state, then its timeline: every state it
 * entered, oldest first, with its time (queued, deferred with the reason,
 * delivered with the reply; notified, pending, delivered, declined,
 * expired for Two-Way Mail; failed with the DSN text), from the history the
 * queue and the TWM sender record (store recipient_events, migration 0020).
 */
import type { FastifyInstance } from 'fastify';
import type { SentEventView, SentMessageView, SentRecipientView } from '../services/sent.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { sendHtml, signedIn, type WebDeps } from './context.ts';

const SENT_LIMIT = 100;

/** The current state, in a sentence. */
const STATUS_TEXT: Readonly<Record<string, string>> = {
  queued: 'Queued: waiting for the receiving server (retried with back-off)',
  delivered: 'Delivered',
  notified: 'Notified: the receiving server has the Two-Way Mail notice',
  pending: 'Pending: the recipient has not decided yet',
  declined: 'Declined by the recipient',
  expired: 'Expired: the recipient did not decide in time',
  failed: 'Failed',
};

/** One step of the timeline: a short name, and what its detail is. */
const STEP: Readonly<Record<string, { label: string; detail: string }>> = {
  queued: { label: 'Queued', detail: 'Note' },
  deferred: { label: 'Deferred', detail: 'Reason' },
  delivered: { label: 'Delivered', detail: 'Reply' },
  failed: { label: 'Failed', detail: 'Reason' },
  notified: { label: 'Notified', detail: 'Note' },
  pending: { label: 'Pending', detail: 'Note' },
  fetched: { label: 'Fetched by the receiving server', detail: 'Note' },
  unconfirmed: { label: 'Fetched, delivery not confirmed', detail: 'Note' },
  declined: { label: 'Declined', detail: 'Reason' },
  expired: { label: 'Expired', detail: 'Reason' },
};

const BAD = new Set(['failed', 'declined', 'expired', 'deferred']);

const at = (iso: string | null) =>
  iso ? html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>` : html`<span class="muted">time not recorded</span>`;

const statusClass = (status: string) => `status status-${status.replace(/[^a-z]/g, '-')}`;

function step(e: SentEventView): SafeHtml {
  const s = STEP[e.status] ?? { label: e.status, detail: 'Note' };
  return html`<li><span class="${statusClass(e.status)}">${s.label}</span> ${at(e.at)}${
    e.detail ? html`<div class="${BAD.has(e.status) ? 'step-detail bad' : 'step-detail'}"><span class="muted">${s.detail}:</span> <span class="detail">${e.detail}</span></div>` : ''
  }</li>`;
}

function recipient(m: SentMessageView, r: SentRecipientView): SafeHtml {
  // Mail sent before the history was kept (migration 0020) has none: its sending and current state.
  const steps =
    r.history.length > 0
      ? r.history.map(step)
      : [html`<li>Sent ${at(m.createdAt)}</li>`, step({ status: r.status, detail: r.detail, at: r.updatedAt ?? m.createdAt })];
  return html`<li><h3>${r.recipient} <span class="muted">(${r.via === 'twm' ? 'Two-Way Mail' : 'SMTP'})</span></h3>
<p class="now">Now: <span class="${statusClass(r.status)}">${STATUS_TEXT[r.status] ?? r.status}</span></p>
<ol class="timeline" aria-label="History of ${r.recipient}">${steps}</ol></li>`;
}

export function sentRoutes(app: FastifyInstance, deps: WebDeps): void {
  app.get('/sent', async (request, reply) => {
    const s = signedIn(request)!;
    const messages = await deps.services.sent.list(s.user, { limit: SENT_LIMIT });
    const items = messages.map(
      (m) => html`<li class="request"><h2>${m.subject ?? '(no subject)'}</h2><p class="muted">Message-ID ${m.messageId}</p>
<ul class="plain">${m.recipients.map((r) => recipient(m, r))}</ul></li>`,
    );
    return sendHtml(
      reply,
      page({
        title: 'Sent',
        section: 'sent',
        assets: deps.assets,
        who: { address: s.user.address, csrf: s.session.csrfSecret },
        body: html`<h1>Sent</h1>
<p class="muted">What became of the mail you sent, per recipient, newest first (the last ${SENT_LIMIT} messages).</p>
${items.length > 0 ? html`<ol class="requests">${items}</ol>` : html`<p class="muted">Nothing sent yet.</p>`}`,
      }),
    );
  });
}
