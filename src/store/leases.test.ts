/**
 * Work claimed in the store (migration 0010), against every backend: queue
 * and TWM claims with leases, takeover of expired leases, late writes
 * refused, concurrent claimers on two connections never sharing an entry,
 * cluster leases for sweeps, and TWM nonces shared by every process.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openStore } from './open.ts';
import type { Store, TwmInNotice } from './types.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();
const raw = Buffer.from('From: a@example.com\r\nSubject: out\r\n\r\nhello\r\n');
const T0 = Date.parse('2024-06-01T12:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);
const lease = (owner: string, untilS: number) => ({ owner, until: at(untilS) });

function notice(id: string): TwmInNotice {
  return {
    senderDomain: 'example.org',
    id,
    contentSha256: 'cd'.repeat(32),
    from: 'stranger@example.org',
    to: ['alice@recv.test', 'bob@recv.test'],
    size: 10,
    sha256: 'ef'.repeat(32),
    createdAt: at(0),
    expiresAt: at(7 * 24 * 3600),
    intro: null,
    purpose: null,
    listId: null,
    receivedAt: at(1),
  };
}

for (const backend of backends) {
  describe(`claims and leases (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    beforeEach(async () => {
      store = await backend.open();
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    async function enqueue(n: number, recipients = ['r@one.test']): Promise<number[]> {
      const ids: number[] = [];
      for (let i = 0; i < n; i++) {
        const entries = await store.queue.enqueue({ messageId: `<m${i}-${recipients.length}@x>`, sender: 's@x', recipients, raw, at: at(i) });
        ids.push(...entries.map((e) => e.id));
      }
      return ids;
    }

    test('a claimed queue entry is not claimed again until its lease expires, then it is taken over', async () => {
      const ids = await enqueue(3);
      const a = await store.queue.claim(at(10), 2, lease('node-a', 70));
      assert.deepEqual(a.map((e) => e.id), ids.slice(0, 2), 'oldest first, up to the limit');
      const b = await store.queue.claim(at(20), 10, lease('node-b', 200));
      assert.deepEqual(b.map((e) => e.id), [ids[2]], "node-a's live leases are left alone");
      assert.deepEqual(await store.queue.claim(at(30), 10, lease('node-c', 90)), []);
      // node-a dies: at 70 its leases expire and node-c takes them over.
      assert.deepEqual((await store.queue.claim(at(70), 10, lease('node-c', 130))).map((e) => e.id), ids.slice(0, 2));
      // node-a wakes up: its late write is refused, node-c's counts.
      const delivered = { state: 'delivered' as const, deliveredAt: at(71), reply: '250 ok' };
      assert.equal(await store.queue.update(ids[0]!, delivered, 'node-a'), false, 'a late write is refused');
      assert.equal((await store.queue.get(ids[0]!))?.status.state, 'scheduled');
      assert.equal(await store.queue.update(ids[0]!, delivered, 'node-c'), true);
      assert.equal((await store.queue.get(ids[0]!))?.status.state, 'delivered');
      // A write ends the lease: deferred and due again, anyone may claim it.
      const deferred = { state: 'deferred' as const, nextAttemptAt: at(100), attempts: 1, lastError: '451 later' };
      assert.equal(await store.queue.update(ids[1]!, deferred, 'node-c'), true);
      assert.deepEqual((await store.queue.claim(at(100), 10, lease('node-b', 160))).map((e) => e.id), [ids[1]]);
      // An administrator's write (no owner) always applies.
      assert.equal(await store.queue.update(ids[2]!, delivered), true);
    });

    test('outcomes written at the same moment (one shared commit) are each refused or applied on their own lease', async () => {
      const ids = await enqueue(4);
      await store.queue.claim(at(10), 2, lease('node-a', 70));
      await store.queue.claim(at(10), 2, lease('node-b', 70));
      const delivered = { state: 'delivered' as const, deliveredAt: at(20), reply: '250 ok' };
      // Started together, so the queue's group commit takes them in one transaction.
      const results = await Promise.all([
        store.queue.update(ids[0]!, delivered, 'node-a'),
        store.queue.update(ids[1]!, delivered, 'node-b'),
        store.queue.update(ids[2]!, delivered, 'node-b'),
        store.queue.update(ids[3]!, delivered, 'node-a'),
      ]);
      assert.deepEqual(results, [true, false, true, false]);
      const states = await Promise.all(ids.map(async (id) => (await store.queue.get(id))?.status.state));
      assert.deepEqual(states, ['delivered', 'scheduled', 'delivered', 'scheduled']);
    });

    test("a restarted process takes back its dead predecessor's leases at once, and no one else's", async () => {
      const ids = await enqueue(3);
      await store.queue.claim(at(10), 1, lease('host:d1:0/100:aa', 600));
      await store.queue.claim(at(10), 1, lease('host:d1:1/101:bb', 600));
      await store.queue.claim(at(10), 1, lease('host:d1:00/102:cc', 600));
      await store.leases.acquire('sweeps', 'host:d1:0/100:aa', at(10), 600_000);
      // Worker 0 restarts as pid 200: its slot's queue lease and named lease are freed, worker 1's and slot 00's kept.
      assert.equal(await store.leases.releaseEarlier('host:d1:0', 'host:d1:0/200:dd'), 2);
      assert.deepEqual((await store.queue.claim(at(11), 10, lease('host:d1:0/200:dd', 600))).map((e) => e.id), [ids[0]]);
      assert.equal(await store.leases.holder('sweeps', at(11)), undefined);
      assert.equal(await store.leases.releaseEarlier('host:d1:0', 'host:d1:0/200:dd'), 0, 'its own leases are not freed');
    });

    test('renew keeps a slow attempt its entries; release gives them back', async () => {
      const ids = await enqueue(2);
      await store.queue.claim(at(10), 10, lease('node-a', 70));
      assert.deepEqual(await store.queue.renew(ids, lease('node-a', 130)), ids);
      assert.deepEqual(await store.queue.claim(at(100), 10, lease('node-b', 160)), [], 'renewed leases hold past the first expiry');
      assert.deepEqual(await store.queue.renew(ids, lease('node-b', 200)), [], 'only the owner renews');
      await store.queue.release([ids[1]!], 'node-a');
      assert.deepEqual((await store.queue.claim(at(100), 10, lease('node-b', 160))).map((e) => e.id), [ids[1]]);
    });

    test('claims leave out busy domains', async () => {
      await store.queue.enqueue({ messageId: '<d@x>', sender: 's@x', recipients: ['a@busy.test', 'b@free.test', 'c@BUSY.test'], raw, at: at(0) });
      const got = await store.queue.claim(at(1), 10, lease('n', 60), { excludeDomains: ['busy.test'] });
      assert.deepEqual(got.map((e) => e.recipient), ['b@free.test']);
    });

    test('a claim takes whole messages: the first `limit` entries and the other claimable entries of their messages', async () => {
      const first = await store.queue.enqueue({ messageId: '<w1@x>', sender: 's@x', recipients: ['a@one.test', 'b@busy.test', 'c@one.test', 'd@two.test'], raw, at: at(0) });
      const second = await store.queue.enqueue({ messageId: '<w2@x>', sender: 's@x', recipients: ['e@one.test'], raw, at: at(1) });
      const inFlight = first.find((e) => e.recipient === 'd@two.test')!.id;
      const got = await store.queue.claim(at(2), 1, lease('n', 60), { excludeDomains: ['busy.test'], excludeIds: [inFlight] });
      assert.deepEqual(got.map((e) => e.recipient), ['a@one.test', 'c@one.test'], 'not the busy domain, not the id left out, not the next message');
      const next = await store.queue.claim(at(2), 1, lease('n', 60), { excludeDomains: ['busy.test'], excludeIds: [inFlight] });
      assert.deepEqual(next.map((e) => e.id), [second[0]!.id]);
    });

    test('two claimers on two connections never share an entry', async () => {
      const ids = await enqueue(40);
      const other = await openStore(backend.url());
      try {
        const claims = await Promise.all(
          Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? store : other).queue.claim(at(100), 7, lease(`node-${i}`, 160))),
        );
        const all = claims.flat().map((e) => e.id);
        assert.equal(new Set(all).size, all.length, 'no entry claimed twice');
        assert.deepEqual([...all].sort((x, y) => x - y), ids.slice(0, all.length).sort((x, y) => x - y));
        assert.ok(all.length >= 35, `most of 8 x 7 claims found work (${all.length})`);
      } finally {
        await other.close();
      }
    });

    test('TWM rows are claimed a notice at a time, leases expire, late writes are refused', async () => {
      const alice = await store.users.create({ address: 'alice@recv.test', passwordHash: 'h', mode: 'open' });
      const bob = await store.users.create({ address: 'bob@recv.test', passwordHash: 'h', mode: 'open' });
      for (const id of ['n1', 'n2']) {
        const n = notice(id);
        const row = (rcpt: string, userId: number) => ({ senderDomain: n.senderDomain, noticeId: id, rcpt, userId, state: 'scheduled' as const, receipt: null, receiptError: null, nextAttemptAt: at(5) });
        await store.twmIn.record(n, [row('alice@recv.test', alice.id), row('bob@recv.test', bob.id)], []);
      }
      const a = await store.twmIn.claim(at(10), 1, lease('node-a', 70));
      assert.deepEqual(a.map((r) => [r.notice.id, r.recipient.rcpt]), [['n1', 'alice@recv.test'], ['n1', 'bob@recv.test']], "one row picked, the notice's other due row with it");
      const b = await store.twmIn.claim(at(10), 10, lease('node-b', 70));
      assert.deepEqual(b.map((r) => r.notice.id), ['n2', 'n2']);
      assert.equal(await store.twmIn.renew(['example.org n2'], lease('node-b', 200)), 2);
      // node-a hangs past its lease: node-c takes n1 over.
      const c = await store.twmIn.claim(at(80), 10, lease('node-c', 140));
      assert.deepEqual(c.map((r) => r.notice.id), ['n1', 'n1'], "n2's renewed lease holds");
      const closed = { state: 'closed' as const, nextAttemptAt: null };
      assert.deepEqual(await store.twmIn.update('example.org', 'n1', ['alice@recv.test', 'bob@recv.test'], ['scheduled'], closed, at(81), 'node-a'), [], 'late write refused');
      assert.deepEqual(await store.twmIn.update('example.org', 'n1', ['alice@recv.test'], ['scheduled'], closed, at(81), 'node-c'), ['alice@recv.test']);
      assert.deepEqual(await store.twmIn.update('example.org', 'n1', ['bob@recv.test'], ['scheduled'], closed, at(82)), ['bob@recv.test'], 'no owner: unconditional');
    });

    test('a cluster lease has one holder at a time and is taken over when it expires', async () => {
      assert.equal(await store.leases.acquire('sweep', 'node-a', at(0), 60_000), true);
      assert.equal(await store.leases.acquire('sweep', 'node-b', at(30), 60_000), false);
      assert.equal(await store.leases.acquire('sweep', 'node-a', at(30), 60_000), true, 'the holder renews');
      assert.equal(await store.leases.holder('sweep', at(31)), 'node-a');
      assert.equal(await store.leases.acquire('sweep', 'node-b', at(89), 60_000), false);
      assert.equal(await store.leases.acquire('sweep', 'node-b', at(90), 60_000), true, 'expired: taken over');
      assert.equal(await store.leases.acquire('sweep', 'node-a', at(91), 60_000), false);
      await store.leases.release('sweep', 'node-a');
      assert.equal(await store.leases.holder('sweep', at(91)), 'node-b', 'only the holder releases');
      await store.leases.release('sweep', 'node-b');
      assert.equal(await store.leases.acquire('sweep', 'node-a', at(92), 60_000), true);
    });

    // On SQLite a bare emit stays in its process: other processes hear the store's writes instead (sqlite-changes.test.ts).
    test('signals reach other processes through PostgreSQL LISTEN/NOTIFY; on SQLite they stay in their process', async () => {
      const other = await openStore(backend.url());
      try {
        const heard = (register: (resolve: () => void) => void) =>
          new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 5000);
            register(() => {
              clearTimeout(timer);
              resolve(true);
            });
          });
        // The other store's LISTEN connection comes up asynchronously: announce until it hears.
        const mail = heard((resolve) => other.changes.on(7, resolve));
        const queued = heard((resolve) => other.signals.onQueued(resolve));
        const local = heard((resolve) => store.signals.onQueued(resolve));
        const pump = setInterval(() => {
          store.changes.emit(7);
          store.signals.queued();
        }, 100);
        try {
          assert.equal(await local, true, 'the announcing process hears its own signal');
          assert.equal(await mail, backend.name === 'postgres', 'an emit for user 7 (no write behind it) reaches the other process only through PostgreSQL');
          assert.equal(await queued, backend.name === 'postgres', 'so does "a queue entry is due now"');
        } finally {
          clearInterval(pump);
        }
      } finally {
        await other.close();
      }
    });

    test('a nonce is accepted once, across connections, until it expires', async () => {
      const other = await openStore(backend.url());
      try {
        assert.equal(await store.twmNonces.remember('k1 n1', at(600), at(0)), true);
        assert.equal(await other.twmNonces.remember('k1 n1', at(600), at(10)), false, 'a replay at another process');
        assert.equal(await other.twmNonces.remember('k1 n2', at(30), at(10)), true);
        assert.equal(await store.twmNonces.prune(at(100)), 1);
        assert.equal(await store.twmNonces.remember('k1 n1', at(1200), at(600)), true, 'expired: may be used again');
        assert.equal(await backend.count('twm_nonces'), 1);
      } finally {
        await other.close();
      }
    });

    test('nonces remembered at once share a transaction and keep their answers: a key given twice is a replay the second time', async () => {
      const keys = Array.from({ length: 50 }, (_, i) => `k2 n${i % 40}`);
      const answers = await Promise.all(keys.map((k) => store.twmNonces.remember(k, at(600), at(0))));
      assert.deepEqual(answers, keys.map((_, i) => i < 40), 'the first 40 are new, the last 10 repeat the first 10');
      assert.equal(await backend.count('twm_nonces'), 40);
      assert.equal(await store.twmNonces.remember('k2 n0', at(600), at(1)), false, 'and stay remembered');
    });
  });
}
