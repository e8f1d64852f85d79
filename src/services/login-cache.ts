/**
 * A cache of verified logins, as Dovecot's auth cache does: a client that
 * logs in again and again with the same right password (a submission client
 * opening a connection per message, an IMAP client per sync, a pool that
 * reconnects) pays one scrypt per `ttlMs`, not one per login.
 *
 * What is remembered is only an HMAC-SHA-256, under a random key made by
 * this process, of (whose secret, the stored hash read from the store at
 * this login, the presented password): never the password. The trade-off, as
 * in Dovecot: a dump of this process's memory (key and entries) would let
 * guesses at a cached password be tested at HMAC speed instead of scrypt's,
 * for as long as its entry lasts; `ttlMs` 0 declines it. Because the
 * stored hash is part of the key and the login still reads it from the store
 * every time, a password change (a new salted hash), a revoked app password
 * or a deleted user misses at once, on every node.
 *
 * Only successes go in: a wrong password always costs its scrypt, so the
 * auth throttle and the timing of guesses are unchanged. Bounded by `ttlMs`
 * (counted from the scrypt that proved the password, not refreshed by hits,
 * so a login is re-proved by scrypt at least that often) and `maxEntries`
 * (the oldest go first). `ttlMs` 0 turns it off.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { MAX_PASSWORD_BYTES } from '../core/password.ts';

export interface LoginCacheOptions {
  /** How long a verified login is remembered, ms; 0: not at all. */
  ttlMs: number;
  /** Remembered logins at most; the oldest go first. */
  maxEntries?: number;
  /** The application clock, ms (core/clock.ts); the system time by default. */
  now?: () => number;
}

/** Whose secret: the account password of user `id`, or app password `id`. */
export type SecretOwner = { kind: 'user' | 'app'; id: number };

export interface LoginCache {
  /**
   * Whether `password` is right for `storedHash`: true from the cache when
   * this process verified the same password against the same stored hash
   * within the TTL, else `scrypt()`'s answer (remembered when true). Logins
   * with the same secret at the same time (a pool opening its connections)
   * wait for the one scrypt in flight; if that one fails, each runs its own,
   * so a wrong password always costs a scrypt of its own.
   */
  verify(owner: SecretOwner, storedHash: string, password: string, scrypt: () => Promise<boolean>): Promise<boolean>;
  readonly size: number;
}

/** The config's default (`[server] login_cache`). */
export const DEFAULT_LOGIN_CACHE_TTL_MS = 5 * 60_000;
export const DEFAULT_LOGIN_CACHE_MAX_ENTRIES = 10_000;

export function createLoginCache(options: LoginCacheOptions): LoginCache {
  const ttlMs = options.ttlMs;
  const maxEntries = options.maxEntries ?? DEFAULT_LOGIN_CACHE_MAX_ENTRIES;
  const now = options.now ?? Date.now;
  // Per process and never stored: a node's cache means nothing to another, nor after a restart.
  const key = randomBytes(32);
  /** HMAC (base64) -> expiry, ms; Map order is insertion order, so the first entry is the oldest. */
  const entries = new Map<string, number>();

  // The owner and the stored hash cannot hold NUL (numbers; `scrypt$N$r$p$base64$base64`) and the
  // password comes last, so the encoding is unambiguous.
  const mac = (owner: SecretOwner, storedHash: string, password: string): string =>
    createHmac('sha256', key).update(`${owner.kind}\u0000${owner.id}\u0000${storedHash}\u0000`).update(password, 'utf8').digest('base64');
  // verifyPassword refuses longer passwords anyway: do not spend an HMAC over megabytes for them.
  const usable = (password: string) => ttlMs > 0 && password.length > 0 && password.length <= MAX_PASSWORD_BYTES;

  /** Verifications in flight, by the same HMAC: bounded by the logins under way. */
  const pending = new Map<string, Promise<boolean>>();

  const hit = (k: string, t: number): boolean => {
    const expires = entries.get(k);
    if (expires === undefined) return false;
    if (expires > t) return true;
    entries.delete(k);
    return false;
  };
  const add = (k: string, t: number) => {
    // Re-inserted at the end: its age is that of this verification. One TTL for all, so insertion
    // order is expiry order: the expired ones are at the front.
    entries.delete(k);
    entries.set(k, t + ttlMs);
    for (const [old, expires] of entries) {
      if (expires > t && entries.size <= maxEntries) break;
      entries.delete(old);
    }
  };

  return {
    async verify(owner, storedHash, password, scrypt) {
      if (!usable(password)) return scrypt();
      const k = mac(owner, storedHash, password);
      if (hit(k, now())) return true;
      const running = pending.get(k);
      if (running) {
        if (await running.catch(() => false)) return true;
        return scrypt();
      }
      const mine = scrypt();
      pending.set(k, mine);
      try {
        const ok = await mine;
        if (ok) add(k, now());
        return ok;
      } finally {
        pending.delete(k);
      }
    },
    get size() {
      return entries.size;
    },
  };
}
