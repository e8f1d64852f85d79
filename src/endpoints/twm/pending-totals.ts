/**
 * The pending caps (docs/protocol.md 12.7) without counting the pending rows
 * for every stranger's notice: the user's count walks the user's pending
 * rows, up to `perUser` (10,000) of them, and was a tenth of a notice's CPU
 * for a user whom strangers flood, the very case the cap is for
 * (bench/twm-stranger-cost.ts); the sender's count walks the sender's
 * notices, up to `perSender` (100), and was the costliest statement of a
 * notice from a sender who floods one user. One instance per cap: keyed by
 * user, and by (user, sender).
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
 *
 * When this process is the only one that records notices (SQLite and one
 * process: app-start.ts), nothing is missed, so the count may stand in for
 * longer (SOLE_WRITER_TTL_MS): the answers are the same, since near the cap
 * the store is asked every time anyway, and a flood from many senders no
 * longer costs one count per sender per second (the costliest read of a
 * stranger's notice in bench/twm-stranger-cost.ts). It is still bounded, so
 * that an estimate made too high by decisions comes back down in time.
 */

/** How long a count from the store stands in, with this process's additions. */
export const PENDING_TOTAL_TTL_MS = 1000;
/** The same when this process is the only one recording notices. */
export const SOLE_WRITER_TTL_MS = 60_000;
/**
 * Counts kept at most; beyond, the least recently counted is forgotten. Senders are a stranger's
 * choice, so this bound is what keeps a flood of new addresses from growing the map: a forgotten
 * count is only asked again.
 */
const MAX_KEYS = 10_000;

export interface PendingTotals<K = number> {
  /** The estimate for the key, or undefined when the store must be asked (none, stale, or near the cap). */
  estimate(key: K, at: number): number | undefined;
  /** A count just read from the store. */
  counted(key: K, total: number, at: number): void;
  /** Pending rows this process has just recorded for the key. */
  added(key: K, n: number): void;
}

export function createPendingTotals<K = number>(cap: number, ttlMs = PENDING_TOTAL_TTL_MS): PendingTotals<K> {
  const margin = Math.max(1, Math.ceil(cap / 10));
  const totals = new Map<K, { total: number; at: number }>();
  return {
    estimate(key, at) {
      const known = totals.get(key);
      if (!known) return undefined;
      const age = at - known.at;
      // A clock that went back (a test clock, a step) makes the count's age unknown: ask again.
      if (age < 0 || age >= ttlMs || known.total >= cap - margin) return undefined;
      return known.total;
    },
    counted(key, total, at) {
      totals.delete(key);
      if (totals.size >= MAX_KEYS) totals.delete(totals.keys().next().value!);
      totals.set(key, { total, at });
    },
    added(key, n) {
      const known = totals.get(key);
      if (known) known.total += n;
    },
  };
}
