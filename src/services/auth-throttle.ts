/**
 * Slows password guessing. Failures are counted twice: per (client address,
 * target account) and per client address alone, each in a window that
 * starts at its first failure. Every failure delays the reply a little more;
 * after `maxFailures` for one account, or `maxClientFailures` over all
 * accounts (spraying), the client gets 454 4.7.0 / 429 without a check until
 * the window has passed. A successful login clears only the count of that
 * (client, account) pair: logging in to one's own account does not reset the
 * guesses against another, nor the client's total (docs/reliability.md,
 * "Password guessing"). Memory is bounded: the oldest entries go first.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { throttled } from '../core/errors.ts';

export interface AuthThrottleOptions {
  /** Failures per (client, account) before the lockout. */
  maxFailures?: number;
  /** Failures per client over every account before the lockout. */
  maxClientFailures?: number;
  windowMs?: number;
  /** Delay added per failure, capped at 5 s. */
  stepMs?: number;
  maxTracked?: number;
}

interface Count {
  count: number;
  first: number;
}

export function createAuthThrottle(options: AuthThrottleOptions = {}) {
  const maxFailures = options.maxFailures ?? 5;
  const maxClientFailures = options.maxClientFailures ?? 20;
  const windowMs = options.windowMs ?? 15 * 60_000;
  const stepMs = options.stepMs ?? 500;
  const maxTracked = options.maxTracked ?? 10_000;
  const perPair = new Map<string, Count>();
  const perClient = new Map<string, Count>();
  // NUL cannot occur in an address or a client IP, so the key is unambiguous.
  const pairKey = (client: string, account: string) => `${client}\u0000${account}`;

  const current = (map: Map<string, Count>, key: string) => {
    const f = map.get(key);
    if (f && Date.now() - f.first > windowMs) {
      map.delete(key);
      return undefined;
    }
    return f;
  };
  const bump = (map: Map<string, Count>, key: string): number => {
    const f = current(map, key) ?? { count: 0, first: Date.now() };
    f.count++;
    map.delete(key);
    map.set(key, f);
    if (map.size > maxTracked) map.delete(map.keys().next().value!);
    return f.count;
  };

  return {
    /** Throws `throttled` (SMTP 454 4.7.0, HTTP 429) while the client is locked out for this account or for every account. */
    check(client: string, account: string): void {
      const pair = current(perPair, pairKey(client, account));
      const all = current(perClient, client);
      if ((pair && pair.count >= maxFailures) || (all && all.count >= maxClientFailures)) {
        throw throttled('Too many failed authentication attempts from your address; try again later');
      }
    },
    /** Records a failure and waits before the caller replies. */
    async fail(client: string, account: string): Promise<void> {
      const pair = bump(perPair, pairKey(client, account));
      bump(perClient, client);
      await sleep(Math.min(pair * stepMs, 5000));
    },
    /** A login that succeeded: forgets this pair's failures only. */
    succeed(client: string, account: string): void {
      perPair.delete(pairKey(client, account));
    },
  };
}

export type AuthThrottle = ReturnType<typeof createAuthThrottle>;
