import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TwmError } from '../../core/twm-types.ts';
import { createNonceMemory } from './nonces.ts';

const at = (s: number) => new Date(Date.UTC(2026, 10, 30, 10, 0, s));

const NEW_STORE = new Date(0); // nothing seen before: the restart rule has nothing to cover

test('a nonce is accepted once while its signature lives, and forgotten after', () => {
  let now = at(0);
  const m = createNonceMemory({ startedAt: NEW_STORE, now: () => now });
  assert.equal(m.remember('k', 'n1', at(600), at(0)), true);
  assert.equal(m.remember('k', 'n1', at(600), at(0)), false, 'replay');
  assert.equal(m.remember('other', 'n1', at(600), at(0)), true, 'per keyid');
  now = at(601);
  assert.equal(m.remember('k', 'n1', at(1200), at(0)), true, 'past its time the pair is free (the clock check refuses the old signature anyway)');
});

test('after a restart, signatures created up to the restart plus the 300 s skew are stale (5.5): the old process may have accepted them', () => {
  const m = createNonceMemory({ startedAt: at(100), now: () => at(100) });
  const stale = (e: unknown) => e instanceof TwmError && e.problemCode === 'stale-signature';
  assert.throws(() => m.remember('k', 'n', at(700), at(99)), stale);
  // Created 100 s after the restart: the old process could have accepted it (created <= its now + 300).
  assert.throws(() => m.remember('k', 'n', at(700), at(200)), stale);
  assert.throws(() => m.remember('k', 'n', at(1000), at(399)), stale, 'the boundary: restart + 299 s');
  assert.equal(m.remember('k', 'n', at(1000), at(400)), true, 'restart + 300 s: after anything the old process could accept');
});

test('memory is bounded: expired entries make room, live ones are never dropped (503 instead)', () => {
  let now = at(0);
  const m = createNonceMemory({ startedAt: NEW_STORE, maxEntries: 2, now: () => now });
  m.remember('k', 'a', at(10), at(0));
  m.remember('k', 'b', at(20), at(0));
  assert.throws(() => m.remember('k', 'c', at(30), at(0)), (e: unknown) => e instanceof TwmError && e.problemCode === 'temporarily-unavailable');
  now = at(15);
  assert.equal(m.remember('k', 'c', at(30), at(0)), true, 'a expired and made room');
  assert.equal(m.remember('k', 'b', at(20), at(0)), false, 'b is still remembered');
});
