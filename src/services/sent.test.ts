/**
 * The Sent view (services.sent: `twoway sent`, `GET /api/sent`, the web Sent page) on every
 * backend, over the store's reads by sender key (migration 0028): the user's messages only,
 * from any subaddress and in any case, newest first; the limit counts messages, each shown
 * with all its recipients, SMTP and Two-Way Mail, even when its notices are newer than the
 * page's other messages or its queue entries are gone; one message by id, not another user's.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { User } from '../core/types.ts';
import { testBackends } from '../store/test-backends.ts';
import type { Store } from '../store/types.ts';
import { createServices } from './index.ts';
import type { SentMessageView } from './sent.ts';

const backends = await testBackends();
const T0 = Date.UTC(2026, 0, 1);
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const raw = Buffer.from('Subject: x\r\n\r\nx\r\n');

for (const backend of backends) {
  describe(`Sent view (${backend.name})`, { skip: backend.skip }, () => {
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
      store.queue.enqueue({ messageId, sender, recipients, raw, at: at(seconds), createdAt: at(seconds) });
    const notify = (id: string, messageId: string, sender: string, seconds: number, recipients: string[]) =>
      store.twmOut.create({
        notice: {
          id,
          messageId,
          sender,
          domain: recipients[0]!.slice(recipients[0]!.indexOf('@') + 1),
          content: Buffer.from('{}'),
          subject: `subject of ${messageId}`,
          messageIdHeader: null,
          size: raw.length,
          sha256: 'ab'.repeat(32),
          createdAt: at(seconds),
          expiresAt: at(seconds + 86_400),
        },
        recipients,
        raw,
      });
    const shown = (page: SentMessageView[]) => page.map((m) => `${m.messageId}: ${m.recipients.map((r) => `${r.recipient} ${r.via}`).join(', ')}`);

    test('the user’s messages only, from any subaddress and in any case, newest first, each with all its recipients', async () => {
      await queue('a1', 'alice@x.test', 1, ['p@smtp.test', 'q@smtp.test', 'r@twm.test']);
      await notify('n-a1', 'a1', 'alice@x.test', 1, ['r@twm.test']);
      await queue('b1', 'bob@x.test', 2, ['p@smtp.test']);
      await notify('n-b1', 'b1', 'bob@x.test', 2, ['s@twm.test']);
      await queue('a2', 'Alice+Lists@X.TEST', 3, ['s@twm.test']);
      await notify('n-a2', 'a2', 'Alice+Lists@X.TEST', 3, ['s@twm.test']);
      await queue('b2', 'bob+alice@x.test', 4, ['p@smtp.test']);
      await queue('c1', 'alice@other.test', 5, ['p@smtp.test']);
      assert.deepEqual(shown(await services.sent.list(alice)), ['a2: s@twm.test twm', 'a1: p@smtp.test queue, q@smtp.test queue, r@twm.test twm']);
      assert.deepEqual(shown(await services.sent.list(bob)), ['b2: p@smtp.test queue', 'b1: p@smtp.test queue, s@twm.test twm']);
      assert.deepEqual(shown(await services.sent.list(alice, { limit: 1 })), ['a2: s@twm.test twm'], 'the limit counts messages');
      const [a2] = await services.sent.list(alice, { limit: 1 });
      assert.equal(a2?.subject, 'subject of a2');
    });

    test('a message whose notice is newer than the page’s other messages is shown whole, in its queue’s order', async () => {
      // m1's notice to a slow domain is made long after m2 was queued; m3 has no queue entries left (pruned).
      await queue('m1', 'alice@x.test', 1, ['p@smtp.test', 'r@twm.test']);
      await queue('m2', 'alice@x.test', 2, ['q@smtp.test', 's@twm.test']);
      await notify('n-m2', 'm2', 'alice@x.test', 2, ['s@twm.test']);
      await notify('n-m1', 'm1', 'alice@x.test', 50, ['r@twm.test']);
      await notify('n-m3', 'm3', 'alice+old@x.test', 0, ['t@twm.test']);
      assert.deepEqual(shown(await services.sent.list(alice, { limit: 1 })), ['m2: q@smtp.test queue, s@twm.test twm']);
      assert.deepEqual(shown(await services.sent.list(alice, { limit: 2 })), ['m2: q@smtp.test queue, s@twm.test twm', 'm1: p@smtp.test queue, r@twm.test twm']);
      assert.deepEqual(shown(await services.sent.list(alice)), [
        'm2: q@smtp.test queue, s@twm.test twm',
        'm1: p@smtp.test queue, r@twm.test twm',
        'm3: t@twm.test twm',
      ]);
    });

    test('one message by id: all its recipients; another user’s is not found', async () => {
      await queue('a1', 'alice@x.test', 1, ['p@smtp.test', 'r@twm.test']);
      await notify('n-a1', 'a1', 'ALICE@x.test', 9, ['r@twm.test']);
      await queue('a2', 'alice@x.test', 2, ['q@smtp.test']);
      await queue('b1', 'bob@x.test', 3, ['p@smtp.test']);
      assert.deepEqual(shown([await services.sent.status(alice, 'a1')]), ['a1: p@smtp.test queue, r@twm.test twm']);
      await assert.rejects(services.sent.status(alice, 'b1'), /No sent message b1/);
      await assert.rejects(services.sent.status(alice, 'nothing'), /No sent message nothing/);
      assert.deepEqual(shown(await services.sent.list(alice, { messageId: 'a2' })), ['a2: q@smtp.test queue']);
    });

    test('accounts whose own addresses carry a tag share a key: each sees its own mail only', async () => {
      const sales = await services.accounts.add('carol+sales@x.test', 'correct horse battery staple');
      const support = await services.accounts.add('carol+support@x.test', 'correct horse battery staple');
      await queue('s1', 'carol+sales@x.test', 1, ['p@smtp.test']);
      await queue('t1', 'Carol+Support@x.test', 2, ['p@smtp.test']);
      assert.deepEqual(shown(await services.sent.list(sales)), ['s1: p@smtp.test queue']);
      assert.deepEqual(shown(await services.sent.list(support)), ['t1: p@smtp.test queue']);
      await assert.rejects(services.sent.status(sales, 't1'), /No sent message t1/);
    });

    test('a tagged account’s page is full when a sibling sent the newest messages of their shared key', async () => {
      const sales = await services.accounts.add('carol+sales@x.test', 'correct horse battery staple');
      const support = await services.accounts.add('carol+support@x.test', 'correct horse battery staple');
      for (let i = 1; i <= 3; i++) await queue(`s${i}`, 'carol+sales@x.test', i, ['p@smtp.test']);
      await notify('n-s3', 's3', 'carol+sales@x.test', 3, ['r@twm.test']);
      // Twelve newer messages of the sibling: a page of 2 reads 2, then 8, then 32 of the key.
      for (let i = 1; i <= 12; i++) await queue(`t${i}`, 'carol+support@x.test', 10 + i, ['p@smtp.test']);
      assert.deepEqual(shown(await services.sent.list(sales, { limit: 2 })), ['s3: p@smtp.test queue, r@twm.test twm', 's2: p@smtp.test queue']);
      assert.deepEqual(
        (await services.sent.list(sales, { limit: 10 })).map((m) => m.messageId),
        ['s3', 's2', 's1'],
        'a key with fewer messages than asked ends the reads',
      );
      assert.deepEqual(
        (await services.sent.list(support, { limit: 2 })).map((m) => m.messageId),
        ['t12', 't11'],
      );
    });
  });
}
