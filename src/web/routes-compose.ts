/**
 * Compose, reply and forward. The form posts to `/compose`, which hands the
 * draft to services/compose.ts `sendDraft`: the outbound service's `submit`,
 * the path of SMTP submission and `POST /api/send`, so there is no second
 * way out. Sent: 303 to /sent. Refused (no recipient, a bad address, text
 * over the limit, anything the outbound service refuses): the form again
 * with every field as typed and the problems named, status 400 or 413, and
 * nothing sent.
 *
 * The Two-Way Mail introduction (the TWM-Intro field; a stranger's server
 * shows it before accepting the message) is offered when a recipient is not
 * in the user's contacts. Without JavaScript the page decides from the
 * recipients it was opened with (none yet: shown); with htmx, editing To, Cc
 * or Bcc asks `/compose/intro` for the field again.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { notFound } from '../core/errors.ts';
import type { User } from '../core/types.ts';
import { COMPOSE_LIMITS, DraftError, newRecipients, sendDraft, splitAddressField, type Draft, type DraftProblem } from '../services/compose.ts';
import { authorText, forwardPrefill, replyPrefill } from './compose-prefill.ts';
import { form, seeOther, sendHtml, signedIn, type Signed, type WebDeps } from './context.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';

/** The urlencoded form may be far larger than the text it carries (%XX per UTF-8 octet); above this, the plain 413 page. */
const COMPOSE_BODY_LIMIT = 2 * 1024 * 1024;

function idOrNull(raw: string | undefined): number | null {
  if (raw === undefined || raw === '') return null;
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw notFound(`No message ${raw}`);
  return Number(raw);
}

/** The recipients of the three address fields that the address book does not know yet. */
async function strangers(deps: WebDeps, user: User, fields: { to: string; cc: string; bcc: string }): Promise<{ any: boolean; list: string[] }> {
  const addresses: string[] = [];
  for (const f of [fields.to, fields.cc, fields.bcc]) {
    for (const m of splitAddressField(f.slice(0, COMPOSE_LIMITS.fieldChars))) {
      try {
        addresses.push(deps.services.outbound ? deps.services.outbound.checkRecipient(m.address) : m.address);
      } catch {
        // Not an address yet (still being typed): the send will say so.
      }
    }
  }
  const unique = [...new Set(addresses)].slice(0, COMPOSE_LIMITS.recipients);
  return { any: unique.length > 0, list: await newRecipients(deps.services.contacts, user, unique) };
}

/**
 * The introduction's place in the form: the field when some recipient is
 * new (or none is written yet), else the typed text kept in a hidden input
 * (it reappears if a new recipient is added; the send drops it when all are
 * contacts). The textarea is `hx-preserve`: an answer that left while the
 * user went on typing there must not put back the older text it was asked
 * with; only the text around it follows the recipients. The hidden input has
 * an id of its own, so that it is not taken for the textarea.
 */
function introField(who: { any: boolean; list: string[] }, value: string, problem: string | undefined): SafeHtml {
  if (who.any && who.list.length === 0) return html`<div id="intro"><input type="hidden" id="intro-kept" name="intro" value="${value}"></div>`;
  const names = who.list.slice(0, 5).join(', ') + (who.list.length > 5 ? ` and ${who.list.length - 5} more` : '');
  const lead = who.any
    ? html`<strong>${names}</strong> ${who.list.length === 1 ? 'is' : 'are'} not in your contacts yet.`
    : html`Writing to someone who is not in your contacts yet?`;
  return html`<div id="intro"><fieldset><legend>Introduction for new contacts</legend>
<p class="muted" id="intro-help">${lead} If their server speaks Two-Way Mail, they see this short text, and your address, before they accept your message; the message itself waits here until they do. Plain text, at most ${COMPOSE_LIMITS.introChars} characters. Contacts never see it.</p>
${problem ? html`<p class="error" id="intro-error">${problem}</p>` : ''}
<label for="intro-text">Introduction (optional)</label>
<textarea id="intro-text" name="intro" rows="3" maxlength="${COMPOSE_LIMITS.introChars}" aria-describedby="intro-help${problem ? ' intro-error' : ''}" hx-preserve>${value}</textarea>
</fieldset></div>`;
}

