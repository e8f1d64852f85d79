import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPendingTotals } from './pending-totals.ts';

test('a counted total stands in for a second, with the notices recorded since', () => {
  const t = createPendingTotals(10_000, 1000);
  assert.equal(t.estimate(1, 0), undefined, 'never counted: ask the store');
  t.counted(1, 500, 0);
  assert.equal(t.estimate(1, 10), 500);
  t.added(1, 2);
  assert.equal(t.estimate(1, 999), 502);
  assert.equal(t.estimate(1, 1000), undefined, 'a second old: ask again');
  assert.equal(t.estimate(1, -1), undefined, 'a clock that went back: ask again');
  assert.equal(t.estimate(2, 10), undefined, 'per user');
  t.added(2, 1);
  assert.equal(t.estimate(2, 10), undefined, 'additions without a count are no estimate');
});

test('near the cap (within a tenth of it) the store is asked every time, so a deferral rests on a fresh count', () => {
  const t = createPendingTotals(100, 1000);
  t.counted(1, 89, 0);
  assert.equal(t.estimate(1, 1), 89);
  t.added(1, 1);
  assert.equal(t.estimate(1, 1), undefined, '90 of 100');
  const small = createPendingTotals(3, 1000);
  small.counted(1, 1, 0);
  assert.equal(small.estimate(1, 1), 1);
  small.added(1, 1);
  assert.equal(small.estimate(1, 1), undefined, 'a margin of at least one');
});
