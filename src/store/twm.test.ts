/**
 * TWM storage (sender and recipient sides) and the two columns it
 * added (users.reveal_declined, contact_requests.intro), against every
 * backend (test-backends.ts).
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { User } from '../core/types.ts';
import { MAX_CONTACT_ATTEMPTS, type TwmInState } from '../core/twm-types.ts';
import type { Database as Tables } from './schema.ts';
import { StoreConflictError, type Store, type TwmInNotice, type TwmInRecipient, type TwmOutNotice } from './types.ts';
import { testBackends } from './test-backends.ts';
import { pendingFromShape } from './prepared-twm.ts';

const backends = await testBackends();

const T0 = Date.UTC(2024, 5, 1, 12, 0, 0);
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const HOUR = 3600;

function outNotice(id: string, extra: Partial<TwmOutNotice> = {}): Omit<TwmOutNotice, 'bodyRemoved' | 'expiryReported'> {
  return {
    id,
    messageId: `<${id}@queue>`,
    sender: 'alice@send.test',
    domain: 'recv.test',
    content: Buffer.from(JSON.stringify({ id })),
    subject: `Subject ${id}`,
    messageIdHeader: `<${id}@send.test>`,
    size: 5,
    sha256: 'ab'.repeat(32),
    createdAt: at(0),
    expiresAt: at(7 * 24 * HOUR),
    ...extra,
  };
}

function inNotice(id: string, extra: Partial<TwmInNotice> = {}): TwmInNotice {
  return {
    senderDomain: 'example.org',
    id,
    contentSha256: 'cd'.repeat(32),
    from: 'stranger@example.org',
    to: ['alice@recv.test'],
    size: 10,
    sha256: 'ef'.repeat(32),
    createdAt: at(0),
    expiresAt: at(7 * 24 * HOUR),
    intro: null,
    purpose: null,
    listId: null,
    receivedAt: at(1),
    ...extra,
  };
}

type NewRow = Omit<TwmInRecipient, 'updatedAt' | 'attempts' | 'lastError'>;
function inRow(notice: TwmInNotice, rcpt: string, userId: number | null, state: TwmInState, extra: Partial<NewRow> = {}): NewRow {
  return { senderDomain: notice.senderDomain, noticeId: notice.id, rcpt, userId, state, receipt: null, receiptError: null, nextAttemptAt: null, ...extra };
}

for (const backend of backends) {
  describe(`twm storage (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: User;
    let bob: User;
    beforeEach(async () => {
      store = await backend.open();
      alice = await store.users.create({ address: 'alice@recv.test', passwordHash: 'h', mode: 'screen' });
      bob = await store.users.create({ address: 'bob@recv.test', passwordHash: 'h', mode: 'screen' });
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('revealDeclined defaults to off and is set per user', async () => {
      assert.equal(alice.revealDeclined, false);
      await store.users.setRevealDeclined(alice.id, true);
      assert.equal((await store.users.findById(alice.id))?.revealDeclined, true);
      assert.equal((await store.users.findById(bob.id))?.revealDeclined, false);
      await store.users.setRevealDeclined(alice.id, false);
      assert.equal((await store.users.findByAddress('alice@recv.test'))?.revealDeclined, false);
    });

    describe('outbound', () => {
      const raw = Buffer.from('From: alice@send.test\r\nSubject: hi\r\n\r\nhello\r\n');

      test('history: each recipient\'s states with their reasons, oldest first; a refused transition records nothing', async () => {
        await store.twmOut.create({ notice: outNotice('h1'), recipients: ['x@recv.test', 'y@recv.test'], raw });
        assert.deepEqual(await store.twmOut.transition('h1', ['x@recv.test', 'y@recv.test'], { from: ['queued'], to: 'accepted' }, at(1)), ['x@recv.test', 'y@recv.test']);
        await store.twmOut.transition('h1', ['x@recv.test', 'y@recv.test'], { from: ['accepted'], to: 'pending', reason: 'screened' }, at(2));
        await store.twmOut.transition('h1', ['x@recv.test'], { from: ['pending'], to: 'delivered', reason: null }, at(3));
        await store.twmOut.transition('h1', ['y@recv.test'], { from: ['pending'], to: 'declined', reason: 'declined by the recipient' }, at(4));
        // Already final: the conditional update changes nothing, so nothing is recorded.
        assert.deepEqual(await store.twmOut.transition('h1', ['y@recv.test'], { from: ['pending'], to: 'expired' }, at(5)), []);
        const history = await store.twmOut.history(['h1', 'nope']);
        const of = (r: string) => history.get(`h1\n${r}`)!.map((e) => [e.state, e.detail, e.at.getTime()]);
        assert.deepEqual(of('x@recv.test'), [
          ['queued', null, at(0).getTime()],
          ['accepted', null, at(1).getTime()],
          ['pending', 'screened', at(2).getTime()],
          ['delivered', null, at(3).getTime()],
        ]);
        assert.deepEqual(of('y@recv.test'), [
          ['queued', null, at(0).getTime()],
          ['accepted', null, at(1).getTime()],
          ['pending', 'screened', at(2).getTime()],
          ['declined', 'declined by the recipient', at(4).getTime()],
        ]);
        assert.equal(history.size, 2);
        // Pruned with the notice (ON DELETE CASCADE).
        assert.equal(await store.twmOut.prune(at(8 * 24 * HOUR)), 1);
        assert.equal(await backend.count('recipient_events'), 0);
      });

      test('create stores notice, body and queued rows; a message may have several notices per domain', async () => {
        const first = await store.twmOut.create({ notice: outNotice('n1'), recipients: ['x@recv.test', 'y@recv.test'], raw });
        assert.deepEqual(first, { ...outNotice('n1'), bodyRemoved: false, expiryReported: false });

        // The rest of the same message's recipients, handed over later by the queue: a notice of their own.
        await store.twmOut.create({ notice: outNotice('n1b', { messageId: '<n1@queue>' }), recipients: ['z@recv.test'], raw });
        assert.equal(await backend.count('twm_out_notices'), 2);
        assert.equal(await backend.count('twm_out_recipients'), 3);

        // Same message, another domain.
        await store.twmOut.create({ notice: outNotice('n2', { messageId: '<n1@queue>', domain: 'other.test' }), recipients: ['q@other.test'], raw });
        // The same id again is a conflict, and stores nothing.
        await assert.rejects(store.twmOut.create({ notice: outNotice('n1', { messageId: '<m9@queue>' }), recipients: ['x@recv.test'], raw }), StoreConflictError);
        assert.equal(await backend.count('twm_out_recipients'), 4);

        const got = await store.twmOut.get('n1');
        assert.ok(got);
        assert.ok(got.content.equals(Buffer.from(JSON.stringify({ id: 'n1' }))));
        assert.deepEqual(
          got.recipients.map((r) => [r.noticeId, r.recipient, r.state, r.reason, r.updatedAt]),
          [
            ['n1', 'x@recv.test', 'queued', null, at(0)],
            ['n1', 'y@recv.test', 'queued', null, at(0)],
          ],
        );
        assert.equal(await store.twmOut.get('nope'), undefined);
        const found = await store.twmOut.findByMessage('<n1@queue>', 'recv.test');
        assert.deepEqual(found.map((n) => [n.id, n.recipients.map((r) => r.recipient)]), [['n1', ['x@recv.test', 'y@recv.test']], ['n1b', ['z@recv.test']]]);
        assert.deepEqual((await store.twmOut.findByMessage('<n1@queue>', 'other.test')).map((n) => n.id), ['n2']);
        assert.deepEqual(await store.twmOut.findByMessage('<n1@queue>', 'nope.test'), []);
      });

      test('body is served until removed; removal keeps the notice and rows', async () => {
        await store.twmOut.create({ notice: outNotice('b1'), recipients: ['x@recv.test'], raw });
        assert.ok((await store.twmOut.body('b1'))?.equals(raw));
        assert.equal(await store.twmOut.body('nope'), undefined);
        await store.twmOut.removeBody('b1');
        await store.twmOut.removeBody('b1'); // idempotent
        assert.equal(await store.twmOut.body('b1'), undefined);
        const got = await store.twmOut.get('b1');
        assert.equal(got?.bodyRemoved, true);
        assert.equal(got?.recipients.length, 1);
        assert.equal(got?.expiryReported, false);
        await store.twmOut.setExpiryReported('b1');
        assert.equal((await store.twmOut.get('b1'))?.expiryReported, true);
      });

      test('facts and servable: what a fetch and a receipt read, one statement each', async () => {
        await store.twmOut.create({ notice: outNotice('f1'), recipients: ['y@recv.test', 'x@recv.test'], raw });
        const n = outNotice('f1');
        assert.deepEqual(await store.twmOut.facts('f1'), { domain: 'recv.test', expiresAt: n.expiresAt, recipients: ['x@recv.test', 'y@recv.test'] });
        assert.equal(await store.twmOut.facts('nope'), undefined);
        const served = await store.twmOut.servable('f1');
        assert.deepEqual(served?.expiresAt, n.expiresAt);
        assert.ok(served?.body?.equals(raw));
        assert.equal(await store.twmOut.servable('nope'), undefined);
        // The body goes with the last open recipient, and only then.
        await store.twmOut.transition('f1', ['x@recv.test'], { from: ['queued'], to: 'delivered' }, at(5));
        assert.ok((await store.twmOut.servable('f1'))?.body?.equals(raw), 'y is still open');
        await store.twmOut.transition('f1', ['y@recv.test'], { from: ['queued'], to: 'failed', reason: 'size-mismatch' }, at(6));
        assert.deepEqual(await store.twmOut.servable('f1'), { expiresAt: n.expiresAt, body: undefined });
        assert.equal((await store.twmOut.get('f1'))?.bodyRemoved, true);
        assert.deepEqual((await store.twmOut.facts('f1'))?.recipients, ['x@recv.test', 'y@recv.test'], 'the rows stay as history');
      });

      test('a notice made from a queue message serves the queue\'s body, kept until both sides are done (migration 0022)', async () => {
        const queued = Buffer.from('From: alice@send.test\r\nSubject: shared\r\n\r\none copy\r\n');
        // Straight from the tables (ids of this test only, no quoting needed).
        const rawOf = async (messageId: string) => {
          const [row] = await backend.query(`SELECT raw, body_removed_at FROM queue_messages WHERE message_id = '${messageId}'`);
          return row ? { raw: row.raw as Buffer, removedAt: row.body_removed_at === null ? null : Number(row.body_removed_at) } : null;
        };
        const noticeBody = async (id: string) => {
          const [row] = await backend.query(`SELECT body, body_in_queue FROM twm_out_notices WHERE id = '${id}'`);
          return { body: Buffer.from(row!.body as Buffer), body_in_queue: Number(row!.body_in_queue) };
        };
        // Two recipients queued: one goes by TWM, the other (another domain) stays deferred for a while.
        const [twm, other] = await store.queue.enqueue({ messageId: 'q1', sender: 'alice@send.test', recipients: ['x@recv.test', 'z@other.test'], raw: queued, at: at(0) });
        await store.twmOut.create({ notice: outNotice('s1', { messageId: 'q1', size: queued.length }), recipients: ['x@recv.test'], raw: queued, bodyInQueue: true });
        assert.deepEqual(await noticeBody('s1'), { body: Buffer.alloc(0), body_in_queue: 1 }, 'no second copy');
        assert.ok((await store.twmOut.servable('s1'))?.body?.equals(queued), 'served from the queue');
        assert.ok((await store.twmOut.body('s1'))?.equals(queued));
        // The queue is done with it (both entries final) while the notice is still open: the body stays.
        await store.queue.update(twm!.id, { state: 'delivered', deliveredAt: at(1), reply: '250 TWM' }, undefined, 'q1');
        await store.queue.update(other!.id, { state: 'failed', failedAt: at(1), lastError: '550 no' }, undefined, 'q1');
        assert.ok((await rawOf('q1'))?.raw.equals(queued), 'a notice still serves it');
        assert.equal(await store.queue.prune(at(10 * 24 * HOUR)), 2, 'the history goes');
        assert.ok((await rawOf('q1'))?.raw.equals(queued), 'the message row and its body stay for the notice');
        assert.ok((await store.twmOut.servable('s1'))?.body?.equals(queued));
        // The notice's last recipient final: both copies go, in the receipt's transaction.
        await store.twmOut.transition('s1', ['x@recv.test'], { from: ['queued'], to: 'delivered' }, at(2));
        assert.deepEqual(await store.twmOut.servable('s1'), { expiresAt: outNotice('s1').expiresAt, body: undefined });
        const dropped = await rawOf('q1');
        assert.equal(dropped?.raw.length, 0);
        assert.equal(dropped?.removedAt, at(2).getTime());
        assert.equal(await store.queue.prune(at(10 * 24 * HOUR)), 0);
        assert.equal(await rawOf('q1'), null, 'then prune takes the message row');

        // The other order: the notice done first (expired, removeBody) while a queue entry is open.
        const [open] = await store.queue.enqueue({ messageId: 'q2', sender: 'alice@send.test', recipients: ['x@recv.test'], raw: queued, at: at(0) });
        await store.twmOut.create({ notice: outNotice('s2', { messageId: 'q2' }), recipients: ['x@recv.test'], raw: queued, bodyInQueue: true });
        await store.twmOut.removeBody('s2');
        assert.equal(await store.twmOut.body('s2'), undefined);
        assert.ok((await rawOf('q2'))?.raw.equals(queued), 'the queue still needs it');
        await store.queue.update(open!.id, { state: 'failed', failedAt: at(3), lastError: 'expired' }, undefined, 'q2');
        assert.equal((await rawOf('q2'))?.raw.length, 0, 'the queue drops it last');

        // Octets other than the queue's, or no queue message: the notice keeps its own copy.
        await store.queue.enqueue({ messageId: 'q3', sender: 'alice@send.test', recipients: ['x@recv.test'], raw: queued, at: at(0) });
        await store.twmOut.create({ notice: outNotice('s3', { messageId: 'q3' }), recipients: ['x@recv.test'], raw, bodyInQueue: true });
        await store.twmOut.create({ notice: outNotice('s4', { messageId: 'q-none' }), recipients: ['x@recv.test'], raw, bodyInQueue: true });
        for (const id of ['s3', 's4']) {
          assert.deepEqual(await noticeBody(id), { body: raw, body_in_queue: 0 });
          assert.ok((await store.twmOut.servable(id))?.body?.equals(raw));
        }
      });

      test('transition is conditional: final states are never undone, racing handlers agree', async () => {
        await store.twmOut.create({ notice: outNotice('t1'), recipients: ['a@recv.test', 'b@recv.test', 'c@recv.test'], raw });
        assert.deepEqual(
          (await store.twmOut.transition('t1', ['a@recv.test', 'b@recv.test'], { from: ['queued'], to: 'accepted', reason: 'accepted' }, at(10))).sort(),
          ['a@recv.test', 'b@recv.test'],
        );
        // A deferred retry of an already-answered recipient changes nothing.
        assert.deepEqual(await store.twmOut.transition('t1', ['a@recv.test'], { from: ['queued'], to: 'queued' }, at(11)), []);
        assert.deepEqual(await store.twmOut.transition('t1', ['a@recv.test'], { from: ['queued', 'accepted', 'pending'], to: 'fetched' }, at(12)), ['a@recv.test']);
        assert.deepEqual(
          await store.twmOut.transition('t1', ['a@recv.test'], { from: ['queued', 'accepted', 'pending', 'fetched'], to: 'delivered', reason: null }, at(13)),
          ['a@recv.test'],
        );
        // Expiry after delivery: no change.
        assert.deepEqual(await store.twmOut.transition('t1', ['a@recv.test', 'b@recv.test'], { from: ['queued', 'accepted', 'pending'], to: 'expired' }, at(14)), [
          'b@recv.test',
        ]);
        const rows = new Map((await store.twmOut.get('t1'))!.recipients.map((r) => [r.recipient, r]));
        assert.equal(rows.get('a@recv.test')?.state, 'delivered');
        assert.equal(rows.get('a@recv.test')?.reason, null);
        assert.deepEqual(rows.get('a@recv.test')?.updatedAt, at(13));
        assert.equal(rows.get('b@recv.test')?.state, 'expired');
        assert.equal(rows.get('b@recv.test')?.reason, 'accepted', 'undefined reason keeps the stored one');
        assert.equal(rows.get('c@recv.test')?.state, 'queued');
        assert.deepEqual(await store.twmOut.transition('t1', [], { from: ['queued'], to: 'failed' }, at(15)), []);
        assert.deepEqual(await store.twmOut.transition('nope', ['c@recv.test'], { from: ['queued'], to: 'failed' }, at(15)), []);

        // A fetch and a receipt racing on one recipient: whatever the order, it ends delivered.
        const [fetched, receipted] = await Promise.all([
          store.twmOut.transition('t1', ['c@recv.test'], { from: ['queued', 'accepted', 'pending'], to: 'fetched' }, at(16)),
          store.twmOut.transition('t1', ['c@recv.test'], { from: ['queued', 'accepted', 'pending', 'fetched'], to: 'delivered' }, at(16)),
        ]);
        assert.deepEqual(receipted, ['c@recv.test']);
        assert.ok(fetched.length <= 1);
        assert.equal((await store.twmOut.get('t1'))!.recipients.find((r) => r.recipient === 'c@recv.test')?.state, 'delivered');
      });

      test('expiring lists notices with rows in the given states, oldest expiry first', async () => {
        await store.twmOut.create({ notice: outNotice('e1', { expiresAt: at(300) }), recipients: ['a@recv.test', 'b@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('e2', { expiresAt: at(100) }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('e3', { expiresAt: at(200) }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('e4', { expiresAt: at(9999) }), recipients: ['a@recv.test'], raw });
        await store.twmOut.transition('e3', ['a@recv.test'], { from: ['queued'], to: 'delivered' }, at(50));
        await store.twmOut.transition('e1', ['a@recv.test'], { from: ['queued'], to: 'fetched' }, at(50));

        const open = ['queued', 'accepted', 'pending'] as const;
        const due = await store.twmOut.expiring(open, at(300), 10);
        assert.deepEqual(
          due.map((n) => n.id),
          ['e2', 'e1'],
        );
        assert.deepEqual(
          due[1]!.recipients.map((r) => [r.recipient, r.state]),
          [
            ['a@recv.test', 'fetched'],
            ['b@recv.test', 'queued'],
          ],
        );
        assert.deepEqual(
          (await store.twmOut.expiring(open, at(299), 10)).map((n) => n.id),
          ['e2'],
        );
        assert.deepEqual(
          (await store.twmOut.expiring(open, at(300), 1)).map((n) => n.id),
          ['e2'],
        );
        assert.deepEqual(
          (await store.twmOut.expiring(['fetched'], at(1000), 10)).map((n) => n.id),
          ['e1'],
        );
        assert.deepEqual(await store.twmOut.expiring([], at(1000), 10), []);
      });

      test('listBySender: newest first, limited by message (each with all its notices)', async () => {
        await store.twmOut.create({ notice: outNotice('l0', { createdAt: at(0) }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('l1', { createdAt: at(1) }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('l2', { createdAt: at(2), domain: 'x.test', messageId: '<l1@queue>' }), recipients: ['a@x.test'], raw });
        await store.twmOut.create({ notice: outNotice('l3', { createdAt: at(3) }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('l4', { createdAt: at(4), sender: 'bob@send.test' }), recipients: ['a@recv.test'], raw });
        assert.deepEqual(
          (await store.twmOut.listBySender('alice@send.test')).map((n) => n.id),
          ['l3', 'l2', 'l1', 'l0'],
        );
        assert.deepEqual(
          (await store.twmOut.listBySender('alice@send.test', { limit: 2 })).map((n) => n.id),
          ['l3', 'l2', 'l1'],
          'two messages: <l3@queue> and <l1@queue> with both its notices',
        );
        assert.deepEqual(
          (await store.twmOut.listBySender('alice@send.test', { limit: 1 })).map((n) => n.id),
          ['l3'],
        );
        const byMessage = await store.twmOut.listBySender('alice@send.test', { messageIds: ['<l1@queue>'] });
        assert.deepEqual(
          byMessage.map((n) => [n.id, n.recipients.map((r) => r.recipient)]),
          [
            ['l2', ['a@x.test']],
            ['l1', ['a@recv.test']],
          ],
        );
        assert.deepEqual(await store.twmOut.listBySender('nobody@send.test'), []);
      });

      test('listBySender: subaddresses of the sender too (a list bounce address), no wildcards', async () => {
        await store.twmOut.create({ notice: outNotice('s1', { createdAt: at(1), sender: 'dev+bounces@send.test' }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('s2', { createdAt: at(2), sender: 'devx@send.test' }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('s3', { createdAt: at(3), sender: 'dev+bounces@other.test' }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('s4', { createdAt: at(4), sender: 'axb+t@send.test' }), recipients: ['a@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('s5', { createdAt: at(5), sender: 'dev@send.test' }), recipients: ['a@recv.test'], raw });
        assert.deepEqual((await store.twmOut.listBySender('dev@send.test')).map((n) => n.id), ['s5', 's1']);
        assert.deepEqual(await store.twmOut.listBySender('a_b@send.test'), [], '_ is no wildcard');
        assert.deepEqual(await store.twmOut.listBySender('a%@send.test'), [], '% is no wildcard');
      });

      test('prune deletes notices whose rows are all final and that expired before the cut-off', async () => {
        await store.twmOut.create({ notice: outNotice('p1', { expiresAt: at(100) }), recipients: ['a@recv.test', 'b@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('p2', { expiresAt: at(100) }), recipients: ['a@recv.test', 'b@recv.test'], raw });
        await store.twmOut.create({ notice: outNotice('p3', { expiresAt: at(500) }), recipients: ['a@recv.test'], raw });
        await store.twmOut.transition('p1', ['a@recv.test'], { from: ['queued'], to: 'delivered' }, at(10));
        await store.twmOut.transition('p1', ['b@recv.test'], { from: ['queued'], to: 'unconfirmed' }, at(10));
        await store.twmOut.transition('p2', ['a@recv.test'], { from: ['queued'], to: 'declined' }, at(10));
        await store.twmOut.transition('p2', ['b@recv.test'], { from: ['queued'], to: 'fetched' }, at(10));
        await store.twmOut.transition('p3', ['a@recv.test'], { from: ['queued'], to: 'failed' }, at(10));

        assert.equal(await store.twmOut.prune(at(100)), 0, 'expired at, not before, the cut-off');
        assert.equal(await store.twmOut.prune(at(200)), 1);
        assert.equal(await store.twmOut.get('p1'), undefined);
        assert.ok(await store.twmOut.get('p2'), 'a non-final row keeps the notice');
        assert.ok(await store.twmOut.get('p3'), 'not expired long enough');
        assert.equal(await backend.count('twm_out_recipients'), 3);
      });
    });

    describe('inbound', () => {
      test('record stores notice and rows; find reads them back', async () => {
        const n = inNotice('r1', { to: ['alice@recv.test', 'bob@recv.test', 'ghost@recv.test'], intro: 'Hello', purpose: 'ownership-confirmation', listId: 'list.example.org' });
        await store.twmIn.record(
          n,
          [
            inRow(n, 'alice@recv.test', alice.id, 'pending'),
            inRow(n, 'bob@recv.test', bob.id, 'scheduled', { nextAttemptAt: at(30) }),
            inRow(n, 'ghost@recv.test', null, 'unknown'),
            inRow(n, 'ghost@recv.test', null, 'unknown'), // listed twice in `to`: stored once
          ],
          [{ userId: alice.id, sender: 'stranger@example.org', authDomain: 'example.org', intro: 'Hello', at: at(1) }],
        );
        const found = await store.twmIn.find('example.org', 'r1');
        assert.ok(found);
        assert.deepEqual(found.notice, n);
        assert.deepEqual(found.recipients, [
          { ...inRow(n, 'alice@recv.test', alice.id, 'pending'), attempts: 0, lastError: null, updatedAt: at(1) },
          { ...inRow(n, 'bob@recv.test', bob.id, 'scheduled', { nextAttemptAt: at(30) }), attempts: 0, lastError: null, updatedAt: at(1) },
          { ...inRow(n, 'ghost@recv.test', null, 'unknown'), attempts: 0, lastError: null, updatedAt: at(1) },
        ]);
        assert.equal(await store.twmIn.find('other.org', 'r1'), undefined, 'ids are per sender domain');
        assert.equal(await store.twmIn.find('example.org', 'nope'), undefined);
      });

      test('record counts the contact request like SMTP does, with the latest intro', async () => {
        const touch = (intro: string | null, s: number) => ({ userId: alice.id, sender: 'Stranger@example.org', authDomain: 'example.org', intro, at: at(s) });
        const rec = async (id: string, intro: string | null, s: number) => {
          const n = inNotice(id, { intro, receivedAt: at(s) });
          await store.twmIn.record(n, [inRow(n, 'alice@recv.test', alice.id, 'pending')], [touch(intro, s), touch(intro, s)]);
        };
        await rec('q1', 'First intro', 10);
        let r = await store.requests.get(alice.id, 'stranger@example.org');
        assert.ok(r);
        assert.equal(r.status, 'pending');
        assert.equal(r.count, 1, 'one notice is one attempt, even with the touch repeated');
        assert.equal(r.intro, 'First intro');
        assert.equal(r.authDomain, 'example.org');
        assert.equal(r.sampleSubject, null);
        assert.deepEqual(r.firstSeen, at(10));

        await rec('q2', 'Second intro', 20);
        await rec('q3', null, 30);
        r = await store.requests.get(alice.id, 'stranger@example.org');
        assert.equal(r?.count, 3);
        assert.equal(r?.intro, 'Second intro', 'a notice without intro keeps the last one');
        assert.deepEqual(r?.lastSeen, at(30));

        // The SMTP path counts the same request and leaves the intro alone; a decided status is kept.
        await store.requests.setStatus(alice.id, ['stranger@example.org'], 'denied');
        await store.messages.deliver([
          {
            userId: alice.id,
            mailbox: 'Screener',
            raw: Buffer.from('Subject: smtp\r\n\r\nx\r\n'),
            flags: [],
            sender: 'stranger@example.org',
            from: 'stranger@example.org',
            subject: 'smtp',
            receivedAt: at(40),
            firstContact: true,
            request: { sender: 'stranger@example.org', authDomain: null, subject: 'smtp' },
          },
        ]);
        await rec('q4', 'Third intro', 50);
        r = await store.requests.get(alice.id, 'stranger@example.org');
        assert.equal(r?.count, 5);
        assert.equal(r?.intro, 'Third intro');
        assert.equal(r?.sampleSubject, 'smtp');
        assert.equal(r?.status, 'denied');
        assert.equal((await store.requests.list(alice.id))[0]?.intro, 'Third intro');
      });

      test('record is one transaction: a duplicate id or a failing row stores nothing', async () => {
        const n = inNotice('d1', { intro: 'Original' });
        const touch = { userId: alice.id, sender: 'stranger@example.org', authDomain: 'example.org', intro: 'Original', at: at(1) };
        await store.twmIn.record(n, [inRow(n, 'alice@recv.test', alice.id, 'pending')], [touch]);
        await assert.rejects(
          store.twmIn.record({ ...n, contentSha256: '00'.repeat(32) }, [inRow(n, 'alice@recv.test', alice.id, 'pending')], [{ ...touch, intro: 'Changed' }]),
          StoreConflictError,
        );
        let r = await store.requests.get(alice.id, 'stranger@example.org');
        assert.equal(r?.count, 1);
        assert.equal(r?.intro, 'Original');
        assert.equal((await store.twmIn.find('example.org', 'd1'))?.notice.contentSha256, n.contentSha256);

        // Fails after the notice row is written (no such user): the notice goes too.
        const bad = inNotice('d2');
        await assert.rejects(store.twmIn.record(bad, [inRow(bad, 'x@recv.test', 999_999, 'pending')], [{ ...touch, intro: 'Bad' }]));
        assert.equal(await store.twmIn.find('example.org', 'd2'), undefined);
        r = await store.requests.get(alice.id, 'stranger@example.org');
        assert.equal(r?.count, 1);
        assert.equal(r?.intro, 'Original');
        assert.equal(await backend.count('twm_in_notices'), 1);
      });

      test('recordUnlessKnown: a known id writes nothing but the nonce and resolves with the stored notice', async () => {
        const n = inNotice('k1', { intro: 'Original' });
        const touch = { userId: alice.id, sender: 'stranger@example.org', authDomain: 'example.org', intro: 'Original', at: at(1) };
        const nonceOf = (key: string) => ({ key: `twm1._twoway.example.org ${key}`, until: at(900), now: at(1) });
        assert.equal(await store.twmIn.recordUnlessKnown(n, [inRow(n, 'alice@recv.test', alice.id, 'pending')], [touch], nonceOf('nonce-1')), undefined);
        // The same id again (another digest, rows and a request touch): nothing of it is written.
        const again = { ...n, contentSha256: '00'.repeat(32), intro: 'Changed' };
        const known = await store.twmIn.recordUnlessKnown(again, [inRow(n, 'alice@recv.test', alice.id, 'held'), inRow(n, 'bob@recv.test', bob.id, 'pending')], [{ ...touch, intro: 'Changed' }], nonceOf('nonce-2'));
        assert.deepEqual(known, await store.twmIn.find('example.org', 'k1'));
        assert.equal(known?.notice.contentSha256, n.contentSha256);
        assert.deepEqual(known?.recipients.map((r) => [r.rcpt, r.state]), [['alice@recv.test', 'pending']]);
        const r = await store.requests.get(alice.id, 'stranger@example.org');
        assert.equal(r?.count, 1, 'a retry is no attempt');
        assert.equal(r?.intro, 'Original');
        assert.equal(await backend.count('twm_in_notices'), 1);
        // Both nonces were remembered: each again is seen.
        assert.equal(await store.twmNonces.remember('twm1._twoway.example.org nonce-1', at(900), at(2)), false);
        assert.equal(await store.twmNonces.remember('twm1._twoway.example.org nonce-2', at(900), at(2)), false);
        // record() keeps its contract: a known id is a conflict, and its nonce is rolled back with it.
        await assert.rejects(store.twmIn.record(again, [inRow(n, 'alice@recv.test', alice.id, 'pending')], [], nonceOf('nonce-3')), StoreConflictError);
        assert.equal(await store.twmNonces.remember('twm1._twoway.example.org nonce-3', at(900), at(2)), true);
      });

      test('recordUnlessKnown: the same id twice in one group commit is recorded once, the second sees the first', async () => {
        const n = inNotice('k2');
        const rows = [inRow(n, 'alice@recv.test', alice.id, 'pending')];
        const touch = { userId: alice.id, sender: 'stranger@example.org', authDomain: 'example.org', intro: null, at: at(1) };
        const [first, second] = await Promise.all([store.twmIn.recordUnlessKnown(n, rows, [touch]), store.twmIn.recordUnlessKnown(n, rows, [touch])]);
        assert.equal(first, undefined);
        assert.deepEqual(second?.recipients.map((r) => r.rcpt), ['alice@recv.test']);
        assert.equal((await store.requests.get(alice.id, 'stranger@example.org'))?.count, 1);
      });

      test('countPending: pending rows of the user, from the sender and in all', async () => {
        const rec = async (id: string, from: string, rows: Array<[string, User, TwmInState]>) => {
          const n = inNotice(id, { from, to: rows.map(([rcpt]) => rcpt) });
          await store.twmIn.record(n, rows.map(([rcpt, u, state]) => inRow(n, rcpt, u.id, state)), []);
        };
        await rec('c1', 'pushy@example.org', [['alice@recv.test', alice, 'pending']]);
        await rec('c2', 'pushy@example.org', [['alice@recv.test', alice, 'pending'], ['bob@recv.test', bob, 'pending']]);
        await rec('c3', 'pushy@example.org', [['alice@recv.test', alice, 'held']]);
        await rec('c4', 'other@example.org', [['alice@recv.test', alice, 'pending']]);
        await rec('c5', 'pushy@example.org', [['alice+tag@recv.test', alice, 'pending'], ['alice@recv.test', alice, 'scheduled']]);
        assert.deepEqual(await store.twmIn.countPending(alice.id, 'pushy@example.org'), { fromSender: 3, total: 4 });
        assert.equal(await store.twmIn.countPendingFrom(alice.id, 'pushy@example.org'), 3);
        assert.equal(await store.twmIn.countPendingFrom(alice.id, 'other@example.org'), 1);
        assert.equal(await store.twmIn.countPendingFrom(alice.id, 'nobody@example.org'), 0);
        assert.deepEqual(await store.twmIn.countPending(bob.id, 'pushy@example.org'), { fromSender: 1, total: 1 });
      });

      test('countPendingFrom walks the sender\'s notices, not every pending row of the user (SQLite plan)', { skip: backend.name !== 'sqlite' && 'SQLite only' }, async () => {
        // A young store has no statistics: the planner must not start from (user_id, state).
        const handle = new Database(backend.url().slice('sqlite:'.length), { readonly: true });
        try {
          // The statement countPendingFrom prepares, with this call's values in its slots.
          const values: unknown[] = ['pushy@example.org', alice.id];
          const db = { db: new Kysely<Tables>({ dialect: new SqliteDialect({ database: handle }) }), dialect: 'sqlite' as const };
          const compiled = pendingFromShape(db, <T>(i: number) => values[i] as T).compile();
          const plan = (handle.prepare(`EXPLAIN QUERY PLAN ${compiled.sql}`).all(...compiled.parameters) as Array<{ detail: string }>).map((r) => r.detail);
          assert.match(plan[0] ?? '', /^SEARCH n USING INDEX twm_in_notices_from/, plan.join('\n'));
          assert.match(plan[1] ?? '', /^SEARCH r USING INDEX sqlite_autoindex_twm_in_recipients_1 \(sender_domain=\? AND notice_id=\?\)/, plan.join('\n'));
        } finally {
          handle.close();
        }
      });

      test('concurrent records share commits and keep every count', async () => {
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => {
            const n = inNotice(`cc${i}`);
            return store.twmIn.record(n, [inRow(n, 'alice@recv.test', alice.id, 'pending')], [
              { userId: alice.id, sender: 'stranger@example.org', authDomain: 'example.org', intro: null, at: at(i) },
            ]);
          }),
        );
        assert.equal((await store.requests.get(alice.id, 'stranger@example.org'))?.count, 20);
        assert.equal(await backend.count('twm_in_recipients'), 20);
      });

      test('due: scheduled and receipt-due rows whose time has come, oldest first', async () => {
        const a = inNotice('u1');
        const b = inNotice('u2', { senderDomain: 'other.org', from: 'x@other.org' });
        await store.twmIn.record(
          a,
          [
            inRow(a, 'alice@recv.test', alice.id, 'scheduled', { nextAttemptAt: at(30) }),
            inRow(a, 'bob@recv.test', bob.id, 'receipt-due', { nextAttemptAt: at(10), receipt: 'declined' }),
            inRow(a, 'carol@recv.test', null, 'unknown'),
          ],
          [],
        );
        await store.twmIn.record(
          b,
          [inRow(b, 'alice@recv.test', alice.id, 'scheduled', { nextAttemptAt: at(20) }), inRow(b, 'bob@recv.test', bob.id, 'pending', { nextAttemptAt: at(0) })],
          [],
        );
        const due = await store.twmIn.due(at(30), 10);
        assert.deepEqual(
          due.map((d) => [d.notice.id, d.recipient.rcpt, d.recipient.state]),
          [
            ['u1', 'bob@recv.test', 'receipt-due'],
            ['u2', 'alice@recv.test', 'scheduled'],
            ['u1', 'alice@recv.test', 'scheduled'],
          ],
        );
        assert.deepEqual(due[0]!.notice, a);
        assert.equal(due[0]!.recipient.receipt, 'declined');
        assert.equal(due[1]!.recipient.senderDomain, 'other.org');
        assert.deepEqual(
          (await store.twmIn.due(at(25), 10)).map((d) => d.recipient.rcpt),
          ['bob@recv.test', 'alice@recv.test'],
        );
        assert.equal((await store.twmIn.due(at(30), 1)).length, 1);
        assert.deepEqual(await store.twmIn.due(at(5), 10), []);
      });

      test('update is conditional, applies only the given fields and returns the changed rcpts', async () => {
        const n = inNotice('w1');
        await store.twmIn.record(
          n,
          [inRow(n, 'alice@recv.test', alice.id, 'scheduled', { nextAttemptAt: at(10) }), inRow(n, 'bob@recv.test', bob.id, 'pending')],
          [],
        );
        assert.deepEqual(
          await store.twmIn.update('example.org', 'w1', ['alice@recv.test', 'bob@recv.test'], ['scheduled'], { attempts: 1, lastError: 'timeout', nextAttemptAt: at(70) }, at(11)),
          ['alice@recv.test'],
        );
        assert.deepEqual(
          await store.twmIn.update('example.org', 'w1', ['alice@recv.test'], ['scheduled'], { state: 'receipt-due', receipt: 'failed', receiptError: 'digest-mismatch' }, at(12)),
          ['alice@recv.test'],
        );
        assert.deepEqual(await store.twmIn.update('example.org', 'w1', ['alice@recv.test'], ['receipt-due'], { state: 'closed', nextAttemptAt: null }, at(13)), [
          'alice@recv.test',
        ]);
        // A late retry of the fetch must not reopen a closed row.
        assert.deepEqual(await store.twmIn.update('example.org', 'w1', ['alice@recv.test'], ['scheduled', 'receipt-due'], { state: 'scheduled' }, at(14)), []);
        assert.deepEqual(await store.twmIn.update('other.org', 'w1', ['bob@recv.test'], ['pending'], { state: 'scheduled' }, at(14)), []);
        assert.deepEqual(await store.twmIn.update('example.org', 'w1', [], ['pending'], { state: 'scheduled' }, at(14)), []);

        const rows = (await store.twmIn.find('example.org', 'w1'))!.recipients;
        assert.deepEqual(rows[0], {
          ...inRow(n, 'alice@recv.test', alice.id, 'closed', { receipt: 'failed', receiptError: 'digest-mismatch' }),
          attempts: 1,
          lastError: 'timeout',
          updatedAt: at(13),
        });
        assert.equal(rows[1]?.state, 'pending');
        assert.deepEqual(rows[1]?.updatedAt, at(1));
      });

      test('forUser matches senders, or the domain and its subdomains (not lookalikes)', async () => {
        const notices = [
          inNotice('f1', { from: 'Stranger@Example.org' }),
          inNotice('f2', { from: 'news@mail.example.org', senderDomain: 'mail.example.org' }),
          inNotice('f3', { from: 'evil@evilexample.org', senderDomain: 'evilexample.org' }),
          inNotice('f4', { from: 'old@example.org', expiresAt: at(100) }),
          inNotice('f5', { from: 'other@example.org' }),
        ];
        // Results come in the order received.
        for (const [i, n] of notices.entries()) {
          n.receivedAt = at(i + 1);
          await store.twmIn.record(n, [inRow(n, 'alice@recv.test', alice.id, 'pending'), inRow(n, 'bob@recv.test', bob.id, 'pending')], []);
        }
        await store.twmIn.update('example.org', 'f5', ['alice@recv.test'], ['pending'], { state: 'closed' }, at(9));
        const ids = (rows: Array<{ notice: TwmInNotice }>) => rows.map((r) => r.notice.id);

        assert.deepEqual(ids(await store.twmIn.forUser(alice.id, { senders: ['stranger@example.org'] }, ['pending'], at(50))), ['f1']);
        assert.deepEqual(ids(await store.twmIn.forUser(alice.id, { domain: 'Example.org' }, ['pending'], at(50))), ['f1', 'f2', 'f4']);
        assert.deepEqual(ids(await store.twmIn.forUser(alice.id, { domain: 'example.org' }, ['pending'], at(100))), ['f1', 'f2'], 'expired notices are left out');
        assert.deepEqual(ids(await store.twmIn.forUser(alice.id, { domain: 'example.org' }, ['pending', 'closed'], at(100))), ['f1', 'f2', 'f5']);
        assert.deepEqual(ids(await store.twmIn.forUser(alice.id, { domain: 'evilexample.org' }, ['pending'], at(50))), ['f3']);
        assert.deepEqual(ids(await store.twmIn.forUser(alice.id, { domain: 'mail.example.org' }, ['pending'], at(50))), ['f2']);
        assert.deepEqual(
          ids(await store.twmIn.forUser(alice.id, { senders: ['evil@evilexample.org'], domain: 'mail.example.org' }, ['pending'], at(50))),
          ['f2', 'f3'],
        );
        assert.deepEqual(await store.twmIn.forUser(alice.id, {}, ['pending'], at(50)), []);
        const bobs = await store.twmIn.forUser(bob.id, { senders: ['stranger@example.org'] }, ['pending'], at(50));
        assert.deepEqual(
          bobs.map((r) => [r.notice.id, r.recipient.rcpt, r.recipient.userId]),
          [['f1', 'bob@recv.test', bob.id]],
        );
      });

      test('expire ends pending, held and scheduled rows of expired notices', async () => {
        const old = inNotice('x1', { expiresAt: at(100) });
        const fresh = inNotice('x2', { expiresAt: at(1000) });
        await store.twmIn.record(
          old,
          [
            inRow(old, 'a@recv.test', alice.id, 'pending'),
            inRow(old, 'b@recv.test', bob.id, 'scheduled', { nextAttemptAt: at(50) }),
            inRow(old, 'c@recv.test', null, 'held'),
            inRow(old, 'd@recv.test', null, 'receipt-due', { nextAttemptAt: at(50), receipt: 'delivered' }),
            inRow(old, 'e@recv.test', null, 'stored'),
            inRow(old, 'f@recv.test', null, 'unknown'),
          ],
          [],
        );
        await store.twmIn.record(fresh, [inRow(fresh, 'a@recv.test', alice.id, 'pending')], []);
        assert.equal(await store.twmIn.expire(at(99)), 0);
        assert.equal(await store.twmIn.expire(at(100)), 3);
        assert.equal(await store.twmIn.expire(at(100)), 0);
        const states = (await store.twmIn.find('example.org', 'x1'))!.recipients.map((r) => [r.rcpt, r.state, r.nextAttemptAt]);
        assert.deepEqual(states, [
          ['a@recv.test', 'expired', null],
          ['b@recv.test', 'expired', null],
          ['c@recv.test', 'expired', null],
          ['d@recv.test', 'receipt-due', at(50)],
          ['e@recv.test', 'stored', null],
          ['f@recv.test', 'unknown', null],
        ]);
        assert.equal((await store.twmIn.find('example.org', 'x2'))!.recipients[0]?.state, 'pending');
      });

      test('rescheduleGivenUp: only a fetch given up, of a live notice and free of leases, is scheduled again', async () => {
        const n = inNotice('g1', { expiresAt: at(1000), to: ['a@recv.test', 'b@recv.test', 'c@recv.test', 'd@recv.test', 'e@recv.test', 'f@recv.test', 'g@recv.test'] });
        await store.twmIn.record(
          n,
          [
            inRow(n, 'a@recv.test', alice.id, 'scheduled', { nextAttemptAt: at(1) }),
            inRow(n, 'b@recv.test', alice.id, 'scheduled', { nextAttemptAt: at(1) }),
            inRow(n, 'c@recv.test', alice.id, 'closed', { receipt: 'delivered' }),
            inRow(n, 'd@recv.test', alice.id, 'receipt-due', { receipt: 'declined', nextAttemptAt: at(500) }),
            inRow(n, 'e@recv.test', alice.id, 'closed', { receipt: 'failed', receiptError: 'digest-mismatch' }),
            inRow(n, 'f@recv.test', bob.id, 'pending'),
            inRow(n, 'g@recv.test', null, 'unknown'),
          ],
          [],
        );
        // a: given up on its attempts (twm-fetch-steps.ts retry); b: given up because the next attempt
        // would come after `expires`; f: forgotten by the pending hold (expire's second clause).
        await store.twmIn.update('example.org', 'g1', ['a@recv.test'], ['scheduled'], { state: 'expired', nextAttemptAt: null, attempts: MAX_CONTACT_ATTEMPTS, lastError: 'refused' }, at(40));
        await store.twmIn.update('example.org', 'g1', ['b@recv.test'], ['scheduled'], { state: 'expired', nextAttemptAt: null, attempts: 3, lastError: 'refused' }, at(40));
        assert.equal(await store.twmIn.expire(at(50), at(2)), 1);
        // The same given up on attempts in a notice that expires, and in another notice.
        const old = inNotice('g2', { expiresAt: at(100) });
        const other = inNotice('g3', { expiresAt: at(1000) });
        for (const x of [old, other]) {
          await store.twmIn.record(x, [inRow(x, 'a@recv.test', alice.id, 'scheduled', { nextAttemptAt: at(1) })], []);
          await store.twmIn.update('example.org', x.id, ['a@recv.test'], ['scheduled'], { state: 'expired', nextAttemptAt: null, attempts: MAX_CONTACT_ATTEMPTS, lastError: 'refused' }, at(40));
        }
        const before = await store.twmIn.find('example.org', 'g1');

        assert.deepEqual(await store.twmIn.rescheduleGivenUp('example.org', 'g2', at(100)), [], 'the notice has expired');
        assert.deepEqual(await store.twmIn.rescheduleGivenUp('other.org', 'g1', at(60)), [], 'ids are per sender domain');
        assert.deepEqual((await store.twmIn.rescheduleGivenUp('example.org', 'g1', at(60))).sort(), ['a@recv.test', 'b@recv.test']);
        const after = (await store.twmIn.find('example.org', 'g1'))!.recipients;
        for (const i of [0, 1]) assert.deepEqual(after[i], { ...before!.recipients[i]!, state: 'scheduled', attempts: 0, nextAttemptAt: at(60), updatedAt: at(60) });
        assert.deepEqual(after.slice(2), before!.recipients.slice(2), 'nothing else moved: f, expired by the pending hold, had no attempt');
        assert.equal((await store.twmIn.find('example.org', 'g3'))!.recipients[0]?.state, 'expired', 'nor another notice');
        // Once: the row is no longer given up.
        assert.deepEqual(await store.twmIn.rescheduleGivenUp('example.org', 'g1', at(61)), []);
        // Due now and free: the fetch worker's next claim takes it.
        const claimed = await store.twmIn.claim(at(60), 10, { owner: 'w1', until: at(120) });
        assert.deepEqual(claimed.map((r) => [r.notice.id, r.recipient.rcpt]).sort(), [['g1', 'a@recv.test'], ['g1', 'b@recv.test']]);
      });

      test('rescheduleGivenUp leaves a row under a live lease to its holder', async () => {
        const n = inNotice('l1', { expiresAt: at(1000) });
        await store.twmIn.record(n, [inRow(n, 'a@recv.test', alice.id, 'scheduled', { nextAttemptAt: at(1) })], []);
        assert.equal((await store.twmIn.claim(at(10), 10, { owner: 'w1', until: at(100) })).length, 1);
        // Written without the owner, so the lease stays (as expire() leaves it on a row in flight).
        await store.twmIn.update('example.org', 'l1', ['a@recv.test'], ['scheduled'], { state: 'expired', nextAttemptAt: null, attempts: MAX_CONTACT_ATTEMPTS }, at(20));
        assert.deepEqual(await store.twmIn.rescheduleGivenUp('example.org', 'l1', at(50)), []);
        assert.deepEqual(await store.twmIn.rescheduleGivenUp('example.org', 'l1', at(100)), ['a@recv.test'], 'once the lease ran out');
      });

      test('prune forgets finished notices that expired before the cut-off', async () => {
        const done = inNotice('p1', { expiresAt: at(100) });
        const open = inNotice('p2', { expiresAt: at(100) });
        const recent = inNotice('p3', { expiresAt: at(500) });
        await store.twmIn.record(done, [inRow(done, 'a@recv.test', alice.id, 'closed'), inRow(done, 'b@recv.test', null, 'unknown'), inRow(done, 'c@recv.test', bob.id, 'expired')], []);
        await store.twmIn.record(open, [inRow(open, 'a@recv.test', alice.id, 'closed'), inRow(open, 'b@recv.test', bob.id, 'receipt-due', { nextAttemptAt: at(1) })], []);
        await store.twmIn.record(recent, [inRow(recent, 'a@recv.test', alice.id, 'closed')], []);

        assert.equal(await store.twmIn.prune(at(200)), 1);
        assert.equal(await store.twmIn.find('example.org', 'p1'), undefined);
        assert.ok(await store.twmIn.find('example.org', 'p2'));
        assert.ok(await store.twmIn.find('example.org', 'p3'));
        assert.equal(await backend.count('twm_in_recipients'), 3);
      });
    });
  });
}
