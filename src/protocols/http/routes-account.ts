/** Sessions and the authenticated user's own account: login, logout, mode, password, app passwords. */
import { z } from 'zod';
import { invalid } from '../../core/errors.ts';
import { publicUser as toPublicUser } from '../../services/accounts.ts';
import type { Services } from '../../services/index.ts';
import { defineRoute, type ApiRoute } from './route.ts';
import { dateTime, mode, noContent, publicUser } from './schemas.ts';

// Bounded so a huge "password" cannot make us spend scrypt time on megabytes.
const password = z.string().min(1).max(1024);

export function accountRoutes(services: Services): ApiRoute[] {
  const { accounts } = services;
  return [
    defineRoute({
      method: 'POST',
      url: '/api/session',
      tag: 'session',
      auth: false,
      summary: 'Log in',
      description: 'Exchanges an address and its password (or an app password) for a bearer token.',
      body: { kind: 'json', schema: z.strictObject({ address: z.string().min(1).max(320), password }) },
      response: {
        status: 201,
        description: 'A new bearer token',
        schema: z.object({ token: z.string(), expiresAt: dateTime }),
      },
      async handler({ body, request }) {
        const user = await accounts.authenticate(body.address, body.password, request.ip);
        const { token, expiresAt } = await accounts.issueToken(user);
        return { token, expiresAt: expiresAt.toISOString() };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/api/session',
      tag: 'session',
      auth: true,
      summary: 'Log out',
      description: 'Revokes the bearer token the request was made with. Requests with HTTP Basic get 400: there is no token to revoke.',
      response: { status: 204, description: 'The token is revoked', schema: noContent },
      async handler({ auth }) {
        if (auth.token === undefined) throw invalid('No bearer token to revoke: this request used HTTP Basic');
        await accounts.revokeToken(auth.token);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/me',
      tag: 'account',
      auth: true,
      summary: 'The authenticated account',
      response: { status: 200, description: 'Address and mode', schema: publicUser },
      async handler({ user }) {
        return toPublicUser(user);
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/api/me/mode',
      tag: 'account',
      auth: true,
      summary: 'Set the screening mode',
      body: { kind: 'json', schema: z.strictObject({ mode }) },
      response: { status: 200, description: 'The account with its new mode', schema: publicUser },
      async handler({ user, body }) {
        return toPublicUser(await accounts.setMode(user.address, body.mode));
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/api/me/reveal-declined',
      tag: 'account',
      auth: true,
      summary: 'Reveal declines to Two-Way Mail senders',
      description: 'When true, denying a sender in the Screener (or a notice from a blocked sender) sends their server a "declined" receipt after a random delay; when false (the default) the sender only ever sees "pending" until the notice expires.',
      body: { kind: 'json', schema: z.strictObject({ revealDeclined: z.boolean() }) },
      response: { status: 200, description: 'The account with the new setting', schema: publicUser },
      async handler({ user, body }) {
        return toPublicUser(await accounts.setRevealDeclined(user.address, body.revealDeclined));
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/me/password',
      tag: 'account',
      auth: true,
      summary: 'Change the account password',
      description: 'App passwords and existing tokens stay valid.',
      body: { kind: 'json', schema: z.strictObject({ password }) },
      response: { status: 204, description: 'Changed', schema: noContent },
      async handler({ user, body }) {
        await accounts.setPassword(user.address, body.password);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/app-passwords',
      tag: 'account',
      auth: true,
      summary: 'Create an app password',
      description: 'The generated password is returned once; only its hash is kept.',
      body: { kind: 'json', schema: z.strictObject({ name: z.string().min(1).max(64) }) },
      response: {
        status: 201,
        description: 'The new app password',
        schema: z.object({ id: z.number().int(), name: z.string(), password: z.string().meta({ description: 'Shown only in this response' }) }),
      },
      async handler({ user, body }) {
        return accounts.addAppPassword(user, body.name);
      },
    }),
  ];
}
