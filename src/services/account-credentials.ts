/**
 * The credentials half of the accounts service: logins (account password or
 * app password, throttled per client), app passwords and API tokens. Split
 * from accounts.ts so that each file holds one job; `createAccounts` spreads
 * these methods into the one `Accounts` object.
 */
import { createHash, randomBytes } from 'node:crypto';
import { parseAddress } from '../core/address.ts';
import { conflict, DomainError, invalid, notFound, unauthorized } from '../core/errors.ts';
import { hashPassword, verifyPassword } from '../core/password.ts';
import { APP_PASSWORD_SCOPES, type AppPassword, type AppPasswordScope, type User } from '../core/types.ts';
import { StoreConflictError, type Store } from '../store/types.ts';
import type { AuthThrottle } from './auth-throttle.ts';
import type { LoginCache, SecretOwner } from './login-cache.ts';

const TOKEN_TTL_MS = 30 * 24 * 3600 * 1000;
/** App passwords per account (docs/reliability.md, "The app-password model"). */
export const MAX_APP_PASSWORDS = 50;
/** `twp_<public id: 12 hex digits>_<secret>`; the id is looked up, the whole string is the secret. */
const APP_PASSWORD_FORMAT = /^twp_([0-9a-f]{12})_[A-Za-z0-9_-]{1,64}$/;

/**
 * Who is asking, and with what: `appPassword` is null for the account
 * password and for sessions opened with it (full rights), else the app
 * password's scope limits what the request may do.
 */
export interface Principal {
  user: User;
  appPassword: { id: number; name: string; scope: AppPasswordScope } | null;
}

/**
 * The throttle's account key: the normalised address, so other spellings of
 * one account share its count; unparsable or unknown names count too.
 */
function accountKey(address: string): string {
  try {
    return parseAddress(address).address;
  } catch {
    return address.trim().toLowerCase().slice(0, 320);
  }
}

/**
 * One scrypt per attempt, whatever the number of app passwords: a secret
 * of the form `twp_<id>_...` is checked against the one app password of
 * that user with that public id; anything else (or an id the user does not
 * have) against the account password. An unknown user costs a scrypt too.
 * A right password already verified against the same stored hash within the
 * login cache's TTL costs none (login-cache.ts); a wrong one always costs one.
 */
async function check(store: Pick<Store, 'users'>, cache: LoginCache, address: string, password: string): Promise<Principal> {
  const fail = unauthorized('Invalid credentials');
  let parsed: string;
  try {
    parsed = parseAddress(address).address;
  } catch {
    throw fail;
  }
  // A store that cannot answer is not a wrong password: its error goes on (SMTP 451, HTTP 503) and
  // counts against nobody's throttle.
  const user: User | undefined = await store.users.findByAddress(parsed);
  if (!user) {
    // Spend the same scrypt time as a real check, so timing does not reveal unknown users.
    await verifyPassword(password, await dummyHash()).catch(() => false);
    throw fail;
  }
  const publicId = APP_PASSWORD_FORMAT.exec(password)?.[1];
  const app = publicId === undefined ? undefined : await store.users.findAppPassword(publicId);
  if (app && app.userId === user.id) {
    if (!(await verified(cache, { kind: 'app', id: app.id }, app.passwordHash, password))) throw fail;
    await store.users.touchAppPassword(app.id, new Date());
    return { user, appPassword: { id: app.id, name: app.name, scope: app.scope } };
  }
  if (await verified(cache, { kind: 'user', id: user.id }, user.passwordHash, password)) return { user, appPassword: null };
  throw fail;
}

/** The password against the stored hash just read: from the cache of verified logins, or one scrypt. */
const verified = (cache: LoginCache, owner: SecretOwner, storedHash: string, password: string): Promise<boolean> =>
  cache.verify(owner, storedHash, password, () => verifyPassword(password, storedHash).catch(() => false));

