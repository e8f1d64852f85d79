/** Settings: the mode, reveal declined, and app passwords (create, list with last use, revoke). */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { invalid, notFound } from '../core/errors.ts';
import { APP_PASSWORD_SCOPES, MODES, type AppPasswordScope, type Mode } from '../core/types.ts';
import { parseMode } from '../services/accounts.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { type ClientSettings, form, seeOther, sendHtml, signedIn, type Signed, type WebDeps } from './context.ts';

const MODE_TEXT: Readonly<Record<Mode, string>> = {
  open: 'Mail from strangers reaches your inbox, marked as a first contact.',
  screen: 'Mail from strangers waits in the Screener until you approve or deny the sender.',
  strict: 'Mail from strangers is refused, with a reply telling them how to reach you.',
};

const SCOPE_TEXT: Readonly<Record<AppPasswordScope, string>> = {
  all: 'mail and contacts',
  contacts: 'contacts (CardDAV) only',
};

const NOTICES: Readonly<Record<string, string>> = {
  mode: 'The mode was saved.',
  reveal: 'Saved.',
  revoked: 'The app password was revoked.',
};

const when = (d: Date | null) =>
  d ? html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>` : html`<span class="muted">never</span>`;

/**
 * The settings a mail or contacts app asks for. CardDAV is on this very
 * listener, so its URL is the origin the browser used (the Host header,
 * escaped like any text); Thunderbird needs only the address (autoconfig).
 */
function clientSection(clients: ClientSettings, address: string, origin: string): SafeHtml {
  const autoconfig = `/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=${encodeURIComponent(address)}`;
  const { tlsPort = null, port = null } = clients.imap ?? {};
  const imap = [tlsPort !== null ? html`port <code>${tlsPort}</code> with TLS` : null, port !== null ? html`port <code>${port}</code> with STARTTLS` : null].filter((x) => x !== null);
  return html`<h2 id="clients-heading">Your mail and contacts apps</h2>
<p class="muted">Sign in with your address and an app password (create one below). Thunderbird finds these settings from your address alone (<a href="${autoconfig}">autoconfig</a>).</p>
<dl class="clients" aria-labelledby="clients-heading">
<dt>User name</dt><dd><code>${address}</code></dd>
<dt>IMAP (incoming)</dt><dd>${imap.length > 0 ? html`<code>${clients.hostname}</code>, ${imap.map((x, i) => html`${i > 0 ? ', or ' : ''}${x}`)}` : 'not offered by this server'}</dd>
<dt>SMTP (outgoing)</dt><dd>${clients.submission ? html`<code>${clients.hostname}</code>, port <code>${clients.submission.port}</code> with STARTTLS, password authentication` : 'not offered by this server'}</dd>
<dt>CardDAV (contacts)</dt><dd><code>${origin}/.well-known/carddav</code> (your address book: <code>${origin}/dav/addressbooks/${address}/default/</code>)</dd>
</dl>`;
}

async function settingsPage(deps: WebDeps, s: Signed, extra: { notice?: string | undefined; created?: { name: string; password: string }; origin: string }): Promise<SafeHtml> {
  const user = await deps.services.accounts.get(s.user.address);
  const csrf = s.session.csrfSecret;
  const token = html`<input type="hidden" name="_csrf" value="${csrf}">`;
  const apps = await deps.services.accounts.listAppPasswords(user);
  const modes = MODES.map(
    (m) => html`<label class="choice"><input type="radio" name="mode" value="${m}" ${user.mode === m ? html`checked` : ''}> <span><strong>${m}</strong>: ${MODE_TEXT[m]}</span></label>`,
  );
  const rows = apps.map(
    (a) => html`<tr><td>${a.name}</td><td>${SCOPE_TEXT[a.scope]}</td><td>${when(a.createdAt)}</td><td>${when(a.lastUsedAt)}</td>
<td><form method="post" action="/settings/app-passwords/revoke">${token}<input type="hidden" name="id" value="${a.id}"><button type="submit" class="danger" aria-label="Revoke ${a.name}">Revoke</button></form></td></tr>`,
  );
  return page({
    title: 'Settings',
    section: 'settings',
    assets: deps.assets,
    who: { address: user.address, csrf },
    body: html`<h1>Settings</h1>
