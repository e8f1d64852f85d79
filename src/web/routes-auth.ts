/** Sign-in, sign-out and the list of one's sessions. */
import type { FastifyInstance } from 'fastify';
import { DomainError } from '../core/errors.ts';
import { html } from './html.ts';
import { page } from './layout.ts';
import { form, newToken, parseCookies, seeOther, sendHtml, SESSION_COOKIE, setCookie, SIGNIN_COOKIE, signedIn, type WebDeps } from './context.ts';
import type { Principal } from '../services/accounts.ts';
import { WEB_SESSION_TTL_MS } from '../services/web-sessions.ts';

function signInPage(deps: WebDeps, csrf: string, o: { error?: string; address?: string } = {}) {
  return page({
    title: 'Sign in',
    section: 'sign-in',
    assets: deps.assets,
    body: html`<div class="signin">
<h1>Sign in</h1>
${o.error ? html`<p class="error" role="alert">${o.error}</p>` : ''}
<form method="post" action="/sign-in">
<input type="hidden" name="_csrf" value="${csrf}">
<label for="address">Address</label>
<input id="address" name="address" type="email" autocomplete="username" required value="${o.address ?? ''}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<p class="muted">Your account password. App passwords are for mail and contacts apps, not for this page.</p>
<p><button class="primary" type="submit">Sign in</button></p>
</form>
</div>`,
  });
}

export function authRoutes(app: FastifyInstance, deps: WebDeps): void {
  signInRoutes(app, deps);
  sessionRoutes(app, deps);
}

/** The start page, sign in and sign out. */
function signInRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { services } = deps;

  app.get('/', async (request, reply) => seeOther(reply, signedIn(request) ? '/screener' : '/sign-in'));

  app.get('/sign-in', async (request, reply) => {
    if (signedIn(request)) return seeOther(reply, '/screener');
    const csrf = newToken();
    setCookie(reply, SIGNIN_COOKIE, csrf, 3600);
    return sendHtml(reply, signInPage(deps, csrf));
  });

  // Public, but guarded by its own double-submit token (checked in plugin.ts).
  app.post('/sign-in', async (request, reply) => {
    const f = form(request);
    const address = String(f.address ?? '').slice(0, 320);
    const password = String(f.password ?? '');
    const retry = (status: number, error: string) => {
      const csrf = newToken();
      setCookie(reply, SIGNIN_COOKIE, csrf, 3600);
      return sendHtml(reply, signInPage(deps, csrf, { error, address }), status);
    };
    let principal: Principal;
    try {
      // With the client's address: failures count in the per-client throttle, as for SMTP AUTH and the API.
      principal = await services.accounts.authenticate(address, password, request.ip);
    } catch (err) {
      if (err instanceof DomainError && err.kind === 'throttled') return retry(429, err.text);
      if (err instanceof DomainError && err.kind === 'unauthorized') return retry(401, 'Wrong address or password.');
      throw err;
    }
    // App passwords are for clients with a narrower scope; the web app manages the account itself.
    if (principal.appPassword !== null) return retry(401, 'Wrong address or password.');
    // A new id at every sign-in (no fixation): any session the browser had is ended first.
    const old = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
    if (old) {
      const prev = await services.webSessions.resume(old);
      if (prev) await services.webSessions.end(prev.user, prev.session.id);
    }
    const { cookie } = await services.webSessions.open(principal.user, { userAgent: String(request.headers['user-agent'] ?? ''), client: request.ip });
    setCookie(reply, SESSION_COOKIE, cookie, Math.floor(WEB_SESSION_TTL_MS / 1000));
    setCookie(reply, SIGNIN_COOKIE, '', 0);
    return seeOther(reply, '/screener');
  });

  app.post('/sign-out', async (request, reply) => {
    const s = signedIn(request)!;
    await services.webSessions.end(s.user, s.session.id);
    setCookie(reply, SESSION_COOKIE, '', 0);
    return seeOther(reply, '/sign-in');
  });
}

/** The user's sessions: the list, and ending one or all others. */
function sessionRoutes(app: FastifyInstance, deps: WebDeps): void {
  const { services } = deps;

  app.get('/sessions', async (request, reply) => {
    const s = signedIn(request)!;
    const sessions = await services.webSessions.list(s.user);
    const q = request.query as Record<string, string | undefined>;
    const rows = sessions.map(
      (x) => html`<tr>
<td>${x.userAgent || 'unknown browser'}${x.id === s.session.id ? html` <strong>(this session)</strong>` : ''}</td>
<td>${x.client}</td>
<td><time datetime="${x.createdAt.toISOString()}">${x.createdAt.toISOString().slice(0, 16).replace('T', ' ')} UTC</time></td>
<td><time datetime="${x.lastSeenAt.toISOString()}">${x.lastSeenAt.toISOString().slice(0, 16).replace('T', ' ')} UTC</time></td>
<td>${
        x.id === s.session.id
          ? html`<span class="muted">use Sign out</span>`
          : html`<form method="post" action="/sessions/end"><input type="hidden" name="_csrf" value="${s.session.csrfSecret}"><input type="hidden" name="id" value="${x.id}"><button type="submit" class="danger" aria-label="End session ${x.id}">End</button></form>`
      }</td>
</tr>`,
    );
    return sendHtml(
      reply,
      page({
        title: 'Sessions',
        section: 'sessions',
        assets: deps.assets,
        who: { address: s.user.address, csrf: s.session.csrfSecret },
        body: html`<h1>Your sessions</h1>
${q.done === 'ended' ? html`<p class="notice" role="status">The session was ended.</p>` : ''}
<p class="muted">Browsers signed in to this account. Changing the password ends them all.</p>
<table>
<thead><tr><th scope="col">Browser</th><th scope="col">From</th><th scope="col">Signed in</th><th scope="col">Last seen</th><th scope="col"><span class="muted">Action</span></th></tr></thead>
<tbody>${rows}</tbody>
</table>`,
      }),
    );
  });

  app.post('/sessions/end', async (request, reply) => {
    const s = signedIn(request)!;
    const id = Number(form(request).id);
    if (!Number.isSafeInteger(id) || !(await services.webSessions.end(s.user, id))) throw new DomainError('not-found', 'No such session');
    return seeOther(reply, '/sessions?done=ended');
  });
}
