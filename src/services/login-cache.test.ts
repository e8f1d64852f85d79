/**
 * The cache of verified logins (login-cache.ts) alone, and through the
 * accounts service on SQLite and PostgreSQL: a repeated right login costs no
 * scrypt, anything else costs one, and a change made in the store (a new
 * password, a revoked app password, a deleted user) misses at once.
 * scrypt runs are counted (verificationCount), not timed.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword, verificationCount } from '../core/password.ts';
import { testBackends } from '../store/test-backends.ts';
import type { Store } from '../store/types.ts';
import { createLoginCache, type LoginCache, type SecretOwner } from './login-cache.ts';
import { createServices } from './index.ts';

const HASH = 'scrypt$16384$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5';
const USER = { kind: 'user', id: 1 } as const;

/** A stand-in scrypt: counts its runs, answers `right`, after `delayMs`. */
function fakeScrypt(right: boolean, delayMs = 0) {
  const f = Object.assign(
    async () => {
      f.runs++;
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      return right;
    },
    { runs: 0 },
  );
  return f;
}
/** scrypt runs of one verification through the cache, and its answer. */
async function runs(cache: LoginCache, owner: SecretOwner, hash: string, password: string, right = true): Promise<[number, boolean]> {
  const scrypt = fakeScrypt(right);
  const ok = await cache.verify(owner, hash, password, scrypt);
  return [scrypt.runs, ok];
}

describe('login cache', () => {
  test('a hit only for the same owner, stored hash and password, within the TTL', async () => {
    let t = 1_000_000;
    const cache = createLoginCache({ ttlMs: 60_000, now: () => t });
    assert.deepEqual(await runs(cache, USER, HASH, 'right password'), [1, true]);
    assert.deepEqual(await runs(cache, USER, HASH, 'right password'), [0, true]);
    assert.deepEqual(await runs(cache, USER, HASH, 'right passwordX', false), [1, false], 'another password');
    assert.deepEqual(await runs(cache, USER, `${HASH}x`, 'right password', false), [1, false], 'another stored hash (a password change)');
    assert.deepEqual(await runs(cache, { kind: 'user', id: 2 }, HASH, 'right password', false), [1, false], 'another user');
    assert.deepEqual(await runs(cache, { kind: 'app', id: 1 }, HASH, 'right password', false), [1, false], 'an app password of the same number');
    t += 59_999;
    assert.deepEqual(await runs(cache, USER, HASH, 'right password'), [0, true], 'hits do not extend the TTL, but it is not over yet');
    t += 1;
    assert.equal(cache.size, 1);
    assert.deepEqual(await runs(cache, USER, HASH, 'right password'), [1, true], 'expired: scrypt again');
    assert.equal(cache.size, 1);
  });

  test('failures are never remembered', async () => {
    const cache = createLoginCache({ ttlMs: 60_000 });
    assert.deepEqual(await runs(cache, USER, HASH, 'guess', false), [1, false]);
    assert.deepEqual(await runs(cache, USER, HASH, 'guess', false), [1, false]);
    assert.equal(cache.size, 0);
  });

  test('bounded: the oldest go first, expired ones on the next add', async () => {
    let t = 0;
    const cache = createLoginCache({ ttlMs: 1000, maxEntries: 3, now: () => t });
    for (const id of [1, 2, 3, 4]) await runs(cache, { kind: 'user', id }, HASH, 'pw');
    assert.equal(cache.size, 3);
    assert.deepEqual(await runs(cache, { kind: 'user', id: 4 }, HASH, 'pw'), [0, true]);
    assert.deepEqual(await runs(cache, { kind: 'user', id: 1 }, HASH, 'pw'), [1, true], 'the oldest was evicted');
    t = 1000;
    await runs(cache, { kind: 'user', id: 5 }, HASH, 'pw');
    assert.equal(cache.size, 1, 'the expired ones went');
  });

  test('TTL 0 remembers nothing; empty and over-long passwords are never remembered', async () => {
    const off = createLoginCache({ ttlMs: 0 });
    assert.deepEqual(await runs(off, USER, HASH, 'pw'), [1, true]);
    assert.deepEqual(await runs(off, USER, HASH, 'pw'), [1, true]);
    assert.equal(off.size, 0);
    const on = createLoginCache({ ttlMs: 1000 });
    await runs(on, USER, HASH, '');
    await runs(on, USER, HASH, 'x'.repeat(1025));
    assert.equal(on.size, 0);
  });

  test('logins at the same time share one scrypt if it succeeds; if it fails, each pays its own', async () => {
    const cache = createLoginCache({ ttlMs: 60_000 });
    const right = fakeScrypt(true, 5);
    assert.deepEqual(await Promise.all([1, 2, 3].map(() => cache.verify(USER, HASH, 'pw', right))), [true, true, true]);
    assert.equal(right.runs, 1);
    const wrong = fakeScrypt(false, 5);
    assert.deepEqual(await Promise.all([1, 2, 3].map(() => cache.verify(USER, HASH, 'guess', wrong))), [false, false, false]);
    assert.equal(wrong.runs, 3);
  });
});

const backends = await testBackends();
after(() => Promise.all(backends.map((b) => b.cleanup())));