async function principalForToken(store: Pick<Store, 'users'>, token: string): Promise<Principal> {
  const found = await store.users.findToken(sha256(token));
  if (!found || found.expiresAt.getTime() < Date.now()) throw unauthorized('Invalid or expired token');
  const user = await store.users.findById(found.userId);
  if (!user) throw unauthorized('Invalid or expired token');
  if (found.appPasswordId === null) return { user, appPassword: null };
  const app = await store.users.findAppPasswordById(user.id, found.appPasswordId);
  if (!app) throw unauthorized('Invalid or expired token');
  return { user, appPassword: { id: app.id, name: app.name, scope: app.scope } };
}

export function createCredentials(store: Pick<Store, 'users'>, throttle: AuthThrottle, cache: LoginCache) {
  return {
    /**
     * Checks a login: the account password or any of its app passwords. The
     * same error whatever failed, so the reply does not reveal which
     * addresses exist. With `client` (the peer's address), guessing is slowed
     * and then locked out for that client (auth-throttle.ts), whichever
     * protocol it comes through.
     */
    async authenticate(address: string, password: string, client?: string): Promise<Principal> {
      if (client === undefined) return check(store, cache, address, password);
      const account = accountKey(address);
      throttle.check(client, account);
      try {
        const principal = await check(store, cache, address, password);
        throttle.succeed(client, account);
        return principal;
      } catch (err) {
        if (err instanceof DomainError && err.kind === 'unauthorized') await throttle.fail(client, account);
        throw err;
      }
    },

    /**
     * Creates an app password; the secret (`twp_<public id>_<secret>`) is
     * returned once and only its hash is kept. At most MAX_APP_PASSWORDS.
     */
    async addAppPassword(user: User, name: string, scope: AppPasswordScope = 'all'): Promise<AppPassword & { password: string }> {
      if (!/^[\w .-]{1,64}$/.test(name)) throw invalid('App password name: 1-64 letters, digits, spaces, dots or dashes');
      if (!(APP_PASSWORD_SCOPES as readonly string[]).includes(scope)) throw invalid(`Unknown app password scope "${scope}": expected one of ${APP_PASSWORD_SCOPES.join(', ')}`);
      const publicId = randomBytes(6).toString('hex');
      const password = `twp_${publicId}_${randomBytes(18).toString('base64url')}`;
      try {
        const app = await store.users.addAppPassword(user.id, { publicId, name, scope, passwordHash: await hashPassword(password) }, MAX_APP_PASSWORDS);
        return { ...app, password };
      } catch (err) {
        if (err instanceof StoreConflictError) throw conflict(err.message);
        throw err;
      }
    },

    listAppPasswords: (user: User) => store.users.listAppPasswords(user.id),

    /** Revokes one app password (by its number or its public id) and the sessions opened with it. */
    async revokeAppPassword(user: User, id: number | string): Promise<void> {
      let n = typeof id === 'number' ? id : /^[1-9]\d{0,15}$/.test(id) ? Number(id) : undefined;
      if (n === undefined) n = (await store.users.listAppPasswords(user.id)).find((a) => a.publicId === id)?.id;
      if (n === undefined || !(await store.users.removeAppPassword(user.id, n))) throw notFound(`No app password ${id} for ${user.address}`);
    },

    /** A bearer token; one opened with an app password keeps that app password's scope and dies with it. */
    async issueToken(user: User, appPasswordId: number | null = null): Promise<{ token: string; expiresAt: Date }> {
      const token = randomBytes(32).toString('base64url');
      const expiresAt = new Date(Date.now() + TOKEN_TTL_MS);
      await store.users.addToken(user.id, sha256(token), expiresAt, appPasswordId);
      return { token, expiresAt };
    },

    principalForToken: (token: string) => principalForToken(store, token),

    async userForToken(token: string): Promise<User> {
      return (await principalForToken(store, token)).user;
    },

    revokeToken: (token: string) => store.users.removeToken(sha256(token)),
  };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
// A hash of a random password, used only to equalise timing for unknown users.
let dummy: Promise<string> | undefined;
const dummyHash = () => (dummy ??= hashPassword(randomBytes(16).toString('hex')));
