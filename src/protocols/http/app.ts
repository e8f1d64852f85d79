/**
 * The HTTP JSON API: one fastify instance built from the application
 * services. Wire code only: every route calls src/services, never the store.
 *
 * Order of a request: route lookup (unknown: 404 problem) -> onRequest
 * authentication for /api/* (401 problem) -> body parsing (413/415/400
 * problems) -> zod validation of path, query and body (400 problem naming the
 * fields) -> service call -> JSON. Every error leaves through problem.ts.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Services } from '../../services/index.ts';
import type { CardDavHooks, DavUser } from '../carddav/hooks.ts';
import { registerCardDav } from '../carddav/plugin.ts';
import { installAuth } from './auth.ts';
import { installExtensionCors } from './extension-cors.ts';
import { openApiRoute } from './openapi.ts';
import { frameworkErrorHandler, installProblemHandlers } from './problem.ts';
import { VCARD_TYPES, type ApiRoute } from './route.ts';
import { accountRoutes } from './routes-account.ts';
import { contactRoutes } from './routes-contacts.ts';
import { mailRoutes } from './routes-mail.ts';
import { queueRoutes } from './routes-queue.ts';
import { requestRoutes } from './routes-requests.ts';
import { sentRoutes } from './routes-sent.ts';

/** Largest request body: plenty for JSON and vCards (photos included), small enough to refuse floods. */
export const BODY_LIMIT = 1024 * 1024;

/**
 * Never log credentials. Fastify's own request serializer logs no headers,
 * but a logger handed in may have a serializer that does; the paths cover
 * that and any object we might log with a password or token in it.
 */
export const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'password',
  'token',
  '*.password',
  '*.token',
];

export interface HttpAppDeps<U extends DavUser = DavUser> {
  services: Services;
  /** The CardDAV hooks (endpoints/carddav/hooks.ts); without them no /dav/ routes (API-only tests). */
  carddav?: CardDavHooks<U>;
  /** A pino (or pino-compatible) logger; `false` for none; default: pino at info level to stdout. */
  log?: FastifyBaseLogger | false;
  /**
   * Registers more routes on the same instance (CardDAV, the web UI, test
   * fixtures). Called before the API's own routes, so hooks it adds (e.g.
   * onRoute) see those too. Routes it adds under /api/ require
   * authentication like the API's own.
   */
  extraRoutes?: (app: FastifyInstance) => void;
  /** Serve HTTPS with this PEM pair (the default in production: Basic auth and tokens cross this listener). */
  tls?: { key: string; cert: string };
}

export function apiRoutes(services: Services): ApiRoute[] {
  const routes: ApiRoute[] = [
    ...accountRoutes(services),
    ...contactRoutes(services),
    ...requestRoutes(services),
    ...mailRoutes(services),
    ...queueRoutes(services),
    ...sentRoutes(services),
  ];
  routes.push(openApiRoute(() => routes));
  return routes;
}

function makeLogger(log: HttpAppDeps<DavUser>['log']): FastifyBaseLogger | undefined {
  if (log === false) return undefined;
  if (log === undefined) return pino({ level: 'info', redact: { paths: LOG_REDACT, censor: '[redacted]' } });
  // pino's child accepts redaction options; a logger that ignores them still gets no headers from fastify.
  return log.child({ component: 'http-api' }, { redact: { paths: LOG_REDACT, censor: '[redacted]' } });
}

export async function createHttpApp<U extends DavUser>(deps: HttpAppDeps<U>): Promise<FastifyInstance> {
  const logger = makeLogger(deps.log);
  // Fastify's type depends on the server kind; the API only needs the common surface.
  const app = Fastify({
    ...(deps.tls ? { https: { key: deps.tls.key, cert: deps.tls.cert } } : {}),
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    bodyLimit: BODY_LIMIT,
    // Senders in paths (DELETE /api/contacts/:sender) may be up to 254 octets, percent-encoded three times as long.
    routerOptions: { maxParamLength: 1024 },
    frameworkErrors: frameworkErrorHandler(BODY_LIMIT),
    // Prototype poisoning in JSON bodies is refused (400), never silently stripped.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
  });

  const routes = apiRoutes(deps.services);

  installProblemHandlers(app, BODY_LIMIT);
  // Before authentication: a CORS preflight of the browser extension carries no credentials.
  installExtensionCors(app);
  installAuth(app, deps.services, new Set(routes.filter((r) => !r.auth).map((r) => `${r.method} ${r.url}`)));

  // Bodies: JSON (fastify's parser, kept) and vCards as text. No text/plain:
  // a body this API cannot use is a 415, not a string that fails validation later.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser([...VCARD_TYPES], { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.addHook('onSend', async (request, reply) => {
    if (!request.url.startsWith('/api/')) return;
    // Answers carry tokens, app passwords and mail: no caches, and no sniffing raw messages into HTML.
    reply.header('Cache-Control', 'no-store');
    reply.header('X-Content-Type-Options', 'nosniff');
  });

  // CardDAV (/.well-known/carddav, /dav/...): its own context, parsers and DAV:error bodies.
  if (deps.carddav) registerCardDav(app, { hooks: deps.carddav, bodyLimit: BODY_LIMIT });

  deps.extraRoutes?.(app);

  for (const route of routes) {
    app.route({ method: route.method, url: route.url, handler: (request, reply) => route.run(request, reply) });
  }
  await app.ready();
  return app;
}

export interface HttpListener {
  /** The bound port (the real one when 0 was asked for). */
  port: number;
  close(): Promise<void>;
}

export async function startHttpListener(options: { host: string; port: number; app: FastifyInstance }): Promise<HttpListener> {
  const { app } = options;
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return { port, close: () => app.close() };
}