<div role="status">${extra.notice ? html`<p class="notice">${extra.notice}</p>` : ''}</div>
${
  extra.created
    ? html`<div class="notice" role="alert"><p>The app password <strong>${extra.created.name}</strong> was created. Copy it now: it is not shown again.</p><p class="secret" id="new-app-password">${extra.created.password}</p></div>`
    : ''
}
<form method="post" action="/settings/mode">${token}
<fieldset><legend>Mode: who reaches your inbox</legend>${modes}</fieldset>
<button type="submit" class="primary">Save mode</button>
</form>
<h2>Denied Two-Way Mail senders</h2>
<form method="post" action="/settings/reveal-declined">${token}
<label class="choice"><input type="checkbox" name="reveal" value="on" ${user.revealDeclined ? html`checked` : ''}> <span>Tell a Two-Way Mail sender's server when I deny them (otherwise they only see "pending" until it expires).</span></label>
<button type="submit">Save</button>
</form>
${deps.clients ? clientSection(deps.clients, user.address, extra.origin) : ''}
<h2 id="apps-heading">App passwords</h2>
<p class="muted">For mail and contacts apps. They cannot sign in here. Revoking one also ends what was signed in with it.</p>
${
  apps.length > 0
    ? html`<table aria-labelledby="apps-heading"><thead><tr><th scope="col">Name</th><th scope="col">Access</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"><span class="muted">Action</span></th></tr></thead><tbody>${rows}</tbody></table>`
    : html`<p>No app passwords yet.</p>`
}
<h2>New app password</h2>
<form method="post" action="/settings/app-passwords">${token}
<label for="app-name">Name</label>
<input id="app-name" name="name" type="text" required maxlength="64" pattern="[A-Za-z0-9_ .\\-]{1,64}" aria-describedby="app-name-help">
<p class="muted" id="app-name-help">1 to 64 letters, digits, spaces, dots or dashes, e.g. "Phone".</p>
<label for="app-scope">Access</label>
<select id="app-scope" name="scope">${APP_PASSWORD_SCOPES.map((sc) => html`<option value="${sc}">${SCOPE_TEXT[sc]}</option>`)}</select>
<p><button type="submit" class="primary">Create app password</button></p>
</form>`,
  });
}

export function settingsRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { services } = deps;

  app.get('/settings', async (request, reply) => {
    const s = signedIn(request)!;
    const done = (request.query as Record<string, string | undefined>).done;
    return sendHtml(reply, await settingsPage(deps, s, { notice: done ? NOTICES[done] : undefined, origin: `${request.protocol}://${request.host}` }));
  });

  app.post('/settings/mode', async (request, reply) => {
    const s = signedIn(request)!;
    await services.accounts.setMode(s.user.address, parseMode(String(form(request).mode ?? '')));
    return seeOther(reply, '/settings?done=mode');
  });

  app.post('/settings/reveal-declined', async (request, reply) => {
    const s = signedIn(request)!;
    await services.accounts.setRevealDeclined(s.user.address, form(request).reveal === 'on');
    return seeOther(reply, '/settings?done=reveal');
  });

  // The one answer that is not a redirect: the new secret is shown once and kept nowhere to show again.
  app.post('/settings/app-passwords', async (request, reply: FastifyReply) => {
    const s = signedIn(request)!;
    const f = form(request);
    const scope = String(f.scope ?? 'all');
    if (!(APP_PASSWORD_SCOPES as readonly string[]).includes(scope)) throw invalid(`Unknown access "${scope}"`);
    const created = await services.accounts.addAppPassword(s.user, String(f.name ?? ''), scope as AppPasswordScope);
    return sendHtml(reply.code(201), await settingsPage(deps, s, { created: { name: created.name, password: created.password }, origin: `${request.protocol}://${request.host}` }), 201);
  });

  app.post('/settings/app-passwords/revoke', async (request, reply) => {
    const s = signedIn(request)!;
    const id = String(form(request).id ?? '');
    if (!/^[1-9]\d{0,15}$/.test(id)) throw notFound('No such app password');
    await services.accounts.revokeAppPassword(s.user, Number(id));
    return seeOther(reply, '/settings?done=revoked');
  });
}
