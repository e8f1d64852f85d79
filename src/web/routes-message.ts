/**
 * One message: headers and text as text; HTML sanitised (sanitize.ts) and
 * shown in a sandboxed iframe (no scripts, an opaque origin) whose document
 * comes from its own route with its own CSP: nothing but inline-free markup
 * and, only after "Show images" for this message, remote images.
 * Attachments download with Content-Disposition: attachment as
 * application/octet-stream (never rendered by the browser on this origin).
 * Another user's message id is a 404 like an id that does not exist.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { notFound } from '../core/errors.ts';
import { MAILBOXES } from '../core/types.ts';
import { html } from './html.ts';
import { page } from './layout.ts';
import { form, seeOther, sendHtml, signedIn, type WebDeps } from './context.ts';
import { messageParts, partBytes } from './message-parts.ts';
import { folderNav, mailboxParam, shortTime } from './routes-mail.ts';
import { sanitizeMail } from './sanitize.ts';

/** The frame's own policy: no script, no style, no request at all unless images were allowed. */
export const frameCsp = (images: boolean) =>
  `default-src 'none'; img-src data:${images ? ' https: http:' : ''}; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox`;

function idParam(raw: string): number {
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw notFound(`No message ${raw}`);
  return Number(raw);
}

const idOf = (params: unknown) => idParam((params as { id: string }).id);

/** A filename safe for the header: RFC 6266 filename* plus an ASCII fallback. */
function disposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export function messageRoutes(app: FastifyInstance, deps: WebDeps): void {
  messageViewRoutes(app, deps);
  messageActionRoutes(app, deps);
}

