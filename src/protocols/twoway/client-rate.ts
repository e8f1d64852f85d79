/**
 * Step 1 of section 5.4: a token bucket per client address, in memory. It
 * runs before anything is read or verified, so it must stay cheap and
 * bounded: the map drops the longest-idle address first when full, which
 * only ever makes the limit more lenient for an address not seen recently.
 */
export interface ClientRate {
  perSecond: number;
  burst: number;
}

/** Section 12.7's defaults. */
export const DEFAULT_CLIENT_RATE: ClientRate = { perSecond: 20, burst: 100 };

export interface ClientBuckets {
  /** Takes one token: 0 when allowed, else whole seconds until one is available (>= 1). */
  take(address: string, nowMs: number): number;
}

export function clientBuckets(rate: ClientRate, maxAddresses = 100_000): ClientBuckets {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(address, nowMs) {
      let bucket = buckets.get(address);
      if (bucket) {
        buckets.delete(address);
        bucket.tokens = Math.min(rate.burst, bucket.tokens + (Math.max(0, nowMs - bucket.at) / 1000) * rate.perSecond);
        bucket.at = nowMs;
      } else {
        bucket = { tokens: rate.burst, at: nowMs };
        const oldest = buckets.keys().next();
        if (buckets.size >= maxAddresses && !oldest.done) buckets.delete(oldest.value);
      }
      // Re-inserted last, so the map's order is least recently used first.
      buckets.set(address, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / rate.perSecond));
    },
  };
}
