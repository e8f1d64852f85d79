/**
 * Sent: what became of each message the user sent, per recipient, from
 * services.sent (the source of `twoway sent` and GET /api/sent). Each
 * recipient is a short timeline: sent (the queue entry or TWM notice was
 * made), then its current state with its time, and for a failure the
 * remote server's reply (the DSN text) or the last error.
 */
import type { FastifyInstance } from 'fastify';
import type { SentMessageView, SentRecipientView } from '../services/sent.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { sendHtml, signedIn, type WebDeps } from './context.ts';

const SENT_LIMIT = 100;

const STATUS_TEXT: Readonly<Record<string, string>> = {
  queued: 'Queued: waiting for the receiving server (retried with back-off)',
  delivered: 'Delivered',
  notified: 'Notified: the receiving server has the Two-Way Mail notice',
  pending: 'Pending: the recipient has not decided yet',
  declined: 'Declined by the recipient',
  expired: 'Expired: the recipient did not decide in time',
  failed: 'Failed',
};

const at = (iso: string | null) =>
  iso ? html`<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>` : html`<span class="muted">time not recorded</span>`;

function recipient(m: SentMessageView, r: SentRecipientView): SafeHtml {
  const cls = `status status-${r.status.replace(/[^a-z]/g, '-')}`;
  const failed = r.status === 'failed' || r.status === 'declined' || r.status === 'expired';
  return html`<li><h3>${r.recipient} <span class="muted">(${r.via === 'twm' ? 'Two-Way Mail' : 'SMTP'})</span></h3>
<ol class="timeline">
<li>Sent ${at(m.createdAt)}</li>
<li><span class="${cls}">${STATUS_TEXT[r.status] ?? r.status}</span>${r.status !== 'queued' ? html` ${at(r.updatedAt)}` : ''}${r.detail ? html`<div class="${failed ? 'error' : 'muted'}"><span class="visually-hidden">${failed ? 'Reason: ' : 'Last reply: '}</span><span class="detail">${r.detail}</span></div>` : ''}</li>
</ol></li>`;
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
