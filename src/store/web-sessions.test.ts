/** Web app sessions in the store: found by id hash until they expire, listed per user, ended one by one or all at once. */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testBackends } from './test-backends.ts';
import { createAccounts } from '../services/accounts.ts';

const backends = await testBackends();
after(() => Promise.all(backends.map((b) => b.cleanup())));

for (const backend of backends) {
  describe(`web sessions (${backend.name})`, { skip: backend.skip }, () => {
    test('create, find, touch, list, remove, expiry and prune', async () => {
      const store = await backend.open();
      try {
        const a = await store.users.create({ address: 'a@example.test', passwordHash: 'x', mode: 'open' });
        const b = await store.users.create({ address: 'b@example.test', passwordHash: 'x', mode: 'open' });
        const t0 = new Date(1_800_000_000_000);
        const base = { csrfSecret: 'c', userAgent: 'UA <b>', client: '127.0.0.1', createdAt: t0, lastSeenAt: t0 };
        const s1 = await store.webSessions.create({ ...base, idHash: 'h1', userId: a.id, expiresAt: new Date(t0.getTime() + 1000) });
        const s2 = await store.webSessions.create({ ...base, idHash: 'h2', userId: a.id, expiresAt: new Date(t0.getTime() + 5000) });
        await store.webSessions.create({ ...base, idHash: 'h3', userId: b.id, expiresAt: new Date(t0.getTime() + 5000) });
        assert.equal((await store.webSessions.find('h1', t0))?.id, s1.id);
        assert.equal((await store.webSessions.find('h1', t0))?.userAgent, 'UA <b>');
        assert.equal(await store.webSessions.find('h1', new Date(t0.getTime() + 1000)), undefined, 'expired at expires_at');
        assert.equal(await store.webSessions.find('nope', t0), undefined);
        await store.webSessions.touch(s1.id, new Date(t0.getTime() + 500), new Date(t0.getTime() + 9000));
        assert.ok(await store.webSessions.find('h1', new Date(t0.getTime() + 2000)), 'touch slides the expiry');
        assert.deepEqual((await store.webSessions.list(a.id, t0)).map((s) => s.id), [s1.id, s2.id], 'most recently seen first');
        assert.equal(await store.webSessions.remove(b.id, s2.id), false, "another user's session is not removable");
        assert.equal(await store.webSessions.remove(a.id, s2.id), true);
        assert.equal(await store.webSessions.find('h2', t0), undefined);
        assert.equal(await store.webSessions.prune(new Date(t0.getTime() + 6000)), 1, "b's expired session");
        assert.equal(await store.webSessions.removeAll(a.id), 1);
        assert.equal(await backend.count('web_sessions'), 0);
      } finally {
        await store.close();
      }
    });

    test('a password change ends every web session of the account', async () => {
      const store = await backend.open();
      try {
        const accounts = createAccounts(store, ['example.test']);
        const u = await accounts.add('u@example.test', 'correct horse battery');
        const now = new Date();
        await store.webSessions.create({ idHash: 'x', userId: u.id, csrfSecret: 'c', userAgent: '', client: '', createdAt: now, lastSeenAt: now, expiresAt: new Date(now.getTime() + 60_000) });
        const res = await accounts.setPassword(u.address, 'another long password');
        assert.equal(res.revokedSessions, 1);
        assert.equal(await store.webSessions.find('x', now), undefined);
      } finally {
        await store.close();
      }
    });
  });
}