for (const backend of backends) {
  describe(`logins through the cache (${backend.name})`, { skip: backend.skip }, () => {
    async function withServices(ttlMs: number, run: (s: ReturnType<typeof createServices>, clock: { ms: number }, store: Store) => Promise<void>) {
      const store = await backend.open();
      const clock = { ms: Date.now() };
      try {
        await run(createServices(store, ['example.test'], undefined, { loginCacheMs: ttlMs, now: () => new Date(clock.ms) }), clock, store);
      } finally {
        await store.close();
      }
    }
    /** scrypt runs of one login, and whether it succeeded. */
    async function cost(s: ReturnType<typeof createServices>, address: string, password: string, client?: string): Promise<[number, boolean]> {
      const before = verificationCount();
      const ok = await s.accounts.authenticate(address, password, client).then(
        () => true,
        () => false,
      );
      return [verificationCount() - before, ok];
    }

    test('a repeated right login costs no scrypt; a wrong one always costs one; expiry by the clock', async () => {
      await withServices(5 * 60_000, async (s, clock) => {
        await s.accounts.add('u@example.test', 'right password one', 'open');
        assert.deepEqual(await cost(s, 'u@example.test', 'right password one', '192.0.2.1'), [1, true], 'first login');
        assert.deepEqual(await cost(s, 'u@example.test', 'right password one', '192.0.2.1'), [0, true], 'cached');
        assert.deepEqual(await cost(s, 'U@Example.Test', 'right password one'), [0, true], 'another spelling of the address');
        assert.deepEqual(await cost(s, 'u@example.test', 'wrong password'), [1, false], 'a wrong password after a cached success');
        assert.deepEqual(await cost(s, 'u@example.test', 'right password one '), [1, false]);
        assert.deepEqual(await cost(s, 'nobody@example.test', 'right password one'), [1, false], 'an unknown user');
        clock.ms += 5 * 60_000 - 1;
        assert.deepEqual(await cost(s, 'u@example.test', 'right password one'), [0, true], 'within the TTL');
        clock.ms += 1;
        assert.deepEqual(await cost(s, 'u@example.test', 'right password one'), [1, true], 'expired: scrypt again');
        assert.deepEqual(await cost(s, 'u@example.test', 'right password one'), [0, true]);
      });
    });

    test('a password change and a revoked app password apply at once, on every node', async () => {
      await withServices(5 * 60_000, async (s, _clock, store) => {
        const u = await s.accounts.add('v@example.test', 'old password here', 'open');
        const app = await s.accounts.addAppPassword(u, 'phone');
        const other = await s.accounts.addAppPassword(u, 'laptop');
        for (const pw of ['old password here', app.password, other.password]) {
          assert.deepEqual(await cost(s, 'v@example.test', pw), [1, true]);
          assert.deepEqual(await cost(s, 'v@example.test', pw), [0, true]);
        }
        const principal = await s.accounts.authenticate('v@example.test', app.password);
        assert.equal(principal.appPassword?.id, app.id, 'a cached app-password login keeps its app password and scope');
        assert.equal(principal.appPassword?.scope, 'all');
        assert.ok((await s.accounts.listAppPasswords(u)).find((a) => a.id === app.id)?.lastUsedAt, 'and is recorded as used');

        await s.accounts.revokeAppPassword(u, app.id);
        assert.deepEqual(await cost(s, 'v@example.test', app.password), [1, false], 'revoked: checked against the account password, and fails');
        assert.deepEqual(await cost(s, 'v@example.test', other.password), [0, true], 'the other app password stays cached');

        await s.accounts.setPassword('v@example.test', 'new password here', { appPasswords: true });
        assert.deepEqual(await cost(s, 'v@example.test', 'old password here'), [1, false], 'the old password fails at once');
        assert.deepEqual(await cost(s, 'v@example.test', 'new password here'), [1, true]);
        assert.deepEqual(await cost(s, 'v@example.test', 'new password here'), [0, true]);

        // Another node wrote a new hash to the shared store: this node's cache misses too, whether
        // the new hash is of the same password (a new salt) or of another.
        await store.users.setPasswordHash(u.id, await hashPassword('new password here'));
        assert.deepEqual(await cost(s, 'v@example.test', 'new password here'), [1, true], 'a new hash of the same password: scrypt again');
        await store.users.setPasswordHash(u.id, await hashPassword('changed on another node'));
        assert.deepEqual(await cost(s, 'v@example.test', 'new password here'), [1, false], 'changed elsewhere: fails at once');
        assert.deepEqual(await cost(s, 'v@example.test', 'changed on another node'), [1, true]);
      });
    });

    test('TTL 0: every login costs one scrypt', async () => {
      await withServices(0, async (s) => {
        const u = await s.accounts.add('w@example.test', 'right password two', 'open');
        const app = await s.accounts.addAppPassword(u, 'phone');
        for (let i = 0; i < 3; i++) {
          assert.deepEqual(await cost(s, 'w@example.test', 'right password two'), [1, true]);
          assert.deepEqual(await cost(s, 'w@example.test', app.password), [1, true]);
        }
      });
    });
  });
}
