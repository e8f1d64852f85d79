import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideRetry, type RetryDecision, type RetryInput } from './retry-decision.ts';
import type { RetrySchedule } from './retry-schedule.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const schedule: RetrySchedule = { baseMs: 5 * MINUTE, maxMs: 4_000_000, jitter: 0.1, giveUpAfterMs: 5 * DAY, delayWarningAfterMs: 4 * HOUR };
const createdAt = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(createdAt.getTime() + ms);
// random() = 0.5 is the middle of the jitter: no spread.
const base: RetryInput = { result: 'deferred', previousAttempts: 0, warned: false, createdAt, now: at(0), schedule, random: () => 0.5 };

const table: Array<[string, Partial<RetryInput>, RetryDecision]> = [
  ['delivered is final, whatever came before', { result: 'delivered', previousAttempts: 7, now: at(6 * DAY) }, { next: 'delivered' }],
  ['first temporary failure: base backoff', {}, { next: 'deferred', attempts: 1, nextAttemptAt: at(5 * MINUTE), warn: false }],
  ['third temporary failure: backoff doubles twice', { previousAttempts: 2, now: at(HOUR) }, { next: 'deferred', attempts: 3, nextAttemptAt: at(HOUR + 20 * MINUTE), warn: false }],
  ['backoff is capped at maxMs', { previousAttempts: 20, now: at(HOUR) }, { next: 'deferred', attempts: 21, nextAttemptAt: at(HOUR + 4_000_000), warn: false }],
  ['jitter spreads the wait (random 0: -10 %)', { random: () => 0 }, { next: 'deferred', attempts: 1, nextAttemptAt: at(4.5 * MINUTE), warn: false }],
  ['the warning is due after delayWarningAfterMs', { previousAttempts: 4, now: at(4 * HOUR) }, { next: 'deferred', attempts: 5, nextAttemptAt: at(4 * HOUR + 4_000_000), warn: true }],
  ['only one warning', { previousAttempts: 5, warned: true, now: at(5 * HOUR) }, { next: 'deferred', attempts: 6, nextAttemptAt: at(5 * HOUR + 4_000_000), warn: false }],
  ['warnings disabled (0)', { previousAttempts: 4, now: at(4 * HOUR), schedule: { ...schedule, delayWarningAfterMs: 0 } }, { next: 'deferred', attempts: 5, nextAttemptAt: at(4 * HOUR + 4_000_000), warn: false }],
  [
    'the next attempt is never after the give-up deadline',
    { previousAttempts: 30, warned: true, now: at(5 * DAY - MINUTE) },
    { next: 'deferred', attempts: 31, nextAttemptAt: at(5 * DAY), warn: false },
  ],
  ['temporary at the deadline: given up', { previousAttempts: 31, warned: true, now: at(5 * DAY) }, { next: 'failed', gaveUp: true, attempts: 32, retryAt: at(5 * DAY + 4_000_000) }],
  ['a permanent refusal fails at once', { result: 'failed' }, { next: 'failed', gaveUp: false, attempts: 1, retryAt: at(5 * MINUTE) }],
  ['a permanent refusal after deferrals counts the attempts', { result: 'failed', previousAttempts: 2, now: at(HOUR) }, { next: 'failed', gaveUp: false, attempts: 3, retryAt: at(HOUR + 20 * MINUTE) }],
];

for (const [name, input, expected] of table) {
  test(`retry decision: ${name}`, () => {
    assert.deepEqual(decideRetry({ ...base, ...input }), expected);
  });
}

test('retry decision: a bad schedule is a RangeError, not a silent decision', () => {
  assert.throws(() => decideRetry({ ...base, schedule: { ...schedule, baseMs: 0 } }), RangeError);
});
