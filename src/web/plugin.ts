/**
 * The web app (docs/web.md): server-rendered HTML on the HTTPS listener of
 * the API, at `/`. Registered in its own fastify context, so its body parser,
 * hooks and error page apply to its routes only.
 *
 * Every request: security headers (a strict CSP: scripts and styles from
 * this origin only, no inline code, no framing) -> the session from its
 * cookie -> signed out: GET goes to /sign-in, anything else 403 -> POST:
 * the CSRF token of the session (or of the sign-in form) must be in the
 * form, else 403 -> the route, calling the services as the API does.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../core/errors.ts';
import type { Services } from '../services/index.ts';
import { loadAssets } from './assets.ts';
import { compressText } from './compress.ts';
import { form, loadSession, parseCookies, sameToken, sendHtml, SIGNIN_COOKIE, signedIn, type ClientSettings, type WebDeps } from './context.ts';
import { html } from './html.ts';
import { page, type PageAssets } from './layout.ts';
import { authRoutes } from './routes-auth.ts';
import { contactsImportRoutes } from './routes-contacts-import.ts';
import { contactsRoutes } from './routes-contacts.ts';
import { composeRoutes } from './routes-compose.ts';
import { mailRoutes } from './routes-mail.ts';
import { messageRoutes } from './routes-message.ts';
import { screenerRoutes } from './routes-screener.ts';
import { expectedRoutes } from './routes-expected.ts';
import { sentRoutes } from './routes-sent.ts';
import { settingsRoutes } from './routes-settings.ts';

export const CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";
/** Forms are small: a name, a sender, a password. */
const FORM_LIMIT = 16 * 1024;

const STATUS: Readonly<Record<DomainError['kind'], number>> = {
  'not-found': 404,
  conflict: 409,
  invalid: 400,
  forbidden: 403,
  unauthorized: 401,
  throttled: 429,
};

/** Routes reachable without a session (`METHOD url`); the static files are added at registration. */
const PUBLIC_ROUTES = new Set(['GET /', 'GET /sign-in', 'POST /sign-in', 'GET /favicon.ico']);

function errorPage(assets: PageAssets, reply: FastifyReply, status: number, title: string, text: string, request: FastifyRequest): FastifyReply {
  const s = signedIn(request);
  return sendHtml(
    reply,
    page({
      title,
      section: 'error',
      assets,
      who: s ? { address: s.user.address, csrf: s.session.csrfSecret } : undefined,
      body: html`<h1>${title}</h1><p class="error" role="alert">${text}</p><p><a href="${s ? '/screener' : '/sign-in'}">Back</a></p>`,
    }),
    status,
  );
}

export function registerWeb(app: FastifyInstance, options: { services: Services; clients?: ClientSettings }): void {
  const loaded = loadAssets();
  const deps: WebDeps = { services: options.services, assets: { htmxPath: loaded.htmx.path, cssPath: loaded.css.path }, ...(options.clients ? { clients: options.clients } : {}) };

  app.register(async (web) => {
    const assets = Object.values(loaded);
    const publicRoutes = new Set([...PUBLIC_ROUTES, ...assets.map((a) => `GET ${a.path}`)]);
    for (const asset of assets) {
      web.get(asset.path, async (_request, reply) =>
        reply.header('cache-control', 'public, max-age=31536000, immutable').type(asset.type).send(asset.body),
      );
    }

    compressText(web);
    // Browsers ask for it on every site; no icon, and no 404 in their console.
    web.get('/favicon.ico', async (_request, reply) => reply.header('cache-control', 'public, max-age=86400').code(204).send());

    web.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_request, body, done) => {
      const fields: Record<string, string> = Object.create(null);
      // Repeated fields: the first wins (no field of ours is a list).
      for (const [k, v] of new URLSearchParams(String(body))) if (!(k in fields)) fields[k] = v;
      done(null, fields);
    });

    web.addHook('onRequest', async (_request, reply) => {
      reply.header('content-security-policy', CSP);
      reply.header('x-content-type-options', 'nosniff');
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
      reply.header('cache-control', 'no-store');
    });

    web.addHook('preHandler', async (request, reply) => {
      const signed = await loadSession(deps, request);
      const method = request.method === 'HEAD' ? 'GET' : request.method;
      const route = request.routeOptions.url;
      const isPublic = publicRoutes.has(`${method} ${route}`);
      if (method === 'GET') {
        if (signed || isPublic) return;
        if (request.headers['hx-request'] === 'true') return reply.header('hx-redirect', '/sign-in').code(204).send();
        return reply.code(303).header('location', '/sign-in').send();
      }
      const token = form(request)._csrf;
      const signIn = route === '/sign-in';
      const expected = signIn ? parseCookies(request.headers.cookie).get(SIGNIN_COOKIE) : signed?.session.csrfSecret;
      if (!sameToken(token, expected)) {
        return errorPage(deps.assets, reply, 403, 'Forbidden', signed || signIn ? 'This form has expired or did not come from this site. Go back, reload the page and try again.' : 'You are signed out. Sign in again.', request);
      }
    });

    web.setErrorHandler(async (err, request, reply) => {
      if (err instanceof DomainError) return errorPage(deps.assets, reply, STATUS[err.kind], 'That did not work', err.text, request);
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 413) return errorPage(deps.assets, reply, 413, 'Too large', 'The form was larger than this server accepts.', request);
      if (status === 415) return errorPage(deps.assets, reply, 415, 'Unsupported', 'Forms must be sent as application/x-www-form-urlencoded.', request);
      if (status !== undefined && status >= 400 && status < 500) return errorPage(deps.assets, reply, status, 'Bad request', 'The request could not be read.', request);
      request.log.error({ err }, 'web: unexpected error');
      return errorPage(deps.assets, reply, 500, 'Something went wrong', 'The server failed to handle this request; nothing was changed unless the page says so.', request);
    });

    authRoutes(web, deps);
    screenerRoutes(web, deps);
    settingsRoutes(web, deps);
    mailRoutes(web, deps);
    messageRoutes(web, deps);
    sentRoutes(web, deps);
    contactsRoutes(web, deps);
    expectedRoutes(web, deps);
    contactsImportRoutes(web, deps);
    composeRoutes(web, deps);
  });
}
