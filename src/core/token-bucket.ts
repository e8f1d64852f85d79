/**
 * Token-bucket rate limits keyed by a string (a client address, a sending
 * domain). Pure apart from the clock passed in; the map is bounded, dropping
 * the longest-idle key first, so a flood of distinct keys cannot grow memory.
 */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

export interface TokenBuckets {
  /** Takes one token for `key`: 0 if allowed, else the seconds to wait (>= 1). */
  take(key: string, now: number): number;
  /** Returns a token taken for `key` (up to the burst): the request it was taken for turned out to be free. */
  giveBack(key: string): void;
}

export function createTokenBuckets(limit: RateLimit, maxKeys = 100_000): TokenBuckets {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key, now) {
      let b = buckets.get(key);
      if (b) {
        buckets.delete(key);
        // A clock that steps back refills nothing rather than draining the bucket.
        b.tokens = Math.min(limit.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * limit.perSecond);
        b.at = now;
      } else {
        b = { tokens: limit.burst, at: now };
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!);
      }
      // Re-inserted last: the map's order is least recently used first.
      buckets.set(key, b);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - b.tokens) / limit.perSecond));
    },
    giveBack(key) {
      const b = buckets.get(key);
      if (b) b.tokens = Math.min(limit.burst, b.tokens + 1);
    },
  };
}
