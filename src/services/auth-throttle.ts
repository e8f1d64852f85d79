/**
 * Slows password guessing per client address: every failure delays the
 * reply a little more, and after `maxFailures` within `windowMs` the address
 * gets 454 4.7.0 without a check until the window has passed. Memory is
 * bounded: the oldest addresses are forgotten first.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { throttled } from '../core/errors.ts';

export interface AuthThrottleOptions {
  maxFailures?: number;
  windowMs?: number;
  /** Delay added per failure, capped at 5 s. */
  stepMs?: number;
  maxTracked?: number;
}

export function createAuthThrottle(options: AuthThrottleOptions = {}) {
  const maxFailures = options.maxFailures ?? 5;
  const windowMs = options.windowMs ?? 15 * 60_000;
  const stepMs = options.stepMs ?? 500;
  const maxTracked = options.maxTracked ?? 10_000;
  const failures = new Map<string, { count: number; first: number }>();

  const current = (client: string) => {
    const f = failures.get(client);
    if (f && Date.now() - f.first > windowMs) {
      failures.delete(client);
      return undefined;
    }
    return f;
  };

  return {
    /** Throws `throttled` (SMTP 454 4.7.0, HTTP 429) while the client is locked out. */
    check(client: string): void {
      const f = current(client);
      if (f && f.count >= maxFailures) {
        throw throttled('Too many failed authentication attempts from your address; try again later');
      }
    },
    /** Records a failure and waits before the caller replies. */
    async fail(client: string): Promise<void> {
      const f = current(client) ?? { count: 0, first: Date.now() };
      f.count++;
      failures.delete(client);
      failures.set(client, f);
      if (failures.size > maxTracked) failures.delete(failures.keys().next().value!);
      await sleep(Math.min(f.count * stepMs, 5000));
    },
    succeed(client: string): void {
      failures.delete(client);
    },
  };
}

export type AuthThrottle = ReturnType<typeof createAuthThrottle>;
