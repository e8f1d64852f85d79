/**
 * The per-user pending cap (docs/protocol.md 12.7) without counting every
 * pending row of the user for every stranger's notice: that count walks the
 * user's pending rows, up to `perUser` (10,000) of them, and was a tenth of
 * a notice's CPU for a user whom strangers flood, the very case the cap is
 * for (bench/twm-stranger-cost.ts).
 *
 * The count from the store is kept for a second, and the notices recorded
 * since by this process are added to it. While that estimate stays below
 * the cap by a margin (a tenth of it) it stands in for the count; near the
 * cap, or once a second, the store is asked again. So every `deferred`
 * answer rests on a fresh count. In one process the estimate is never below
 * the truth (notices leave `pending` only by decisions, expiry and the hold,
 * which make it too high, never too low); with several processes, what the
 * others record within one second is missed until the next count, which is
 * why the margin is there.
 */

/** How long a count from the store stands in, with this process's additions. */
export const PENDING_TOTAL_TTL_MS = 1000;
/** Known users at most; beyond, the oldest is forgotten (a stranger cannot grow this: users are ours). */
const MAX_USERS = 10_000;

export interface PendingTotals {
  /** The estimate for the user, or undefined when the store must be asked (none, stale, or near the cap). */
  estimate(userId: number, at: number): number | undefined;
  /** A count just read from the store. */
  counted(userId: number, total: number, at: number): void;
  /** Pending rows this process has just recorded for the user. */
  added(userId: number, n: number): void;
}

export function createPendingTotals(perUser: number, ttlMs = PENDING_TOTAL_TTL_MS): PendingTotals {
  const margin = Math.max(1, Math.ceil(perUser / 10));
  const totals = new Map<number, { total: number; at: number }>();
  return {
    estimate(userId, at) {
      const known = totals.get(userId);
      if (!known) return undefined;
      const age = at - known.at;
      // A clock that went back (a test clock, a step) makes the count's age unknown: ask again.
      if (age < 0 || age >= ttlMs || known.total >= perUser - margin) return undefined;
      return known.total;
    },
    counted(userId, total, at) {
      totals.delete(userId);
      if (totals.size >= MAX_USERS) totals.delete(totals.keys().next().value!);
      totals.set(userId, { total, at });
    },
    added(userId, n) {
      const known = totals.get(userId);
      if (known) known.total += n;
    },
  };
}
