/**
 * Retry schedule of the outbound queue (pure, no I/O, no clock: callers pass
 * `now`). The habits are Postfix's and RFC 5321's:
 *
 * - exponential backoff: the wait after the n-th failed attempt is
 *   `base * 2^(n-1)`, capped at `max` (Postfix: minimal_backoff_time 300s,
 *   maximal_backoff_time 4000s), then spread by ± `jitter` so that mail
 *   deferred together (one remote outage) does not retry in lock step;
 * - give up after a fixed time since the message arrived, not after a number
 *   of attempts (RFC 5321 section 4.5.4.1: "at least 4-5 days");
 * - one "delayed" warning after a few hours (Postfix delay_warning_time).
 */

export interface BackoffOptions {
  /** Wait after the first failed attempt, in ms (> 0). */
  baseMs: number;
  /** Upper bound of the wait before jitter, in ms (>= baseMs). */
  maxMs: number;
  /** Relative spread 0..1: 0.1 makes a 10 min wait anything from 9 to 11 min. */
  jitter: number;
  /** Uniform in [0, 1); Math.random by default (tests pass a fixed one). */
  random?: () => number;
}

/** Everything the queue worker needs to know about timing. */
export interface RetrySchedule extends Omit<BackoffOptions, 'random'> {
  /** A recipient still deferred this long after the message arrived fails with a DSN. */
  giveUpAfterMs: number;
  /** A recipient still deferred this long after arrival gets one "delayed" DSN; <= 0 disables. */
  delayWarningAfterMs: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const DEFAULT_BASE_MS = 5 * MINUTE;
/** Postfix's maximal_backoff_time, 4000 s (about 67 min). */
export const DEFAULT_MAX_MS = 4_000_000;
export const DEFAULT_JITTER = 0.1;
/** RFC 5321 section 4.5.4.1 asks for at least 4-5 days. */
export const DEFAULT_GIVE_UP_AFTER_MS = 5 * DAY;
export const DEFAULT_DELAY_WARNING_AFTER_MS = 4 * HOUR;

export const DEFAULT_RETRY_SCHEDULE: Readonly<RetrySchedule> = Object.freeze({
  baseMs: DEFAULT_BASE_MS,
  maxMs: DEFAULT_MAX_MS,
  jitter: DEFAULT_JITTER,
  giveUpAfterMs: DEFAULT_GIVE_UP_AFTER_MS,
  delayWarningAfterMs: DEFAULT_DELAY_WARNING_AFTER_MS,
});

function checkOptions(options: BackoffOptions): void {
  const { baseMs, maxMs, jitter } = options;
  if (!(Number.isFinite(baseMs) && baseMs > 0)) throw new RangeError(`baseMs must be a positive number, got ${baseMs}`);
  if (!(Number.isFinite(maxMs) && maxMs >= baseMs)) throw new RangeError(`maxMs must be >= baseMs, got ${maxMs}`);
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`jitter must be within 0..1, got ${jitter}`);
}

/**
 * The wait before the next attempt, after `attempts` failed attempts (values
 * below 1 count as 1). Jitter is applied after the cap, so the longest wait
 * is `maxMs * (1 + jitter)`.
 */
export function backoffMs(attempts: number, options: BackoffOptions): number {
  checkOptions(options);
  const n = Math.max(1, Math.floor(Number.isFinite(attempts) ? attempts : 1));
  // 2^(n-1) overflows to Infinity past n = 1024; min() still gives maxMs, but stop early anyway.
  const exponential = n > 52 ? options.maxMs : options.baseMs * 2 ** (n - 1);
  const wait = Math.min(options.maxMs, exponential);
  const r = (options.random ?? Math.random)();
  // r in [0, 1) maps to a factor in [1 - jitter, 1 + jitter).
  return Math.round(wait * (1 + options.jitter * (2 * r - 1)));
}

/** When to try again after `attempts` failed attempts (see backoffMs). */
export function nextAttempt(attempts: number, now: Date, options: BackoffOptions): Date {
  return new Date(now.getTime() + backoffMs(attempts, options));
}

/** The message has waited at least `giveUpAfterMs` since it arrived. */
export function shouldGiveUp(createdAt: Date, now: Date, giveUpAfterMs: number): boolean {
  return now.getTime() - createdAt.getTime() >= giveUpAfterMs;
}

/**
 * A "delayed" DSN is due: not sent yet, warnings enabled (`delayWarningAfterMs`
 * > 0 and finite), and the message has waited at least that long.
 */
export function shouldWarn(createdAt: Date, now: Date, delayWarningAfterMs: number, alreadyWarned: boolean): boolean {
  if (alreadyWarned || !(delayWarningAfterMs > 0) || !Number.isFinite(delayWarningAfterMs)) return false;
  return now.getTime() - createdAt.getTime() >= delayWarningAfterMs;
}
