import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkAfterRestart } from './replay-window.ts';

describe('the replay rule after a restart (docs/protocol.md 5.5)', () => {
  const restart = Date.UTC(2026, 11, 4, 12, 0, 0); // a whole second
  const T0 = restart / 1000;

  it('refuses every signature the previous process could have accepted: created up to restart + skew', () => {
    // The old process's last second was T0 - 1, when step 6 accepted created up to T0 - 1 + 300.
    for (const created of [T0 - 900, T0 - 1, T0, T0 + 1, T0 + 299]) {
      assert.equal(checkAfterRestart(created, restart, 300, restart).kind, 'maybe-seen', `created = T0 + ${created - T0}`);
    }
    assert.deepEqual(checkAfterRestart(T0 + 300, restart, 300, restart), { kind: 'fresh' });
  });

  it('rounds a restart inside a second up, never down', () => {
    const mid = restart + 400;
    // Alive until T0 + 0.4, the old process read T0 and accepted created up to T0 + 300.
    assert.equal(checkAfterRestart(T0 + 300, mid, 300, mid).kind, 'maybe-seen');
    assert.equal(checkAfterRestart(T0 + 301, mid, 300, mid).kind, 'fresh');
  });

  it('tells the sender when a new signature will pass', () => {
    assert.deepEqual(checkAfterRestart(T0 + 10, restart, 300, restart + 10_000), { kind: 'maybe-seen', retryAfter: 290 });
    assert.deepEqual(checkAfterRestart(T0 + 299, restart, 300, restart + 299_500), { kind: 'maybe-seen', retryAfter: 1 });
  });
});
