/**
 * The replay rule after a restart (docs/protocol.md 5.5) for a verifier
 * whose nonce memory does not survive one. Before the restart at `startedAt`
 * the old process accepted any signature with `created <= now + skew`
 * (step 6 of 5.4), so every signature with `created` up to `startedAt +
 * skew` may already have been seen; only later ones are certainly new.
 * (A verifier whose nonces survive restarts needs none of this.)
 * Signature times are whole seconds (RFC 9421), so the restart time is
 * rounded UP: rounding down would leave the old process's last moments
 * uncovered.
 */
export type RestartCheck =
  /** Created after anything the previous process could have accepted: check the nonce memory. */
  | { kind: 'fresh' }
  /** Maybe seen before the restart: refuse (`stale-signature`); the sender may sign again after `retryAfter` s. */
  | { kind: 'maybe-seen'; retryAfter: number };

/**
 * @param createdS the signature's `created`, in seconds since the epoch
 * @param startedAtMs when this process's nonce memory started, in ms
 * @param skewS the clock skew step 6 allows (300 s)
 * @param nowMs the current time, in ms (for `retryAfter`)
 */
export function checkAfterRestart(createdS: number, startedAtMs: number, skewS: number, nowMs: number): RestartCheck {
  // The old process stopped before `startedAtMs`; its clock read at most ceil(start) - 1 in whole
  // seconds, so the latest `created` it could accept was ceil(start) - 1 + skew.
  const firstFresh = Math.ceil(startedAtMs / 1000) + skewS;
  if (createdS >= firstFresh) return { kind: 'fresh' };
  // A new signature made now has created = now: it passes once now reaches firstFresh.
  return { kind: 'maybe-seen', retryAfter: Math.max(1, firstFresh - Math.floor(nowMs / 1000)) };
}