interface FormState {
  mode: 'new' | 'reply' | 'forward';
  draft: Draft;
  /** For a forward: the original, as the page describes it. */
  attached?: { subject: string; author: string; size: number };
  problems: DraftProblem[];
}

async function composePage(deps: WebDeps, s: Signed, state: FormState): Promise<SafeHtml> {
  const { draft, problems } = state;
  const problemOf = (field: DraftProblem['field']) => problems.filter((p) => p.field === field).map((p) => p.text).join(' ') || undefined;
  const token = html`<input type="hidden" name="_csrf" value="${s.session.csrfSecret}">`;
  const title = state.mode === 'reply' ? 'Reply' : state.mode === 'forward' ? 'Forward' : 'New message';
  // htmx: the introduction field follows the recipients (only the three address fields and the intro travel).
  const follow = html`hx-get="/compose/intro" hx-trigger="input changed delay:600ms, change" hx-target="#intro" hx-swap="outerHTML" hx-include="#to, #cc, #bcc, [name=intro]"`;
  const address = (field: 'to' | 'cc' | 'bcc', label: string) => {
    const problem = problemOf(field);
    return html`<label for="${field}">${label}</label>
${problem ? html`<p class="error" id="${field}-error">${problem}</p>` : ''}
<input type="text" id="${field}" name="${field}" value="${draft[field]}" autocomplete="off" spellcheck="false" aria-describedby="address-help${problem ? ` ${field}-error` : ''}" ${problem ? html`aria-invalid="true"` : ''} ${follow}>`;
  };
  const textProblem = problemOf('text');
  const subjectProblem = problemOf('subject');
  const formProblem = problemOf('form');
  return page({
    title,
    section: 'compose',
    assets: deps.assets,
    who: { address: s.user.address, csrf: s.session.csrfSecret },
    body: html`<h1>${title}</h1>
${problems.length > 0 ? html`<div class="error" role="alert"><p><strong>Nothing was sent.</strong></p><ul>${problems.map((p) => html`<li>${p.text}</li>`)}</ul></div>` : ''}
<form method="post" action="/compose" class="compose">
${token}
${draft.replyTo !== null ? html`<input type="hidden" name="reply" value="${draft.replyTo}">` : ''}
${draft.forward !== null ? html`<input type="hidden" name="forward" value="${draft.forward}">` : ''}
<p class="muted">From <strong>${s.user.address}</strong></p>
<p class="muted" id="address-help">Addresses separated by commas, as <code>ann@example.org</code> or <code>Ann Lee &lt;ann@example.org&gt;</code>.</p>
${address('to', 'To')}
${address('cc', 'Cc')}
${address('bcc', 'Bcc')}
<label for="subject">Subject</label>
${subjectProblem ? html`<p class="error" id="subject-error">${subjectProblem}</p>` : ''}
<input type="text" id="subject" name="subject" value="${draft.subject}" maxlength="${COMPOSE_LIMITS.subjectChars}" ${subjectProblem ? html`aria-invalid="true" aria-describedby="subject-error"` : ''}>
${introField(await strangers(deps, s.user, draft), draft.intro, problemOf('intro'))}
<label for="text">Message</label>
${textProblem ? html`<p class="error" id="text-error">${textProblem}</p>` : ''}
<textarea id="text" name="text" rows="16" ${textProblem ? html`aria-invalid="true" aria-describedby="text-error"` : ''}>${draft.text}</textarea>
${state.attached ? html`<p class="notice">The original message is attached whole (with its attachments): <strong>${state.attached.subject}</strong> from ${state.attached.author}, ${Math.max(1, Math.ceil(state.attached.size / 1024))} KB.</p>` : ''}
${formProblem ? html`<p class="error" id="form-error">${formProblem}</p>` : ''}
<div class="actions"><button type="submit" class="primary">Send</button> <a class="button" href="${draft.replyTo !== null ? `/message/${draft.replyTo}` : draft.forward !== null ? `/message/${draft.forward}` : '/mail/INBOX'}">Cancel</a></div>
</form>`,
  });
}

