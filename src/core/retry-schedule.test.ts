import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffMs,
  DEFAULT_BASE_MS,
  DEFAULT_DELAY_WARNING_AFTER_MS,
  DEFAULT_GIVE_UP_AFTER_MS,
  DEFAULT_MAX_MS,
  DEFAULT_RETRY_SCHEDULE,
  nextAttempt,
  shouldGiveUp,
  shouldWarn,
  type BackoffOptions,
} from './retry-schedule.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const now = new Date('2024-06-01T12:00:00.000Z');
const at = (ms: number) => new Date(now.getTime() + ms);
/** random() = 0.5 is the middle of the jitter band: no spread. */
const middle = () => 0.5;

test('defaults are Postfix-like and RFC 5321 section 4.5.4.1 compliant', () => {
  assert.equal(DEFAULT_BASE_MS, 300_000);
  assert.equal(DEFAULT_MAX_MS, 4_000_000);
  assert.equal(DEFAULT_GIVE_UP_AFTER_MS, 5 * DAY);
  assert.equal(DEFAULT_DELAY_WARNING_AFTER_MS, 4 * HOUR);
  assert.deepEqual(
    { ...DEFAULT_RETRY_SCHEDULE },
    { baseMs: 300_000, maxMs: 4_000_000, jitter: 0.1, giveUpAfterMs: 5 * DAY, delayWarningAfterMs: 4 * HOUR },
  );
  assert.ok(Object.isFrozen(DEFAULT_RETRY_SCHEDULE));
});

test('nextAttempt: exponential from base, capped at max (no jitter)', () => {
  const options: BackoffOptions = { baseMs: 5 * MIN, maxMs: 4_000_000, jitter: 0 };
  const rows: Array<[attempts: number, waitMs: number]> = [
    [0, 5 * MIN], // below 1 counts as the first attempt
    [1, 5 * MIN],
    [2, 10 * MIN],
    [3, 20 * MIN],
    [4, 40 * MIN],
    [5, 4_000_000], // 80 min capped at 4000 s
    [6, 4_000_000],
    [60, 4_000_000],
    [5000, 4_000_000], // 2^4999 would be Infinity
    [2.7, 10 * MIN], // fractions round down
    [Number.NaN, 5 * MIN],
  ];
  for (const [attempts, wait] of rows) {
    assert.deepEqual(nextAttempt(attempts, now, options), at(wait), `attempts ${attempts}`);
  }
});

test('nextAttempt: jitter spreads the wait by ± jitter around the capped value', () => {
  const base = { baseMs: 10 * MIN, maxMs: 40 * MIN, jitter: 0.2 };
  const rows: Array<[attempts: number, random: number, waitMs: number]> = [
    [1, 0, 8 * MIN], // lowest: -20 %
    [1, 0.5, 10 * MIN],
    [1, 0.75, 11 * MIN],
    [1, 0.999_999, 12 * MIN], // just under +20 % (rounded to the ms)
    [3, 0, 32 * MIN], // 40 min, at the cap
    [9, 0.999_999, 48 * MIN - 1], // cap then jitter: may exceed max by jitter
  ];
  for (const [attempts, random, wait] of rows) {
    const got = nextAttempt(attempts, now, { ...base, random: () => random }).getTime() - now.getTime();
    assert.equal(got, wait, `attempts ${attempts}, random ${random}`);
  }
  // Full jitter (1) never gives a negative wait.
  assert.equal(backoffMs(1, { ...base, jitter: 1, random: () => 0 }), 0);
});

test('nextAttempt: uses Math.random when no random is given, within the band', () => {
  for (let i = 0; i < 200; i++) {
    const wait = backoffMs(2, { baseMs: 1000, maxMs: 10_000, jitter: 0.5 });
    assert.ok(wait >= 1000 && wait <= 3000, `wait ${wait}`);
  }
  assert.equal(backoffMs(2, { baseMs: 1000, maxMs: 10_000, jitter: 0.5, random: middle }), 2000);
});

test('nextAttempt: rejects nonsense options', () => {
  const rows: BackoffOptions[] = [
    { baseMs: 0, maxMs: 10, jitter: 0 },
    { baseMs: -1, maxMs: 10, jitter: 0 },
    { baseMs: Number.NaN, maxMs: 10, jitter: 0 },
    { baseMs: 10, maxMs: 5, jitter: 0 },
    { baseMs: 10, maxMs: Number.POSITIVE_INFINITY, jitter: 0 },
    { baseMs: 10, maxMs: 20, jitter: -0.1 },
    { baseMs: 10, maxMs: 20, jitter: 1.5 },
    { baseMs: 10, maxMs: 20, jitter: Number.NaN },
  ];
  for (const options of rows) assert.throws(() => nextAttempt(1, now, options), RangeError, JSON.stringify(options));
});

test('shouldGiveUp: from the arrival time, at or past the limit', () => {
  const rows: Array<[ageMs: number, limitMs: number, expected: boolean]> = [
    [0, 5 * DAY, false],
    [5 * DAY - 1, 5 * DAY, false],
    [5 * DAY, 5 * DAY, true],
    [6 * DAY, 5 * DAY, true],
    [-HOUR, 5 * DAY, false], // clock went backwards
    [0, 0, true], // a zero limit gives up at once
  ];
  for (const [age, limit, expected] of rows) {
    assert.equal(shouldGiveUp(now, at(age), limit), expected, `age ${age}, limit ${limit}`);
  }
});

test('shouldWarn: once, after the warning time, unless disabled', () => {
  const rows: Array<[ageMs: number, afterMs: number, warned: boolean, expected: boolean]> = [
    [4 * HOUR - 1, 4 * HOUR, false, false],
    [4 * HOUR, 4 * HOUR, false, true],
    [2 * DAY, 4 * HOUR, false, true],
    [2 * DAY, 4 * HOUR, true, false], // already warned
    [2 * DAY, 0, false, false], // 0 disables (Postfix delay_warning_time = 0)
    [2 * DAY, -1, false, false],
    [2 * DAY, Number.POSITIVE_INFINITY, false, false],
    [2 * DAY, Number.NaN, false, false],
  ];
  for (const [age, after, warned, expected] of rows) {
    assert.equal(shouldWarn(now, at(age), after, warned), expected, `age ${age}, after ${after}, warned ${warned}`);
  }
});
