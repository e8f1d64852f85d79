import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orderSrvTargets, type SrvTarget } from './srv-order.ts';

const srv = (target: string, priority: number, weight: number): SrvTarget => ({ target, port: 443, priority, weight });
const names = (list: SrvTarget[]) => list.map((r) => r.target);

test('lower priority first, whatever the weights', () => {
  const records = [srv('c', 30, 100), srv('a', 10, 0), srv('b', 20, 5)];
  for (const r of [0, 0.5, 0.999]) assert.deepEqual(names(orderSrvTargets(records, () => r)), ['a', 'b', 'c']);
});

test('within a priority, the draw walks the running weight sum', () => {
  const records = [srv('x', 10, 1), srv('y', 10, 3)];
  // total 4: draws 0..1 pick x (running sum 1), 2..4 pick y (running sum 4).
  assert.deepEqual(names(orderSrvTargets(records, () => 0)), ['x', 'y']);
  assert.deepEqual(names(orderSrvTargets(records, () => 0.3)), ['x', 'y']);
  assert.deepEqual(names(orderSrvTargets(records, () => 0.5)), ['y', 'x']);
  assert.deepEqual(names(orderSrvTargets(records, () => 0.99)), ['y', 'x']);
});

test('weight-0 records come last unless the draw is exactly 0', () => {
  const records = [srv('heavy', 10, 10), srv('zero', 10, 0)];
  assert.deepEqual(names(orderSrvTargets(records, () => 0.5)), ['heavy', 'zero']);
  assert.deepEqual(names(orderSrvTargets(records, () => 0)), ['zero', 'heavy']);
});

test('weights share the first place in proportion', () => {
  const records = [srv('one', 10, 1), srv('three', 10, 3)];
  let state = 42;
  // A small deterministic LCG, so the test is not flaky.
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  let threeFirst = 0;
  const runs = 4000;
  for (let i = 0; i < runs; i++) if (orderSrvTargets(records, random)[0]!.target === 'three') threeFirst++;
  // Draws 0..4: 'one' wins on 0 and 1 (2 of 5), 'three' on 2..4 (3 of 5).
  assert.ok(Math.abs(threeFirst / runs - 0.6) < 0.05, `three first ${threeFirst}/${runs}`);
});

test('all records are kept, none twice', () => {
  const records = [srv('a', 1, 0), srv('b', 1, 0), srv('c', 2, 7), srv('d', 2, 7), srv('e', 2, 0)];
  const out = orderSrvTargets(records);
  assert.deepEqual(names(out).sort(), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(new Set(names(out.slice(0, 2))), new Set(['a', 'b']));
});