const emptyDraft = (): Draft => ({ to: '', cc: '', bcc: '', subject: '', text: '', intro: '', replyTo: null, forward: null });

/** The original of a forward, as the page describes it (re-read from the store on every render). */
async function attachedOf(deps: WebDeps, s: Signed, id: number | null): Promise<FormState['attached']> {
  if (id === null) return undefined;
  const msg = await deps.services.mail.get(s.user.id, id);
  return { subject: msg.subject ?? '(no subject)', author: authorText(msg), size: msg.raw.length };
}

function draftOf(request: FastifyRequest): Draft {
  const f = form(request);
  const text = (name: string) => (typeof f[name] === 'string' ? f[name]! : '');
  return {
    to: text('to'),
    cc: text('cc'),
    bcc: text('bcc'),
    subject: text('subject'),
    text: text('text'),
    intro: text('intro'),
    replyTo: idOrNull(f.reply),
    forward: idOrNull(f.forward),
  };
}

export function composeRoutes(app: FastifyInstance, deps: WebDeps): void {
  app.get('/compose', async (request, reply) => {
    const s = signedIn(request)!;
    const q = request.query as Record<string, string | undefined>;
    const replyTo = idOrNull(q.reply);
    const forward = replyTo === null ? idOrNull(q.forward) : null;
    const draft = emptyDraft();
    let mode: FormState['mode'] = 'new';
    if (replyTo !== null) {
      Object.assign(draft, replyPrefill(s.user, await deps.services.mail.get(s.user.id, replyTo), q.all === '1'), { replyTo });
      mode = 'reply';
    } else if (forward !== null) {
      Object.assign(draft, forwardPrefill(await deps.services.mail.get(s.user.id, forward)), { forward });
      mode = 'forward';
    } else if (typeof q.to === 'string') draft.to = q.to.slice(0, COMPOSE_LIMITS.fieldChars);
    const attached = await attachedOf(deps, s, forward);
    return sendHtml(reply, await composePage(deps, s, { mode, draft, problems: [], ...(attached ? { attached } : {}) }));
  });

  // The introduction field alone, for htmx as the recipients change.
  app.get('/compose/intro', async (request, reply) => {
    const s = signedIn(request)!;
    const q = request.query as Record<string, string | undefined>;
    const field = (v: string | undefined) => (v ?? '').slice(0, COMPOSE_LIMITS.fieldChars);
    const who = await strangers(deps, s.user, { to: field(q.to), cc: field(q.cc), bcc: field(q.bcc) });
    return sendHtml(reply, introField(who, (q.intro ?? '').slice(0, COMPOSE_LIMITS.introChars * 2), undefined));
  });

  app.post('/compose', { bodyLimit: COMPOSE_BODY_LIMIT }, async (request, reply) => {
    const s = signedIn(request)!;
    const draft = draftOf(request);
    try {
      await sendDraft(deps.services, s.user, draft);
    } catch (err) {
      if (!(err instanceof DraftError)) throw err;
      const attached = await attachedOf(deps, s, draft.forward);
      const mode = draft.replyTo !== null ? 'reply' : draft.forward !== null ? 'forward' : 'new';
      return sendHtml(reply, await composePage(deps, s, { mode, draft, problems: err.problems, ...(attached ? { attached } : {}) }), err.status);
    }
    return seeOther(reply, '/sent');
  });
}
