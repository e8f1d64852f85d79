/** The throttle's counting rules as a table: per (client, account), per client, and what a success clears. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../core/errors.ts';
import { createAuthThrottle } from './auth-throttle.ts';

const locked = (fn: () => void) => {
  try {
    fn();
    return false;
  } catch (err) {
    if (err instanceof DomainError && err.kind === 'throttled') return true;
    throw err;
  }
};

describe('auth throttle', () => {
  it("locks a (client, account) pair after maxFailures; another client's or account's count is apart", async () => {
    const t = createAuthThrottle({ maxFailures: 3, maxClientFailures: 10, stepMs: 0 });
    for (let i = 0; i < 3; i++) await t.fail('10.0.0.1', 'alice@d.test');
    assert.equal(locked(() => t.check('10.0.0.1', 'alice@d.test')), true);
    assert.equal(locked(() => t.check('10.0.0.1', 'bob@d.test')), false, 'the same client may still log in to another account');
    assert.equal(locked(() => t.check('10.0.0.2', 'alice@d.test')), false, 'another client is not locked out');
  });

  it("a success clears its own pair only: guess, log in to one's own account, guess again: locked", async () => {
    const t = createAuthThrottle({ maxFailures: 5, maxClientFailures: 20, stepMs: 0 });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 4 && !locked(() => t.check('10.0.0.1', 'alice@d.test')); i++) await t.fail('10.0.0.1', 'alice@d.test');
      t.check('10.0.0.1', 'bob@d.test');
      t.succeed('10.0.0.1', 'bob@d.test');
    }
    assert.equal(locked(() => t.check('10.0.0.1', 'alice@d.test')), true);
    // Alice's own success clears her pair.
    t.succeed('10.0.0.1', 'alice@d.test');
    assert.equal(locked(() => t.check('10.0.0.1', 'alice@d.test')), false);
  });

  it('locks a client spraying many accounts at maxClientFailures, whatever its successes', async () => {
    const t = createAuthThrottle({ maxFailures: 5, maxClientFailures: 6, stepMs: 0 });
    for (let i = 0; i < 6; i++) {
      await t.fail('10.0.0.1', `user${i}@d.test`);
      t.succeed('10.0.0.1', 'bob@d.test');
    }
    assert.equal(locked(() => t.check('10.0.0.1', 'bob@d.test')), true);
    assert.equal(locked(() => t.check('10.0.0.2', 'bob@d.test')), false);
  });

  it('forgets failures after the window', async () => {
    const t = createAuthThrottle({ maxFailures: 1, maxClientFailures: 1, stepMs: 0, windowMs: 30 });
    await t.fail('10.0.0.1', 'alice@d.test');
    assert.equal(locked(() => t.check('10.0.0.1', 'alice@d.test')), true);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(locked(() => t.check('10.0.0.1', 'alice@d.test')), false);
  });
});
