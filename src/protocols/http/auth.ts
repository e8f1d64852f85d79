/**
 * Authentication of API requests: `Authorization: Bearer <token>` (tokens
 * from POST /api/session) or HTTP Basic with the address and the account
 * password or an app password (handy for scripts and curl). Both checks live
 * in the accounts service; this module only parses the header and remembers
 * who the request is for.
 *
 * Every route under /api/ needs authentication unless it is listed as public
 * (login, the OpenAPI document). The check runs in an onRequest hook, before
 * the body is read, so an anonymous client cannot make us parse a body.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ReplyError, unauthorized } from '../../core/errors.ts';
import type { User } from '../../core/types.ts';
import type { Principal } from '../../services/accounts.ts';
import type { Services } from '../../services/index.ts';

export interface Auth {
  user: User;
  /** The bearer token, when the request used one (DELETE /api/session revokes it). */
  token?: string;
  /** Set when an app password (or a session opened with one) made the request: its scope limits the routes. */
  appPassword: Principal['appPassword'];
}

type Credentials = { scheme: 'bearer'; token: string } | { scheme: 'basic'; address: string; password: string };

/** Parses an Authorization header; undefined when it is absent or neither scheme in a usable form. */
export function parseAuthorization(header: string | undefined): Credentials | undefined {
  if (!header) return undefined;
  const m = /^(\S+)[ \t]+(\S+)[ \t]*$/.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  const value = m[2]!;
  if (scheme === 'bearer') return { scheme, token: value };
  if (scheme !== 'basic') return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
  // RFC 7617: user-id and password in UTF-8, split at the first colon (a password may contain colons).
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { scheme, address: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

// A WeakMap rather than a fastify request decorator: no module augmentation of
// fastify's types leaks into the rest of the project, and the entry goes away
// with the request.
const authOf = new WeakMap<FastifyRequest, Auth>();

/** The authenticated user of a request on a protected route. */
export function requireAuth(request: FastifyRequest): Auth {
  const auth = authOf.get(request);
  // Unreachable for protected routes (the hook ran); guards against a public route asking.
  if (!auth) throw unauthorized('Authentication required');
  return auth;
}

export async function authenticate(services: Services, header: string | undefined, client: string): Promise<Auth> {
  const creds = parseAuthorization(header);
  if (!creds) throw unauthorized('Authentication required: use a Bearer token from POST /api/session or HTTP Basic');
  if (creds.scheme === 'bearer') return { ...(await services.accounts.principalForToken(creds.token)), token: creds.token };
  return await services.accounts.authenticate(creds.address, creds.password, client);
}

/**
 * What an app password may do on the API (docs/reliability.md, "The
 * app-password model"): scope `all` reaches the mail routes, never the
 * account's own (`account` routes: password, mode, app passwords); scope
 * `contacts` is for CardDAV only and reaches no API route. 403 otherwise.
 */
export function checkAccess(auth: Auth, account: boolean): void {
  const app = auth.appPassword;
  if (!app) return;
  if (app.scope !== 'all') {
    throw new ReplyError(550, '5.7.1', `The app password "${app.name}" is for contacts (CardDAV) only`, { status: 403 });
  }
  if (account) {
    throw new ReplyError(550, '5.7.1', 'App passwords cannot manage the account: log in with the account password', { status: 403 });
  }
}

/**
 * Requires authentication for every registered route under /api/ except the
 * public ones (`"METHOD /path"` keys with fastify's route syntax). Unknown
 * URLs fall through to the 404 handler unauthenticated: a 404 there reveals
 * nothing but the route table, which the OpenAPI document publishes anyway.
 */
export function installAuth(app: FastifyInstance, services: Services, publicRoutes: ReadonlySet<string>): void {
  app.addHook('onRequest', async (request) => {
    const url = request.routeOptions.url;
    if (url === undefined || !url.startsWith('/api/')) return;
    // HEAD routes are fastify's automatic twins of GET routes.
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    if (publicRoutes.has(`${method} ${url}`)) return;
    authOf.set(request, await authenticate(services, request.headers.authorization, request.ip));
  });
}
