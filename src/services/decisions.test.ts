/**
 * The decisions reconcile (services/decisions.ts) on every backend: card
 * writes mark the user (allowlist_changes), and a reconcile re-decides
 * pending requests and TWM notices from the store: allowed releases held
 * mail and schedules fetches, blocked denies and declines, anything else
 * (a stranger, a forged copy of an allowed address, an open mailbox) waits.
 * Two reconcilers on one store (two processes) apply a change once.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { User } from '../core/types.ts';
import { createIngest } from '../ingest/ingest.ts';
import { testBackends } from '../store/test-backends.ts';
import type { Store, TwmInNotice } from '../store/types.ts';
import { createContacts } from './contacts.ts';
import { createDecisions } from './decisions.ts';
import { createTwmDecisions } from './twm-decisions.ts';

const backends = await testBackends();
const NOW = new Date('2026-03-01T12:00:00Z');

for (const backend of backends) {
  describe(`decisions reconcile (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: User;
    const build = () => {
      const twm = createTwmDecisions({ inbox: store.twmIn, users: store.users, approvalDelayMs: 0, declineDelayMs: 0, now: () => NOW });
      return createDecisions({ store, ingest: createIngest({ store, maxReceivedHeaders: 50 }), twm, now: () => NOW });
    };
    const hold = (sender: string, authDomain: string | null) =>
      store.messages.deliver([
        {
          userId: alice.id,
          mailbox: 'Screener',
          raw: Buffer.from(`From: ${sender}\r\nSubject: from ${sender}\r\n\r\nhi\r\n`),
          flags: [],
          sender,
          from: sender,
          subject: `from ${sender}`,
          receivedAt: NOW,
          firstContact: true,
          request: { sender, authDomain, subject: `from ${sender}` },
        },
      ]);
    const notice = async (id: string, from: string): Promise<TwmInNotice> => {
      const n: TwmInNotice = {
        senderDomain: from.split('@')[1]!,
        id,
        contentSha256: id.padEnd(64, '0'),
        from,
        to: ['alice@recv.test'],
        size: 10,
        sha256: '0'.repeat(64),
        createdAt: NOW,
        expiresAt: new Date(NOW.getTime() + 86_400_000),
        intro: null,
        purpose: null,
        listId: null,
        receivedAt: NOW,
      };
      await store.twmIn.record(
        n,
        [{ senderDomain: n.senderDomain, noticeId: id, rcpt: 'alice@recv.test', userId: alice.id, state: 'pending', nextAttemptAt: null, receipt: null, receiptError: null }],
        [{ userId: alice.id, sender: from, authDomain: n.senderDomain, intro: null, at: NOW }],
      );
      return n;
    };
    const rowState = async (n: TwmInNotice) => (await store.twmIn.find(n.senderDomain, n.id))!.recipients[0]!;
    const mailbox = async (subject: string) => (await store.messages.list(alice.id)).find((m) => m.subject === subject)?.mailbox;
    const status = async (sender: string) => (await store.requests.get(alice.id, sender))?.status;

    beforeEach(async () => {
      store = await backend.open();
      alice = await store.users.create({ address: 'alice@recv.test', passwordHash: 'h', mode: 'screen' });
      await store.users.setRevealDeclined(alice.id, true);
      alice = (await store.users.findById(alice.id))!;
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('a card write marks the user; a reconcile releases, fetches, denies and declines, then clears the mark', async () => {
      await hold('pal@smtp.test', 'smtp.test');
      await hold('forger@smtp.test', null);
      await hold('spam@smtp.test', 'smtp.test');
      await hold('who@smtp.test', 'smtp.test');
      const friend = await notice('n-friend', 'friend@twm.test');
      const foe = await notice('n-foe', 'foe@twm.test');
      assert.deepEqual(await store.addressBooks.changedAllowlists(10), [], 'delivering marks nothing');

      const contacts = createContacts(store);
      for (const s of ['pal@smtp.test', 'forger@smtp.test', 'friend@twm.test']) await contacts.allow(alice.id, s);
      for (const s of ['spam@smtp.test', 'foe@twm.test']) await contacts.block(alice.id, s);
      const marks = await store.addressBooks.changedAllowlists(10);
      assert.deepEqual(marks, [{ userId: alice.id, version: 5 }], 'one mark per user, counting writes');

      const r = await build().reconcileChanged();
      assert.deepEqual(r.summary, { approved: 2, denied: 2, released: 1, dropped: 1, fetches: 1, declines: 1 });
      assert.equal(await mailbox('from pal@smtp.test'), 'INBOX');
      assert.equal(await mailbox('from forger@smtp.test'), 'Screener', 'no aligned authentication: a forged copy stays held');
      assert.equal(await mailbox('from spam@smtp.test'), undefined, 'blocked: dropped');
      assert.equal(await mailbox('from who@smtp.test'), 'Screener', 'a stranger waits');
      assert.deepEqual(
        [await status('pal@smtp.test'), await status('forger@smtp.test'), await status('spam@smtp.test'), await status('who@smtp.test'), await status('friend@twm.test'), await status('foe@twm.test')],
        ['approved', 'pending', 'denied', 'pending', 'approved', 'denied'],
      );
      assert.equal((await rowState(friend)).state, 'scheduled');
      assert.deepEqual([(await rowState(foe)).state, (await rowState(foe)).receipt], ['receipt-due', 'declined']);
      assert.deepEqual(await store.addressBooks.changedAllowlists(10), [], 'the mark is cleared');
    });

    test('a forged copy held beside a genuine one is never released by an address-book change', async () => {
      // Forged first, then genuine: the request must not count as authenticated.
      await hold('twin@smtp.test', null);
      await hold('twin@smtp.test', 'smtp.test');
      assert.equal((await store.requests.get(alice.id, 'twin@smtp.test'))?.authDomain, null);
      await createContacts(store).allow(alice.id, 'twin@smtp.test');
      const r = await build().reconcileChanged();
      assert.equal(r.summary.released, 0);
      assert.equal(await status('twin@smtp.test'), 'pending', 'an explicit approval is still needed');
    });

    test('the mark is cleared only at the version read; a later write stays marked', async () => {
      const contacts = createContacts(store);
      await contacts.allow(alice.id, 'a@x.test');
      const [mark] = await store.addressBooks.changedAllowlists(10);
      await contacts.allow(alice.id, 'b@x.test');
      assert.equal(await store.addressBooks.settleAllowlist(alice.id, mark!.version), false);
      assert.deepEqual(await store.addressBooks.changedAllowlists(10), [{ userId: alice.id, version: mark!.version + 1 }]);
      // CardDAV writes by href and book removal mark too.
      assert.equal(await store.addressBooks.settleAllowlist(alice.id, mark!.version + 1), true);
      await store.addressBooks.create(alice.id, { name: 'work' });
      await store.addressBooks.putCard(alice.id, { book: 'work', href: 'c.vcf', uid: 'c', vcard: 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c\r\nFN:c\r\nEMAIL:c@x.test\r\nEND:VCARD\r\n', entries: [{ kind: 'address', value: 'c@x.test', action: 'allow' }] });
      assert.equal((await store.addressBooks.changedAllowlists(10))[0]?.version, 1);
      assert.equal(await store.addressBooks.settleAllowlist(alice.id, 1), true);
      assert.equal(await store.addressBooks.remove(alice.id, 'work'), true);
      assert.equal((await store.addressBooks.changedAllowlists(10)).length, 1);
    });

    test('an open mailbox: a stranger reaches the INBOX yet is not allowed, so nothing is released', async () => {
      await store.users.setMode(alice.id, 'open');
      await hold('who@smtp.test', 'smtp.test');
      const n = await notice('n-who', 'who2@twm.test');
      await createContacts(store).allow(alice.id, 'someone@else.test');
      const r = await build().reconcileChanged();
      assert.equal(r.users, 1);
      assert.equal(await mailbox('from who@smtp.test'), 'Screener');
      assert.equal((await rowState(n)).state, 'pending');
    });

    test('two reconcilers on one store (two processes) apply each change once', async () => {
      await hold('pal@smtp.test', 'smtp.test');
      await hold('pal@smtp.test', 'smtp.test');
      const n = await notice('n-pal', 'pal@twm.test');
      const contacts = createContacts(store);
      await contacts.allow(alice.id, 'pal@smtp.test');
      await contacts.allow(alice.id, 'pal@twm.test');
      const [one, two] = await Promise.all([build().reconcileUser(alice.id), build().reconcileUser(alice.id)]);
      assert.equal(one!.released + two!.released, 2, 'each held message moved once');
      assert.equal(one!.fetches + two!.fetches, 1, 'the notice scheduled once');
      assert.equal(one!.approved + two!.approved, 2);
      assert.equal((await store.messages.list(alice.id, { mailbox: 'INBOX' })).length, 2);
      assert.equal((await rowState(n)).state, 'scheduled');
    });
  });
}
