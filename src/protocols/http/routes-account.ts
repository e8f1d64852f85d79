/** Sessions and the authenticated user's own account: login, logout, mode, password, app passwords. */
import { z } from 'zod';
import { invalid } from '../../core/errors.ts';
import { APP_PASSWORD_SCOPES, type AppPassword } from '../../core/types.ts';
import { MAX_APP_PASSWORDS, publicUser as toPublicUser } from '../../services/accounts.ts';
import type { Services } from '../../services/index.ts';
import { defineRoute, type ApiRoute } from './route.ts';
import { dateTime, mode, noContent, publicUser } from './schemas.ts';

// Bounded so a huge "password" cannot make us spend scrypt time on megabytes.
const password = z.string().min(1).max(1024);

export function accountRoutes(services: Services): ApiRoute[] {
  return [
    ...sessionRoutes(services),
    ...profileRoutes(services),
    ...appPasswordRoutes(services),
  ];
}

/** Log in and out (bearer sessions). */
function sessionRoutes(services: Services): ApiRoute[] {
  const { accounts } = services;
  return [
    defineRoute({
      method: 'POST',
      url: '/api/session',
      tag: 'session',
      auth: false,
      summary: 'Log in',
      description:
        'Exchanges an address and its password (or an app password) for a bearer token. A token obtained with an app password has that app password\'s scope and is revoked with it.',
      body: { kind: 'json', schema: z.strictObject({ address: z.string().min(1).max(320), password }) },
      response: {
        status: 201,
        description: 'A new bearer token',
        schema: z.object({ token: z.string(), expiresAt: dateTime }),
      },
      async handler({ body, request }) {
        const { user, appPassword } = await accounts.authenticate(body.address, body.password, request.ip);
        // A session opened with an app password has that app password's scope and ends with it.
        const { token, expiresAt } = await accounts.issueToken(user, appPassword?.id ?? null);
        return { token, expiresAt: expiresAt.toISOString() };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/api/session',
      tag: 'session',
      auth: true,
      summary: 'Log out',
      anyScope: true,
      description: 'Revokes the bearer token the request was made with. Requests with HTTP Basic get 400: there is no token to revoke.',
      response: { status: 204, description: 'The token is revoked', schema: noContent },
      async handler({ auth }) {
        if (auth.token === undefined) throw invalid('No bearer token to revoke: this request used HTTP Basic');
        await accounts.revokeToken(auth.token);
      },
    }),
  ];
}

/** The user's own settings and password. */
function profileRoutes(services: Services): ApiRoute[] {
  const { accounts } = services;
  return [
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
      account: true,
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
      account: true,
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
      account: true,
      summary: 'Change the account password',
      description:
        'Needs the account password or a session opened with it (an app password gets 403). Revokes every app password and every API session (this one included) unless `keepAppPasswords` / `keepSessions` is true.',
      body: {
        kind: 'json',
        schema: z.strictObject({
          password,
          keepAppPasswords: z.boolean().default(false).meta({ description: 'Keep the app passwords valid (default: revoke them all)' }),
          keepSessions: z.boolean().default(false).meta({ description: 'Keep the API sessions (bearer tokens) valid (default: revoke them all)' }),
        }),
      },
      response: { status: 204, description: 'Changed', schema: noContent },
      async handler({ user, body }) {
        await accounts.setPassword(user.address, body.password, { appPasswords: body.keepAppPasswords, sessions: body.keepSessions });
      },
    }),
  ];
}

/** App passwords: list, create, revoke. */
function appPasswordRoutes(services: Services): ApiRoute[] {
  const { accounts } = services;
  return [
    defineRoute({
      method: 'GET',
      url: '/api/me/app-passwords',
      tag: 'account',
      auth: true,
      account: true,
      summary: 'List app passwords',
      description: 'Names, scopes and dates; never the secrets. Needs the account password or a session opened with it.',
      response: { status: 200, description: 'The app passwords, oldest first', schema: z.array(appPasswordSchema) },
      async handler({ user }) {
        return (await accounts.listAppPasswords(user)).map(appPasswordView);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/me/app-passwords',
      tag: 'account',
      auth: true,
      account: true,
      summary: 'Create an app password',
      description: `The generated password (\`twp_<id>_<secret>\`) is returned once; only its hash is kept. Scope \`all\`: SMTP submission, the API's mail routes and CardDAV; \`contacts\`: CardDAV only. At most ${MAX_APP_PASSWORDS} per account (409). Needs the account password or a session opened with it.`,
      body: {
        kind: 'json',
        schema: z.strictObject({ name: z.string().min(1).max(64), scope: z.enum(APP_PASSWORD_SCOPES).default('all') }),
      },
      conflict: `The account already has ${MAX_APP_PASSWORDS} app passwords`,
      response: {
        status: 201,
        description: 'The new app password',
        schema: appPasswordSchema.extend({ password: z.string().meta({ description: 'Shown only in this response' }) }),
      },
      async handler({ user, body }) {
        const app = await accounts.addAppPassword(user, body.name, body.scope);
        return { ...appPasswordView(app), password: app.password };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/api/me/app-passwords/:id',
      tag: 'account',
      auth: true,
      account: true,
      summary: 'Revoke an app password',
      description: 'By its number or its public id. Also ends the sessions opened with it. Needs the account password or a session opened with it.',
      // Any string: the number or the public id; anything else is a 404 like an unknown id.
      params: z.strictObject({ id: z.string().max(64) }),
      notFound: 'No such app password',
      response: { status: 204, description: 'Revoked', schema: noContent },
      async handler({ user, params }) {
        await accounts.revokeAppPassword(user, params.id);
      },
    }),
  ];
}

const appPasswordSchema = z.object({
  id: z.number().int(),
  publicId: z.string().meta({ description: 'The id inside the secret (twp_<publicId>_...)' }),
  name: z.string(),
  scope: z.enum(APP_PASSWORD_SCOPES),
  createdAt: dateTime,
  lastUsedAt: dateTime.nullable(),
});

function appPasswordView(a: AppPassword) {
  return { id: a.id, publicId: a.publicId, name: a.name, scope: a.scope, createdAt: a.createdAt.toISOString(), lastUsedAt: a.lastUsedAt?.toISOString() ?? null };
}
