/**
 * Testing mode's first-copy records (migration 0017, docs/protocol.md 6.6)
 * on SQLite and PostgreSQL: the first channel wins per user, a retry of the
 * same channel is still "first", another sender domain or Message-ID is
 * another message, two claims at once leave exactly one winner, and pruning
 * forgets old records. And the failure-report counters of the same
 * migration.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();
after(() => Promise.all(backends.map((b) => b.cleanup())));

for (const backend of backends) {
  describe(`TWM first copies (${backend.name})`, { skip: backend.skip }, () => {
    test('the first channel per user wins; pruning forgets', async () => {
      const store = await backend.open();
      try {
        const u1 = (await store.users.create({ address: 'a@example.test', passwordHash: 'x', mode: 'open' })).id;
        const u2 = (await store.users.create({ address: 'b@example.test', passwordHash: 'x', mode: 'open' })).id;
        const m = store.messages;
        const at = new Date(1_000_000);
        assert.deepEqual(await m.claimFirstCopy([u1], 'T.example', '<1@t.example>', 'twm', at), [u1]);
        assert.deepEqual(await m.claimFirstCopy([u1, u2], 't.example', '<1@t.example>', 'smtp', at), [u2], 'u1 had the TWM copy: second');
        assert.deepEqual(await m.claimFirstCopy([u1], 't.example', '<1@t.example>', 'twm', at), [u1], 'a refetch of the first channel');
        assert.deepEqual(await m.claimFirstCopy([u1], 'other.example', '<1@t.example>', 'smtp', at), [u1], 'another domain: another message');
        assert.deepEqual(await m.claimFirstCopy([u1], 't.example', '<2@t.example>', 'smtp', at), [u1]);
        // At once: one winner.
        const [x, y] = await Promise.all([
          m.claimFirstCopy([u1, u2], 't.example', '<3@t.example>', 'twm', at),
          m.claimFirstCopy([u1, u2], 't.example', '<3@t.example>', 'smtp', at),
        ]);
        assert.deepEqual([...x!, ...y!].sort(), [u1, u2].sort());
        assert.equal(await m.pruneCopies(new Date(1_000_001)), 6);
        assert.deepEqual(await m.claimFirstCopy([u1], 't.example', '<1@t.example>', 'smtp', at), [u1], 'forgotten');
      } finally {
        await store.close();
      }
    });

    test('failure-report counters: incremented in place, finished days listed, removed per (domain, day)', async () => {
      const store = await backend.open();
      try {
        const r = store.twmReports;
        const one = (domain: string, day: string, resultType: string, n = 1) => ({ domain, day, resultType, n });
        // Concurrent batches add up (the server flushes its in-memory counts every second, from each process).
        await Promise.all([r.add([one('X.example', '2026-12-03', 'unknown-key')]), r.add([one('x.example', '2026-12-03', 'unknown-key'), one('x.example', '2026-12-03', 'success')])]);
        await r.add([one('y.example', '2026-12-03', 'fetch-unreachable'), one('x.example', '2026-12-04', 'success', 3)]);
        await r.add([]);
        assert.deepEqual(await r.counts('x.example', '2026-12-03'), new Map([['unknown-key', 2], ['success', 1]]));
        assert.deepEqual(await r.finished('2026-12-04', 10), [{ domain: 'x.example', day: '2026-12-03' }, { domain: 'y.example', day: '2026-12-03' }]);
        assert.deepEqual(await r.finished('2026-12-04', 1), [{ domain: 'x.example', day: '2026-12-03' }]);
        assert.deepEqual(await r.counts('x.example', '2026-12-04'), new Map([['success', 3]]));
        await r.remove('x.example', '2026-12-03');
        assert.deepEqual(await r.finished('2026-12-05', 10), [{ domain: 'y.example', day: '2026-12-03' }, { domain: 'x.example', day: '2026-12-04' }]);
      } finally {
        await store.close();
      }
    });
  });
}
