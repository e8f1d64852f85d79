/**
 * Accounts: users, passwords, app passwords and API tokens. Used by the CLI,
 * the HTTP API and (later) SMTP submission, so every credential check lives
 * here once.
 */
import { parseAddress } from '../core/address.ts';
import { conflict, invalid, notFound, ReplyError } from '../core/errors.ts';
import { hashPassword } from '../core/password.ts';
import { MODES, type Mode, type User } from '../core/types.ts';
import { StoreConflictError, type Store } from '../store/types.ts';
import { createAuthThrottle, type AuthThrottle } from './auth-throttle.ts';
import { createLoginCache, DEFAULT_LOGIN_CACHE_TTL_MS, type LoginCache } from './login-cache.ts';
import { createCredentials } from './account-credentials.ts';

export { MAX_APP_PASSWORDS, type Principal } from './account-credentials.ts';

export interface PublicUser {
  address: string;
  mode: Mode;
  /** Denying a TWM sender sends it a `declined` receipt (off by default). */
  revealDeclined: boolean;
  createdAt: string;
}

export const publicUser = (u: User): PublicUser => ({ address: u.address, mode: u.mode, revealDeclined: u.revealDeclined, createdAt: u.createdAt.toISOString() });

export function parseMode(value: string): Mode {
  if (!(MODES as readonly string[]).includes(value)) throw invalid(`Unknown mode "${value}": expected one of ${MODES.join(', ')}`);
  return value as Mode;
}

/**
 * No account is another account's subaddress (RFC 5233, `local+tag`):
 * mail to `bob+sales` reaches bob, and bob may send as it and manage its
 * queue entries, so a separate `bob+sales` account would be bob's to read
 * and impersonate. Refused in both orders: `bob+sales` while `bob` exists,
 * and `bob` while some `bob+…` exists (docs/reliability.md, "Accounts").
 */
async function refuseSubaddressClash(store: Pick<Store, 'users'>, address: string): Promise<void> {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const domain = address.slice(at);
  const plus = local.indexOf('+');
  if (plus > 0) {
    const base = local.slice(0, plus) + domain;
    if (await store.users.findByAddress(base)) {
      throw conflict(`${address} is a subaddress of the account ${base}: mail to it reaches ${base} already, and ${base} may send as it`);
    }
    return;
  }
  const sub = (await store.users.list()).find((u) => u.address.endsWith(domain) && u.address.startsWith(`${local}+`));
  if (sub) throw conflict(`The account ${sub.address} exists: it would be a subaddress of ${address}; remove it first or choose another address`);
}

/** What a password change keeps (setPassword): by default neither. */
export interface KeepOnPasswordChange {
  appPasswords?: boolean;
  sessions?: boolean;
}

async function changePassword(
  store: Pick<Store, 'users' | 'webSessions'>,
  user: User,
  password: string,
  keep: KeepOnPasswordChange,
): Promise<{ revokedAppPasswords: number; revokedSessions: number }> {
  let hash: string;
  try {
    hash = await hashPassword(password);
  } catch (err) {
    throw invalid(err instanceof Error ? err.message : String(err));
  }
  await store.users.setPasswordHash(user.id, hash);
  const revokedAppPasswords = keep.appPasswords ? 0 : await store.users.removeAppPasswords(user.id);
  // API tokens and web app sessions alike.
  const revokedSessions = keep.sessions ? 0 : (await store.users.removeTokens(user.id)) + (await store.webSessions.removeAll(user.id));
  return { revokedAppPasswords, revokedSessions };
}

export function createAccounts(
  store: Pick<Store, 'users' | 'webSessions'>,
  domains: string[],
  throttle: AuthThrottle = createAuthThrottle(),
  loginCache: LoginCache = createLoginCache({ ttlMs: DEFAULT_LOGIN_CACHE_TTL_MS }),
) {
  const served = new Set(domains);

  function normalise(address: string): string {
    let parsed: ReturnType<typeof parseAddress>;
    try {
      parsed = parseAddress(address);
    } catch (err) {
      throw invalid(err instanceof ReplyError ? err.text : `Bad address "${address}"`);
    }
    if (!served.has(parsed.domain)) {
      throw invalid(`${parsed.domain} is not a domain this server serves (${[...served].join(', ')})`);
    }
    return parsed.address;
  }

  async function get(address: string): Promise<User> {
    const user = await store.users.findByAddress(normalise(address));
    if (!user) throw notFound(`No such user: ${address}`);
    return user;
  }

  return {
    normalise,
    get,

    async add(address: string, password: string, mode: Mode = 'open'): Promise<User> {
      const normal = normalise(address);
      await refuseSubaddressClash(store, normal);
      try {
        return await store.users.create({ address: normal, passwordHash: await hashPassword(password), mode });
      } catch (err) {
        if (err instanceof StoreConflictError) throw conflict(`User ${normal} already exists`);
        if (err instanceof Error && /password/i.test(err.message)) throw invalid(err.message);
        throw err;
      }
    },

    list: () => store.users.list(),

    async setMode(address: string, mode: Mode): Promise<User> {
      const user = await get(address);
      await store.users.setMode(user.id, mode);
      return { ...user, mode };
    },

    /** Whether denying a TWM sender sends a `declined` receipt (docs/protocol.md 8.6). */
    async setRevealDeclined(address: string, reveal: boolean): Promise<User> {
      const user = await get(address);
      await store.users.setRevealDeclined(user.id, reveal);
      return { ...user, revealDeclined: reveal };
    },

    /**
     * Changes the account password. Unless told otherwise, every app
     * password and every API and web session goes with the old password: a
     * credential stolen before the change must not outlive it.
     */
    setPassword: async (address: string, password: string, keep: KeepOnPasswordChange = {}) => changePassword(store, await get(address), password, keep),

    ...createCredentials(store, throttle, loginCache),
  };
}

export type Accounts = ReturnType<typeof createAccounts>;
