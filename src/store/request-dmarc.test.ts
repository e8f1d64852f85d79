/**
 * The DMARC evaluation recorded per contact request (migration 0011): the
 * latest attempt that was evaluated wins, its result and policy together.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DmarcFact } from '../core/types.ts';
import type { Store } from './types.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();
after(() => Promise.all(backends.map((b) => b.cleanup())));

function attempt(store: Store, userId: number, at: number, dmarc: DmarcFact | null | undefined) {
  return store.messages.deliver([
    {
      userId,
      mailbox: 'Screener',
      raw: Buffer.from(`Subject: s${at}\r\n\r\nbody\r\n`),
      flags: [],
      sender: 'x@sender.test',
      from: 'x@sender.test',
      subject: `s${at}`,
      receivedAt: new Date(at),
      firstContact: true,
      request: { sender: 'x@sender.test', authDomain: null, subject: `s${at}`, ...(dmarc === undefined ? {} : { dmarc }) },
    },
  ]);
}

for (const backend of backends) {
  describe(`contact requests' DMARC (${backend.name})`, { skip: backend.skip }, () => {
    test('the latest evaluated attempt is kept, result and policy together', async () => {
      const store = await backend.open();
      try {
        const u = await store.users.create({ address: 'a@example.test', passwordHash: 'x', mode: 'screen' });
        const dmarcOf = async () => (await store.requests.get(u.id, 'x@sender.test'))!.dmarc;
        await attempt(store, u.id, 1000, undefined);
        assert.equal(await dmarcOf(), null, 'never evaluated');
        await attempt(store, u.id, 2000, { result: 'pass', policy: 'reject' });
        assert.deepEqual(await dmarcOf(), { result: 'pass', policy: 'reject' });
        await attempt(store, u.id, 3000, null);
        assert.deepEqual(await dmarcOf(), { result: 'pass', policy: 'reject' }, 'an attempt without an evaluation (TWM, local) leaves it');
        await attempt(store, u.id, 4000, { result: 'none', policy: null });
        assert.deepEqual(await dmarcOf(), { result: 'none', policy: null }, 'the policy goes with its result (not kept from the earlier one)');
        await attempt(store, u.id, 5000, { result: 'fail', policy: 'quarantine' });
        assert.deepEqual(await dmarcOf(), { result: 'fail', policy: 'quarantine' });
        // Two attempts in one batch: the later one counts.
        await store.messages.deliver(
          [1, 2].map((n) => ({
            userId: u.id,
            mailbox: 'Screener' as const,
            raw: Buffer.from(`Subject: b${n}\r\n\r\nbody\r\n`),
            flags: [],
            sender: 'y@sender.test',
            from: 'y@sender.test',
            subject: `b${n}`,
            receivedAt: new Date(6000 + n),
            firstContact: true,
            request: { sender: 'y@sender.test', authDomain: null, subject: `b${n}`, dmarc: n === 1 ? { result: 'fail', policy: 'reject' } : { result: 'pass', policy: 'none' } },
          })),
        );
        assert.deepEqual((await store.requests.get(u.id, 'y@sender.test'))!.dmarc, { result: 'pass', policy: 'none' });
        assert.equal((await store.requests.list(u.id)).length, 2);
      } finally {
        await store.close();
      }
    });
  });
}
