/**
 * Mounts the CardDAV server on a fastify instance (the HTTPS listener of
 * protocols/http): `/.well-known/carddav` (RFC 6764 redirect, no login
 * needed) and everything under `/dav`.
 *
 * It lives in its own encapsulated fastify context, so its body parsers (any
 * content type, as raw bytes, up to `bodyLimit`: the handlers decide what
 * they accept), its authentication hook and its error handler (DAV:error
 * bodies, never the JSON API's problem documents or a stack trace) apply to
 * these routes only.
 *
 * Authentication is HTTP Basic on every request but OPTIONS, checked in
 * onRequest, before the body is read.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CardDavHooks, DavUser } from './hooks.ts';
import { ALLOW, DAV_HEADER, DAV_METHODS, handleDav } from './handler.ts';
import { davError, type DavResponse } from './response.ts';
import { card } from './xml.ts';
import { DAV_ROOT } from './paths.ts';

export interface CardDavOptions<U extends DavUser> {
  hooks: CardDavHooks<U>;
  /** Largest request body, in bytes; also the advertised CARDDAV:max-resource-size. */
  bodyLimit: number;
  /** Wall-clock budget of one REPORT; protocols/carddav/report.ts's default when absent. */
  reportBudgetMs?: number;
}

const EXTRA_METHODS = ['PROPFIND', 'PROPPATCH', 'MKCOL', 'REPORT', 'COPY', 'MOVE', 'LOCK', 'UNLOCK'];
export const BASIC_CHALLENGE = 'Basic realm="twoway", charset="UTF-8"';

/** user:password from a Basic Authorization header (RFC 7617; the password may contain colons). */
export function basicCredentials(header: string | undefined): { address: string; password: string } | undefined {
  const m = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { address: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function send(reply: FastifyReply, r: DavResponse, head: boolean): FastifyReply {
  reply.code(r.status).headers(r.headers);
  // No caches for anyone's address book.
  reply.header('cache-control', 'no-store');
  if (r.body === undefined || r.status === 204 || r.status === 304) return reply.send();
  if (head) return reply.header('content-length', String(Buffer.byteLength(r.body, 'utf8'))).send();
  return reply.send(r.body);
}

export function registerCardDav<U extends DavUser>(app: FastifyInstance, options: CardDavOptions<U>): void {
  for (const m of EXTRA_METHODS) if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
  const users = new WeakMap<FastifyRequest, U>();

  app.register(async (dav) => {
    dav.removeAllContentTypeParsers();
    dav.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_req, body, done) => done(null, body));

    dav.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
      const head = request.method === 'HEAD';
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413) {
        return send(reply, davError(413, card('max-resource-size'), `The body is larger than ${options.bodyLimit} bytes`), head);
      }
      if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
        return send(reply, davError(err.statusCode, '', 'Bad request'), head);
      }
      request.log.error({ err }, 'carddav request failed');
      return send(reply, davError(500, '', 'Internal error; please try again later'), head);
    });

    dav.addHook('onRequest', async (request, reply) => {
      if (request.method === 'OPTIONS' || request.url.startsWith('/.well-known/')) return;
      const creds = basicCredentials(request.headers.authorization);
      if (!creds) {
        return send(reply, davError(401, '', 'Log in with your address and password (or an app password)', { 'www-authenticate': BASIC_CHALLENGE }), false);
      }
      const r = await options.hooks.authenticate(creds.address, creds.password, request.ip);
      if (!r.ok) {
        const headers: Record<string, string> = r.status === 401 ? { 'www-authenticate': BASIC_CHALLENGE } : { 'retry-after': '900' };
        return send(reply, davError(r.status, '', r.message, headers), false);
      }
      users.set(request, r.user);
    });

    // RFC 6764 section 5: the well-known URI redirects to the context path, for every method.
    dav.route({
      method: DAV_METHODS,
      url: '/.well-known/carddav',
      exposeHeadRoute: false,
      handler: async (_request, reply) => reply.code(301).header('location', DAV_ROOT).header('cache-control', 'no-store').send(),
    });

    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      const user = users.get(request);
      const q = request.url.indexOf('?');
      const rawPath = q < 0 ? request.url : request.url.slice(0, q);
      if (!user) {
        // OPTIONS needs no login: it says only what the server supports.
        return send(reply, { status: 200, headers: { dav: DAV_HEADER, allow: ALLOW, 'content-length': '0' } }, false);
      }
      const r = await handleDav(
        {
          hooks: options.hooks,
          user,
          me: user.address.toLowerCase(),
          maxResourceSize: options.bodyLimit,
          ...(options.reportBudgetMs === undefined ? {} : { reportBudgetMs: options.reportBudgetMs }),
        },
        {
          method: request.method,
          rawPath,
          headers: Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v])),
          body: Buffer.isBuffer(request.body) ? request.body : undefined,
        },
      );
      return send(reply, r, request.method === 'HEAD');
    };
    dav.route({ method: DAV_METHODS, url: '/dav', exposeHeadRoute: false, handler });
    dav.route({ method: DAV_METHODS, url: '/dav/*', exposeHeadRoute: false, handler });
  });
}
