/**
 * Delivery (group commit), the Screener's requests, move and remove, against
 * every backend (test-backends.ts).
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MailboxName, User } from '../core/types.ts';
import type { NewMessage, Store } from './types.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();

function message(user: User, mailbox: MailboxName, body: string, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    userId: user.id,
    mailbox,
    raw: Buffer.from(`Subject: test\r\n\r\n${body}\r\n`),
    flags: [],
    sender: 'sender@example.org',
    from: 'sender@example.org',
    subject: 'test',
    receivedAt: new Date(),
    firstContact: false,
    ...extra,
  };
}

function held(user: User, sender: string, subject: string | null, at: Date): NewMessage {
  return message(user, 'Screener', `from ${sender} at ${at.getTime()}`, {
    sender,
    from: sender,
    subject,
    receivedAt: at,
    firstContact: true,
    request: { sender, authDomain: sender.split('@')[1] ?? null, subject },
  });
}

for (const backend of backends) {
  describe(`messages (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: User;
    let bob: User;
    beforeEach(async () => {
      store = await backend.open();
      alice = await store.users.create({ address: 'alice@example.com', passwordHash: 'h', mode: 'screen' });
      bob = await store.users.create({ address: 'bob@example.com', passwordHash: 'h', mode: 'open' });
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('deliver stores metadata and body; get, list and setFlags read and change them', async () => {
      const at = new Date('2024-05-01T10:00:00.123Z');
      const raw = Buffer.from('From: x@example.org\r\nSubject: Hello\r\n\r\nBody \u00e9\r\n');
      const [m] = await store.messages.deliver([
        message(alice, 'INBOX', '', { raw, flags: ['\\Recent'], subject: 'Hello', receivedAt: at, firstContact: true, sender: null }),
      ]);
      assert.ok(m);
      assert.equal(m.uid, 1);
      assert.equal(m.mailbox, 'INBOX');
      assert.equal(m.size, raw.length);
      const got = await store.messages.get(alice.id, m.id);
      assert.ok(got);
      assert.ok(got.raw.equals(raw));
      const { raw: _raw, ...summary } = got;
      assert.deepEqual(summary, {
        id: m.id,
        userId: alice.id,
        mailbox: 'INBOX',
        uid: 1,
        flags: ['\\Recent'],
        size: raw.length,
        sender: null,
        from: 'sender@example.org',
        subject: 'Hello',
        receivedAt: at,
        firstContact: true,
      });
      assert.deepEqual(summary, m);
      assert.equal(await store.messages.setFlags(alice.id, m.id, ['\\Seen', '\\Flagged']), true);
      assert.deepEqual((await store.messages.list(alice.id))[0]?.flags, ['\\Seen', '\\Flagged']);
      assert.equal(await store.messages.setFlags(alice.id, 999_999, []), false);
      assert.deepEqual(await store.messages.deliver([]), []);
    });

    test('list filters by mailbox, orders by UID, pages with limit/offset', async () => {
      const t0 = Date.now();
      for (let i = 0; i < 5; i++) {
        await store.messages.deliver([message(alice, i % 2 ? 'Sent' : 'INBOX', `m${i}`, { receivedAt: new Date(t0 + i) })]);
      }
      const inbox = await store.messages.list(alice.id, { mailbox: 'INBOX' });
      assert.deepEqual(
        inbox.map((m) => m.uid),
        [1, 2, 3],
      );
      assert.deepEqual(
        (await store.messages.list(alice.id, { mailbox: 'Sent' })).map((m) => m.uid),
        [1, 2],
      );
      const all = await store.messages.list(alice.id);
      assert.equal(all.length, 5);
      assert.deepEqual(
        (await store.messages.list(alice.id, { limit: 2, offset: 1 })).map((m) => m.id),
        all.slice(1, 3).map((m) => m.id),
      );
      assert.deepEqual(
        (await store.messages.list(alice.id, { offset: 3 })).map((m) => m.id),
        all.slice(3).map((m) => m.id),
      );
      const boxes = await store.messages.mailboxes(alice.id);
      assert.deepEqual(
        boxes.map((b) => [b.name, b.count, b.uidNext]),
        [
          ['INBOX', 3, 4],
          ['Screener', 0, 1],
          ['Junk', 0, 1],
          ['Sent', 2, 3],
          ['Drafts', 0, 1],
          ['Trash', 0, 1],
        ],
      );
    });

    test('list key-pages a mailbox newest first (beforeUid) and filters by subject or From: (text, % and _ literal)', async () => {
      const subjects = ['Invoice 100%', 'invoice_2', 'Lunch', 'Meeting', 'INVOICE three'];
      for (const [i, subject] of subjects.entries()) await store.messages.deliver([message(alice, 'INBOX', `m${i}`, { subject, from: i === 2 ? 'Billing <bills@shop.example>' : 'x@example.org' })]);
      await store.messages.deliver([message(bob, 'INBOX', 'bob', { subject: 'invoice for bob' })]);
      const uids = (o: object) => store.messages.list(alice.id, { mailbox: 'INBOX', ...o }).then((l) => l.map((m) => m.uid));
      assert.deepEqual(await uids({ newestFirst: true, limit: 2 }), [5, 4]);
      assert.deepEqual(await uids({ beforeUid: 4, limit: 2 }), [3, 2]);
      assert.deepEqual(await uids({ beforeUid: 2, limit: 2 }), [1]);
      assert.deepEqual(await uids({ newestFirst: true, text: 'invoice' }), [5, 2, 1], "case-insensitive, only alice's");
      assert.deepEqual(await uids({ newestFirst: true, text: 'BILLS@' }), [3], 'the From: address');
      assert.deepEqual(await uids({ newestFirst: true, text: '100%' }), [1], '% is literal');
      assert.deepEqual(await uids({ newestFirst: true, text: 'e_2' }), [2], '_ is literal');
      assert.deepEqual(await uids({ newestFirst: true, text: 'e_t' }), [], '_ matches no other character');
    });

    test('group commit: 200 concurrent deliveries get distinct consecutive UIDs and shared bodies', async () => {
      const targets: Array<[User, MailboxName]> = [
        [alice, 'INBOX'],
        [alice, 'Screener'],
        [bob, 'INBOX'],
      ];
      const calls = Array.from({ length: 200 }, (_, i) => {
        const [user, mailbox] = targets[i % targets.length]!;
        // 10 distinct contents among 200 messages: bodies must be stored 10 times, not 200.
        return store.messages.deliver([message(user, mailbox, `body ${i % 10}`, { subject: `n${i}` })]);
      });
      const results = (await Promise.all(calls)).map((r) => {
        assert.equal(r.length, 1);
        return r[0]!;
      });
      for (const [i, m] of results.entries()) assert.equal(m.subject, `n${i}`, 'each caller gets its own message back');
      assert.equal(new Set(results.map((m) => m.id)).size, 200);

      for (const [user, mailbox] of targets) {
        const listed = await store.messages.list(user.id, { mailbox });
        const expected = results.filter((m) => m.userId === user.id && m.mailbox === mailbox);
        assert.equal(listed.length, expected.length);
        assert.deepEqual(
          listed.map((m) => m.uid),
          Array.from({ length: expected.length }, (_, i) => i + 1),
        );
        assert.deepEqual(
          expected.map((m) => m.uid).sort((a, b) => a - b),
          listed.map((m) => m.uid),
        );
        const box = (await store.messages.mailboxes(user.id)).find((b) => b.name === mailbox);
        assert.equal(box?.uidNext, expected.length + 1);
      }
      assert.equal(await backend.count('messages'), 200);
      assert.equal(await backend.count('message_bodies'), 10);
      // Content is intact for a deduplicated body.
      const sample = await store.messages.get(alice.id, results[13]!.id);
      assert.equal(sample?.raw.toString(), 'Subject: test\r\n\r\nbody 3\r\n');
    });

    test('one bad delivery in a group fails alone', async () => {
      const calls = Array.from({ length: 20 }, (_, i) =>
        store.messages.deliver([message(i === 7 ? { ...alice, id: 987_654 } : alice, 'INBOX', `m${i}`)]),
      );
      const settled = await Promise.allSettled(calls);
      for (const [i, s] of settled.entries()) assert.equal(s.status, i === 7 ? 'rejected' : 'fulfilled', `call ${i}`);
      const inbox = await store.messages.list(alice.id, { mailbox: 'INBOX' });
      assert.deepEqual(
        inbox.map((m) => m.uid),
        Array.from({ length: 19 }, (_, i) => i + 1),
      );
    });

    test('a call with several items commits them together or not at all', async () => {
      await assert.rejects(
        store.messages.deliver([message(alice, 'INBOX', 'ok'), message({ ...alice, id: 987_654 }, 'INBOX', 'bad')]),
      );
      assert.deepEqual(await store.messages.list(alice.id), []);
      const two = await store.messages.deliver([message(alice, 'INBOX', 'a'), message(alice, 'INBOX', 'b')]);
      assert.deepEqual(
        two.map((m) => m.uid),
        [1, 2],
      );
    });

    test('the twm_key and request indexes hold only rows with a value, and lookups by those columns still find theirs (migration 0025)', async () => {
      const definition = async (index: string) => {
        const rows =
          backend.name === 'sqlite'
            ? await backend.query(`SELECT sql AS def FROM sqlite_master WHERE name = '${index}'`)
            : await backend.query(`SELECT indexdef AS def FROM pg_indexes WHERE indexname = '${index}' AND schemaname = current_schema()`);
        return String(rows[0]?.def ?? '');
      };
      assert.match(await definition('messages_twm_key'), /where \(?"?twm_key"? is not null/i);
      assert.match(await definition('messages_request'), /where \(?"?request_id"? is not null/i);
      await store.messages.deliver([message(bob, 'INBOX', 'plain'), message(bob, 'INBOX', 'fetched', { twmKey: 'sender.test n1' })]);
      assert.deepEqual(await store.messages.withTwmKey([alice.id, bob.id], 'sender.test n1'), [bob.id]);
      assert.deepEqual([...(await store.messages.twmKeysOf(bob.id, ['sender.test n1', 'sender.test n2']))], ['sender.test n1']);
      if (backend.name === 'sqlite') {
        const plan = await backend.query("EXPLAIN QUERY PLAN SELECT DISTINCT user_id FROM messages WHERE user_id IN (1, 2) AND twm_key = 'k'");
        assert.match(String(plan.map((r) => r.detail).join('\n')), /INDEX messages_twm_key/);
      }
    });

    describe('requests', () => {
      test('deliver creates then counts the request; held counts Screener messages', async () => {
        const t = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s));
        await store.messages.deliver([held(alice, 'Stranger@Example.net', null, t(1))]);
        await store.messages.deliver([held(alice, 'stranger@example.net', 'First subject', t(2))]);
        await store.messages.deliver([held(alice, 'stranger@example.net', 'Second subject', t(3))]);
        const r = await store.requests.get(alice.id, 'stranger@example.net');
        assert.ok(r);
        assert.equal(r.sender, 'stranger@example.net');
        assert.equal(r.userId, alice.id);
        assert.equal(r.count, 3);
        assert.equal(r.held, 3);
        assert.deepEqual(r.firstSeen, t(1));
        assert.deepEqual(r.lastSeen, t(3));
        assert.equal(r.sampleSubject, 'First subject');
        assert.equal(r.authDomain, 'example.net');
        assert.equal(r.status, 'pending');

        // Status is kept by later deliveries; a delivery outside the Screener counts but is not held.
        assert.equal(await store.requests.setStatus(alice.id, ['stranger@example.net'], 'approved'), 1);
        const [inInbox] = await store.messages.deliver([
          message(alice, 'INBOX', 'later', { receivedAt: t(4), request: { sender: 'stranger@example.net', authDomain: null, subject: 'x' } }),
        ]);
        const r2 = await store.requests.get(alice.id, 'stranger@example.net');
        assert.equal(r2?.status, 'approved');
        assert.equal(r2?.count, 4);
        assert.equal(r2?.held, 3);
        assert.deepEqual(r2?.lastSeen, t(4));
        assert.equal(r2?.authDomain, null, 'an unauthenticated attempt clears the auth domain for good (it may be forged)');
        const ids = await store.requests.heldMessageIds(alice.id, ['stranger@example.net']);
        assert.equal(ids.length, 3);
        assert.ok(!ids.includes(inInbox!.id));
      });

      test('concurrent attempts of one sender are all counted', async () => {
        const now = Date.now();
        await Promise.all(Array.from({ length: 30 }, (_, i) => store.messages.deliver([held(alice, 'x@spam.test', `s${i}`, new Date(now + i))])));
        const r = await store.requests.get(alice.id, 'x@spam.test');
        assert.equal(r?.count, 30);
        assert.equal(r?.held, 30);
        assert.equal(r?.sampleSubject, 's0');
        assert.deepEqual(r?.firstSeen, new Date(now));
        assert.deepEqual(r?.lastSeen, new Date(now + 29));
      });

      test('list, status filter, sendersOfDomain, heldMessageIds, setStatus, remove', async () => {
        const now = Date.now();
        await store.messages.deliver([held(alice, 'a@corp.example', 'a', new Date(now))]);
        await store.messages.deliver([held(alice, 'b@corp.example', 'b', new Date(now + 1))]);
        await store.messages.deliver([held(alice, 'c@sub.corp.example', 'c', new Date(now + 2))]);
        await store.messages.deliver([held(alice, 'd@corpxexample', 'd', new Date(now + 3))]);
        await store.messages.deliver([held(alice, 'e@other.test', 'e', new Date(now + 4))]);
        assert.deepEqual(
          (await store.requests.list(alice.id)).map((r) => r.sender),
          ['e@other.test', 'd@corpxexample', 'c@sub.corp.example', 'b@corp.example', 'a@corp.example'],
        );
        assert.deepEqual(await store.requests.sendersOfDomain(alice.id, 'corp.example'), ['a@corp.example', 'b@corp.example']);
        // "_" and "%" are not wildcards.
        assert.deepEqual(await store.requests.sendersOfDomain(alice.id, 'corp_example'), []);
        assert.deepEqual(await store.requests.sendersOfDomain(alice.id, '%'), []);

        const ids = await store.requests.heldMessageIds(alice.id, ['a@corp.example', 'b@corp.example']);
        assert.equal(ids.length, 2);
        const all = await store.messages.list(alice.id, { mailbox: 'Screener' });
        assert.deepEqual(
          ids,
          all.filter((m) => m.sender?.endsWith('@corp.example')).map((m) => m.id),
        );

        assert.equal(await store.requests.setStatus(alice.id, ['a@corp.example', 'nobody@x.test'], 'denied'), 1);
        assert.deepEqual(await store.requests.sendersOfDomain(alice.id, 'corp.example'), ['b@corp.example'], 'only pending');
        assert.deepEqual(
          (await store.requests.list(alice.id, { status: 'denied' })).map((r) => r.sender),
          ['a@corp.example'],
        );

        // Forgetting a request keeps its messages, unlinked.
        assert.equal(await store.requests.remove(alice.id, ['b@corp.example']), 1);
        assert.equal(await store.requests.get(alice.id, 'b@corp.example'), undefined);
        assert.equal((await store.messages.list(alice.id, { mailbox: 'Screener' })).length, 5);
        assert.deepEqual(await store.requests.heldMessageIds(alice.id, ['b@corp.example']), []);
      });
    });

    describe('move and remove', () => {
      test('move assigns new UIDs in the target and clears the request link', async () => {
        await store.messages.deliver([message(alice, 'INBOX', 'already there')]);
        const now = Date.now();
        const heldMsgs = await store.messages.deliver([
          held(alice, 's@example.net', 'one', new Date(now)),
          held(alice, 's@example.net', 'two', new Date(now + 1)),
        ]);
        const ids = heldMsgs.map((m) => m.id);
        assert.equal((await store.requests.get(alice.id, 's@example.net'))?.held, 2);

        assert.equal(await store.messages.move(alice.id, [...ids, 424242], 'INBOX'), 2);
        const inbox = await store.messages.list(alice.id, { mailbox: 'INBOX' });
        assert.deepEqual(
          inbox.map((m) => [m.uid, m.subject]),
          [
            [1, 'test'],
            [2, 'one'],
            [3, 'two'],
          ],
        );
        const moved = await store.messages.get(alice.id, ids[0]!);
        assert.equal(moved?.mailbox, 'INBOX');
        assert.equal(moved?.uid, 2);
        const r = await store.requests.get(alice.id, 's@example.net');
        assert.equal(r?.held, 0);
        assert.equal(r?.count, 2);
        assert.deepEqual(await store.requests.heldMessageIds(alice.id, ['s@example.net']), []);

        // Back to the Screener: a fresh UID there, and no link to a request.
        assert.equal(await store.messages.move(alice.id, [ids[0]!], 'Screener'), 1);
        assert.equal((await store.messages.get(alice.id, ids[0]!))?.uid, 3);
        assert.equal((await store.requests.get(alice.id, 's@example.net'))?.held, 0);
        // Moving into the mailbox it is in already does nothing.
        assert.equal(await store.messages.move(alice.id, [ids[0]!], 'Screener'), 0);
        assert.equal(await store.messages.move(alice.id, [], 'Trash'), 0);
        const boxes = await store.messages.mailboxes(alice.id);
        assert.deepEqual(
          boxes.map((b) => [b.name, b.count, b.uidNext]),
          [
            ['INBOX', 2, 4],
            ['Screener', 1, 4],
            ['Junk', 0, 1],
            ['Sent', 0, 1],
            ['Drafts', 0, 1],
            ['Trash', 0, 1],
          ],
        );
      });

      test('remove deletes messages and collects the bodies nobody references', async () => {
        const [m1, m2, m3] = await store.messages.deliver([
          message(alice, 'INBOX', 'shared'),
          message(alice, 'Trash', 'shared'),
          message(alice, 'INBOX', 'own'),
        ]);
        const [m4] = await store.messages.deliver([message(bob, 'INBOX', 'shared')]);
        assert.equal(await backend.count('message_bodies'), 2);

        assert.equal(await store.messages.remove(alice.id, [m1!.id, m3!.id, m3!.id, 5_555_555]), 2);
        assert.equal(await backend.count('message_bodies'), 1, 'the shared body stays');
        assert.equal(await store.messages.get(alice.id, m1!.id), undefined);
        assert.equal((await store.messages.get(alice.id, m2!.id))?.raw.toString(), 'Subject: test\r\n\r\nshared\r\n');

        assert.equal(await store.messages.remove(alice.id, [m2!.id]), 1);
        assert.equal(await backend.count('message_bodies'), 1, 'bob still holds it');
        assert.equal(await store.messages.remove(bob.id, [m4!.id]), 1);
        assert.equal(await backend.count('message_bodies'), 0);
        assert.equal(await store.messages.remove(alice.id, []), 0);

        // A body collected and then delivered again is stored again.
        const [again] = await store.messages.deliver([message(alice, 'INBOX', 'shared')]);
        assert.equal((await store.messages.get(alice.id, again!.id))?.raw.toString(), 'Subject: test\r\n\r\nshared\r\n');
      });

      test('close waits for deliveries in flight', async () => {
        const pending = Promise.all(Array.from({ length: 50 }, (_, i) => store.messages.deliver([message(alice, 'INBOX', `m${i}`)])));
        await store.close();
        assert.equal((await pending).length, 50);
        store = await backend.open(); // afterEach closes this one
      });
    });
  });
}
