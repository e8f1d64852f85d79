import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTokenBuckets } from './token-bucket.ts';

test('a bucket allows its burst, then asks to wait, and refills at its rate', () => {
  const b = createTokenBuckets({ perSecond: 2, burst: 3 });
  assert.deepEqual([b.take('a', 0), b.take('a', 0), b.take('a', 0)], [0, 0, 0]);
  assert.equal(b.take('a', 0), 1);
  assert.equal(b.take('b', 0), 0, 'keys are independent');
  assert.equal(b.take('a', 500), 0, 'one token back after half a second at 2/s');
  assert.equal(b.take('a', 500), 1);
});

test('a slow rate asks for the whole wait, and the map stays bounded', () => {
  const b = createTokenBuckets({ perSecond: 0.1, burst: 1 }, 2);
  assert.equal(b.take('a', 0), 0);
  assert.equal(b.take('a', 0), 10);
  b.take('b', 0);
  b.take('c', 0);
  assert.equal(b.take('a', 0), 0, 'the idle key was dropped to make room, so it starts full');
});

test('giveBack returns one token, never past the burst, and ignores an unknown key', () => {
  const b = createTokenBuckets({ perSecond: 1, burst: 2 });
  assert.deepEqual([b.take('a', 0), b.take('a', 0), b.take('a', 0)], [0, 0, 1]);
  b.giveBack('a');
  assert.equal(b.take('a', 0), 0, 'the token given back');
  assert.equal(b.take('a', 0), 1);
  b.giveBack('a');
  b.giveBack('a');
  b.giveBack('a');
  assert.deepEqual([b.take('a', 0), b.take('a', 0), b.take('a', 0)], [0, 0, 1], 'at most the burst');
  b.giveBack('z');
  assert.deepEqual([b.take('z', 0), b.take('z', 0), b.take('z', 0)], [0, 0, 1], 'an unknown key starts full, no more');
});
