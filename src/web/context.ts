/**
 * Per-request plumbing of the web app: cookies, the signed-in session, the
 * CSRF check and HTML replies. Cookies are `__Host-` prefixed: Secure, Path=/
 * and no Domain, so no sibling host can set or read them.
 */
import { timingSafeEqual, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { User } from '../core/types.ts';
import type { Services } from '../services/index.ts';
import type { WebSession } from '../store/types.ts';
import type { SafeHtml } from './html.ts';
import type { PageAssets } from './layout.ts';

export const SESSION_COOKIE = '__Host-twoway-session';
/** The sign-in form's CSRF token (double submit): there is no session yet to hold a secret. */
export const SIGNIN_COOKIE = '__Host-twoway-signin';

export interface WebDeps {
  services: Services;
  assets: PageAssets;
  /** What a mail or contacts app needs (the settings page shows it); absent: the page leaves it out. */
  clients?: ClientSettings;
}

/** The server's client-facing listeners, at the ports they bound (docs/imap.md, docs/carddav.md). */
export interface ClientSettings {
  hostname: string;
  /** A null port: that listener is not started. */
  imap: { port: number | null; tlsPort: number | null } | null;
  submission: { port: number } | null;
}

export interface Signed {
  session: WebSession;
  user: User;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

export function setCookie(reply: FastifyReply, name: string, value: string, maxAgeSeconds: number): void {
  const cookie = `${name}=${value}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; Secure; SameSite=Strict`;
  const prev = reply.getHeader('set-cookie');
  const list = prev === undefined ? [] : Array.isArray(prev) ? prev.map(String) : [String(prev)];
  reply.header('set-cookie', [...list, cookie]);
}

export const newToken = () => randomBytes(32).toString('base64url');

export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// A WeakMap rather than a fastify decorator, as in protocols/http/auth.ts.
const signedOf = new WeakMap<FastifyRequest, Signed>();

export async function loadSession(deps: WebDeps, request: FastifyRequest): Promise<Signed | undefined> {
  const cookie = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
  if (!cookie) return undefined;
  const found = await deps.services.webSessions.resume(cookie);
  if (found) signedOf.set(request, found);
  return found;
}

export const signedIn = (request: FastifyRequest): Signed | undefined => signedOf.get(request);

/** The form fields of a urlencoded body (the only body type the web app accepts). */
export function form(request: FastifyRequest): Record<string, string> {
  const body = request.body;
  return body && typeof body === 'object' ? (body as Record<string, string>) : {};
}

export function sendHtml(reply: FastifyReply, body: SafeHtml, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(body.toString());
}

/** After a form post: 303 to a page (htmx follows it and swaps what the form asked for). */
export function seeOther(reply: FastifyReply, location: string): FastifyReply {
  return reply.code(303).header('location', location).send();
}
