/**
 * The queue's retry decision for one recipient after one delivery attempt
 * (pure: the caller passes the clock and the random source). What the
 * attempt answered, how many attempts came before, when the message arrived
 * and the schedule decide the next state; the queue worker
 * (delivery/queue-worker.ts) turns it into a stored state and, where one is
 * due, a DSN.
 *
 * - `delivered`: done.
 * - `failed`: a permanent refusal (`gaveUp` false), or still temporary after
 *   `schedule.giveUpAfterMs` since arrival (`gaveUp` true). `retryAt` is for
 *   the caller that cannot report the failure yet: it then retries instead.
 * - `deferred`: try again at `nextAttemptAt` (never after the give-up
 *   deadline, so giving up happens on time rather than one backoff late);
 *   `warn` when the one "delayed" warning is due now.
 */
import { nextAttempt, shouldGiveUp, shouldWarn, type RetrySchedule } from './retry-schedule.ts';

export interface RetryInput {
  /** What the attempt answered for this recipient. */
  result: 'delivered' | 'deferred' | 'failed';
  /** Failed attempts before this one (0 for the first). */
  previousAttempts: number;
  /** The "delayed" warning was sent already. */
  warned: boolean;
  /** When the message arrived (the schedule counts from here). */
  createdAt: Date;
  now: Date;
  schedule: RetrySchedule;
  /** Uniform in [0, 1), for the backoff jitter. */
  random: () => number;
}

export type RetryDecision =
  | { next: 'delivered' }
  | { next: 'failed'; gaveUp: boolean; attempts: number; retryAt: Date }
  | { next: 'deferred'; attempts: number; nextAttemptAt: Date; warn: boolean };

export function decideRetry(input: RetryInput): RetryDecision {
  const { now, schedule, createdAt } = input;
  if (input.result === 'delivered') return { next: 'delivered' };
  const attempts = input.previousAttempts + 1;
  const retryAt = nextAttempt(attempts, now, { baseMs: schedule.baseMs, maxMs: schedule.maxMs, jitter: schedule.jitter, random: input.random });
  if (input.result === 'failed') return { next: 'failed', gaveUp: false, attempts, retryAt };
  if (shouldGiveUp(createdAt, now, schedule.giveUpAfterMs)) return { next: 'failed', gaveUp: true, attempts, retryAt };
  const deadline = createdAt.getTime() + schedule.giveUpAfterMs;
  return {
    next: 'deferred',
    attempts,
    nextAttemptAt: new Date(Math.min(retryAt.getTime(), deadline)),
    warn: shouldWarn(createdAt, now, schedule.delayWarningAfterMs, input.warned),
  };
}