/** A message, its sandboxed body and its attachments. */
function messageViewRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { mail } = deps.services;

  app.get('/message/:id', async (request, reply) => {
    const s = signedIn(request)!;
    const id = idOf(request.params);
    const msg = await mail.get(s.user.id, id);
    // Reading marks it read, as a mail client does.
    if (!msg.flags.some((f) => f.toLowerCase() === '\\seen')) await mail.setFlag(s.user.id, id, '\\Seen', true);
    const parts = messageParts(msg.raw);
    const images = (request.query as Record<string, string | undefined>).images === '1';
    const csrf = s.session.csrfSecret;
    const token = html`<input type="hidden" name="_csrf" value="${csrf}">`;
    const flagged = msg.flags.some((f) => f.toLowerCase() === '\\flagged');
    const blocked = parts.html !== null && !images ? sanitizeMail(parts.html, false).blockedImages : 0;
    const body =
      parts.html !== null
        ? html`${blocked > 0 ? html`<p class="notice">${blocked} remote ${blocked === 1 ? 'image was' : 'images were'} blocked. <a href="/message/${id}?images=1">Show images</a></p>` : ''}
<iframe class="mail-body" sandbox="allow-popups allow-popups-to-escape-sandbox" src="/message/${id}/body${images ? '?images=1' : ''}" title="Message body"></iframe>`
        : html`<pre class="mail-text">${parts.text ?? ''}</pre>`;
    const files = parts.attachments.map(
      (a) => html`<li><a href="/message/${id}/attachment/${a.n}" download>${a.filename}</a> <span class="muted">${a.type}, ${Math.ceil(a.size / 1024)} KB</span></li>`,
    );
    const moveTo = MAILBOXES.filter((b) => b !== msg.mailbox && b !== 'Screener').map((b) => html`<option value="${b}">${b}</option>`);
    return sendHtml(
      reply,
      page({
        title: msg.subject ?? '(no subject)',
        section: 'mail',
        assets: deps.assets,
        who: { address: s.user.address, csrf },
        body: html`${await folderNav(deps, s, msg.mailbox)}
<h1>${msg.subject ?? '(no subject)'}</h1>
<dl class="headers"><dt>From</dt><dd>${msg.from ?? msg.sender ?? '(no sender)'}</dd><dt>Received</dt><dd>${shortTime(msg.receivedAt)} UTC</dd><dt>Folder</dt><dd>${msg.mailbox}</dd></dl>
<div class="actions">
<a class="button" href="/compose?reply=${id}">Reply</a> <a class="button" href="/compose?reply=${id}&amp;all=1">Reply all</a> <a class="button" href="/compose?forward=${id}">Forward</a>
<form method="post" action="/message/${id}/flag">${token}<input type="hidden" name="flag" value="flagged"><input type="hidden" name="on" value="${flagged ? '0' : '1'}"><button type="submit">${flagged ? 'Unflag' : 'Flag'}</button></form>
<form method="post" action="/message/${id}/flag">${token}<input type="hidden" name="flag" value="seen"><input type="hidden" name="on" value="0"><button type="submit">Mark unread</button></form>
<form method="post" action="/message/${id}/move">${token}<label for="move-to" class="inline">Move to</label> <select id="move-to" name="to">${moveTo}</select> <button type="submit">Move</button></form>
<form method="post" action="/message/${id}/delete">${token}<button type="submit" class="danger">${msg.mailbox === 'Trash' ? 'Delete for good' : 'Delete'}</button></form>
</div>
${body}
${files.length > 0 ? html`<h2>Attachments</h2><ul>${files}</ul>` : ''}`,
      }),
    );
  });

  app.get('/message/:id/body', async (request, reply) => {
    const s = signedIn(request)!;
    const msg = await mail.get(s.user.id, idOf(request.params));
    const images = (request.query as Record<string, string | undefined>).images === '1';
    const parts = messageParts(msg.raw);
    const clean = sanitizeMail(parts.html ?? '', images).html;
    reply.header('content-security-policy', frameCsp(images));
    // This route is meant to be framed by the message page (same origin), and by nothing else.
    reply.header('x-frame-options', 'SAMEORIGIN');
    return reply
      .type('text/html; charset=utf-8')
      .send(`<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Message body</title></head><body>${clean}</body></html>`);
  });

  app.get('/message/:id/attachment/:n', async (request, reply: FastifyReply) => {
    const s = signedIn(request)!;
    const msg = await mail.get(s.user.id, idOf(request.params));
    const n = Number((request.params as { n: string }).n);
    const found = messageParts(msg.raw).attachments.find((a) => a.n === n);
    if (!found) throw notFound(`No attachment ${n}`);
    return reply
      .header('content-disposition', disposition(found.filename))
      .header('x-content-type-options', 'nosniff')
      .type('application/octet-stream')
      .send(partBytes(msg.raw, found.part));
  });
}

/** Flag, move and delete a message. */
function messageActionRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { mail } = deps.services;

  app.post('/message/:id/flag', async (request, reply) => {
    const s = signedIn(request)!;
    const id = idOf(request.params);
    const f = form(request);
    const flag = f.flag === 'seen' ? '\\Seen' : f.flag === 'flagged' ? '\\Flagged' : undefined;
    if (!flag) throw notFound(`No flag ${f.flag ?? ''}`);
    await mail.setFlag(s.user.id, id, flag, f.on === '1');
    const msg = await mail.get(s.user.id, id);
    // Marking unread goes back to the list (staying would mark it read again).
    return seeOther(reply, flag === '\\Seen' ? `/mail/${encodeURIComponent(msg.mailbox)}` : `/message/${id}`);
  });

  app.post('/message/:id/move', async (request, reply) => {
    const s = signedIn(request)!;
    const id = idOf(request.params);
    const to = mailboxParam(String(form(request).to ?? ''));
    const from = (await mail.get(s.user.id, id)).mailbox;
    await mail.move(s.user.id, [id], to);
    return seeOther(reply, `/mail/${encodeURIComponent(from)}`);
  });

  app.post('/message/:id/delete', async (request, reply) => {
    const s = signedIn(request)!;
    const id = idOf(request.params);
    const from = (await mail.get(s.user.id, id)).mailbox;
    await mail.delete(s.user.id, id);
    return seeOther(reply, `/mail/${encodeURIComponent(from)}`);
  });
}
