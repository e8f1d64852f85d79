import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TwmError } from '../core/twm-types.ts';
import { createNonceMemory } from './twm-nonces.ts';

const at = (s: number) => new Date(Date.UTC(2026, 10, 30, 10, 0, s));

test('a nonce is accepted once while its signature lives, and forgotten after', () => {
  let now = at(0);
  const m = createNonceMemory({ startedAt: at(0), now: () => now });
  assert.equal(m.remember('k', 'n1', at(600), at(0)), true);
  assert.equal(m.remember('k', 'n1', at(600), at(0)), false, 'replay');
  assert.equal(m.remember('other', 'n1', at(600), at(0)), true, 'per keyid');
  now = at(601);
  assert.equal(m.remember('k', 'n1', at(1200), at(0)), true, 'past its time the pair is free (the clock check refuses the old signature anyway)');
});

test('signatures created before the process started are stale (5.5), so a restart cannot admit a replay', () => {
  const m = createNonceMemory({ startedAt: at(100), now: () => at(100) });
  assert.throws(() => m.remember('k', 'n', at(700), at(99)), (e: unknown) => e instanceof TwmError && e.problemCode === 'stale-signature');
  assert.equal(m.remember('k', 'n', at(700), at(100)), true);
});

test('memory is bounded: expired entries make room, live ones are never dropped (503 instead)', () => {
  let now = at(0);
  const m = createNonceMemory({ startedAt: at(0), maxEntries: 2, now: () => now });
  m.remember('k', 'a', at(10), at(0));
  m.remember('k', 'b', at(20), at(0));
  assert.throws(() => m.remember('k', 'c', at(30), at(0)), (e: unknown) => e instanceof TwmError && e.problemCode === 'temporarily-unavailable');
  now = at(15);
  assert.equal(m.remember('k', 'c', at(30), at(0)), true, 'a expired and made room');
  assert.equal(m.remember('k', 'b', at(20), at(0)), false, 'b is still remembered');
});
