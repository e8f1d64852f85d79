/**
 * Accounts: users, passwords, app passwords and API tokens. Used by the CLI,
 * the HTTP API and (later) SMTP submission, so every credential check lives
 * here once.
 */
import { createHash, randomBytes } from 'node:crypto';
import { parseAddress } from '../core/address.ts';
import { conflict, DomainError, invalid, notFound, ReplyError, unauthorized } from '../core/errors.ts';
import { hashPassword, verifyPassword } from '../core/password.ts';
import { MODES, type Mode, type User } from '../core/types.ts';
import { StoreConflictError, type Store } from '../store/types.ts';
import { createAuthThrottle, type AuthThrottle } from './auth-throttle.ts';

const TOKEN_TTL_MS = 30 * 24 * 3600 * 1000;

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

export function createAccounts(store: Pick<Store, 'users'>, domains: string[], throttle: AuthThrottle = createAuthThrottle()) {
  const served = new Set(domains);

  function normalise(address: string): string {
    let parsed;
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

  async function check(address: string, password: string): Promise<User> {
    const fail = unauthorized('Invalid credentials');
    let user: User | undefined;
    try {
      user = await store.users.findByAddress(parseAddress(address).address);
    } catch {
      throw fail;
    }
    if (!user) {
      // Spend the same scrypt time as a real check, so timing does not reveal unknown users.
      await verifyPassword(password, await dummyHash()).catch(() => false);
      throw fail;
    }
    if (await verifyPassword(password, user.passwordHash).catch(() => false)) return user;
    for (const app of await store.users.listAppPasswords(user.id)) {
      if (await verifyPassword(password, app.passwordHash).catch(() => false)) return user;
    }
    throw fail;
  }

  return {
    normalise,
    get,

    async add(address: string, password: string, mode: Mode = 'open'): Promise<User> {
      const normal = normalise(address);
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

    async setPassword(address: string, password: string): Promise<void> {
      const user = await get(address);
      let hash: string;
      try {
        hash = await hashPassword(password);
      } catch (err) {
        throw invalid(err instanceof Error ? err.message : String(err));
      }
      await store.users.setPasswordHash(user.id, hash);
      // A token stolen before the change must not outlive it.
      await store.users.removeTokens(user.id);
    },

    /**
     * Checks a login: the account password or any of its app passwords. The
     * same error whatever failed, so the reply does not reveal which
     * addresses exist. With `client` (the peer's address), guessing is slowed
     * and then locked out for that client (auth-throttle.ts), whichever
     * protocol it comes through.
     */
    async authenticate(address: string, password: string, client?: string): Promise<User> {
      if (client === undefined) return check(address, password);
      throttle.check(client);
      try {
        const user = await check(address, password);
        throttle.succeed(client);
        return user;
      } catch (err) {
        if (err instanceof DomainError && err.kind === 'unauthorized') await throttle.fail(client);
        throw err;
      }
    },

    /** Creates an app password; the secret is returned once and only its hash is kept. */
    async addAppPassword(user: User, name: string): Promise<{ id: number; name: string; password: string }> {
      if (!/^[\w .-]{1,64}$/.test(name)) throw invalid('App password name: 1-64 letters, digits, spaces, dots or dashes');
      const password = randomBytes(18).toString('base64url');
      const { id } = await store.users.addAppPassword(user.id, name, await hashPassword(password));
      return { id, name, password };
    },

    async issueToken(user: User): Promise<{ token: string; expiresAt: Date }> {
      const token = randomBytes(32).toString('base64url');
      const expiresAt = new Date(Date.now() + TOKEN_TTL_MS);
      await store.users.addToken(user.id, sha256(token), expiresAt);
      return { token, expiresAt };
    },

    async userForToken(token: string): Promise<User> {
      const found = await store.users.findToken(sha256(token));
      if (!found || found.expiresAt.getTime() < Date.now()) throw unauthorized('Invalid or expired token');
      const user = await store.users.findById(found.userId);
      if (!user) throw unauthorized('Invalid or expired token');
      return user;
    },

    revokeToken: (token: string) => store.users.removeToken(sha256(token)),
  };
}

export type Accounts = ReturnType<typeof createAccounts>;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
// A hash of a random password, used only to equalise timing for unknown users.
let dummy: Promise<string> | undefined;
const dummyHash = () => (dummy ??= hashPassword(randomBytes(16).toString('hex')));
