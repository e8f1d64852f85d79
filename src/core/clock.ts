/**
 * The time the application computes with: queue schedules, TWM delays and
 * expiry, Screener decisions, sweeps. The server takes one (createApp's
 * `clock`), so tests can move time instead of sleeping. Wire timestamps that
 * a peer checks against its own clock (TWM signatures) use the system time.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
