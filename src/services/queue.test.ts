/**
 * The queue as a user sees it (services.queue with an owner: `GET /api/queue`, `POST
 * /api/queue/flush`) on every backend: read by the user's sender key (an index), not the whole
 * queue; the user's own entries only, subaddresses and case included, in queue order.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { User } from '../core/types.ts';
import { testBackends } from '../store/test-backends.ts';
import type { Store } from '../store/types.ts';
import { createServices } from './index.ts';

const backends = await testBackends();
const raw = Buffer.from('Subject: x\r\n\r\nx\r\n');
const T0 = Date.UTC(2026, 0, 1);

for (const backend of backends) {
  describe(`queue for its owner (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let services: ReturnType<typeof createServices>;
    let alice: User;
    let bob: User;
    beforeEach(async () => {
      store = await backend.open();
      services = createServices(store, ['x.test']);
      alice = await services.accounts.add('alice@x.test', 'correct horse battery staple');
      bob = await services.accounts.add('bob@x.test', 'correct horse battery staple');
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    const queue = (messageId: string, sender: string, seconds: number, recipients: string[]) =>
      store.queue.enqueue({ messageId, sender, recipients, raw, at: new Date(T0 + seconds * 1000), createdAt: new Date(T0 + seconds * 1000) });

    test('list and flush touch only the owner’s entries, from any subaddress and in any case, in queue order', async () => {
      await queue('a1', 'alice@x.test', 1, ['p@smtp.test', 'q@smtp.test']);
      await queue('b1', 'bob@x.test', 2, ['p@smtp.test']);
      await queue('a2', 'Alice+Lists@X.TEST', 3, ['r@smtp.test']);
      await queue('b2', 'bob+alice@x.test', 4, ['s@smtp.test']);
      const mine = await services.queue.list({ owner: alice });
      assert.deepEqual(
        mine.map((e) => `${e.messageId} ${e.recipient}`),
        ['a1 p@smtp.test', 'a1 q@smtp.test', 'a2 r@smtp.test'],
      );
      assert.deepEqual(mine.map((e) => e.id), [...mine.map((e) => e.id)].sort((x, y) => x - y));
      assert.deepEqual((await services.queue.list({ owner: bob })).map((e) => e.messageId), ['b1', 'b2']);
      assert.equal((await services.queue.list()).length, 5, 'an administrator sees every entry');

      const [delivered] = mine;
      await store.queue.update(delivered!.id, { state: 'delivered', deliveredAt: new Date(), reply: '250 ok' });
      assert.deepEqual((await services.queue.list({ owner: alice, state: 'delivered' })).map((e) => e.recipient), ['p@smtp.test']);

      const flushed = await services.queue.flush(alice);
      assert.deepEqual(flushed.map((e) => `${e.messageId} ${e.recipient}`).sort(), ['a1 q@smtp.test', 'a2 r@smtp.test']);
      const bobs = await services.queue.list({ owner: bob });
      assert.ok(bobs.every((e) => e.status.state === 'scheduled' && e.status.nextAttemptAt.getTime() === T0 + (e.messageId === 'b1' ? 2000 : 4000)), 'bob’s entries keep their times');
    });
  });
}
