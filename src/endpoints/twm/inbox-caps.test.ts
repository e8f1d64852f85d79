/**
 * The per-user pending cap (docs/protocol.md 12.7) at the recipient's inbox,
 * on a real SQLite store and the real policy: the total between counts is an
 * estimate (pending-totals.ts), so these check that a deferral still rests on
 * the store's count, and that rows freed meanwhile are seen. The same for
 * the per-sender cap, whose count is an estimate per (user, sender).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Notice } from '../../core/twm-types.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/types.ts';
import { testInbox } from '../../../test/helpers/twm-inbox.ts';

const dir = mkdtempSync(join(tmpdir(), 'twoway-inbox-caps-'));
let store: Store;
let bea = 0;
let clock = Date.UTC(2026, 11, 1, 12, 0, 0);
const signer = { keyid: 'twm1._twoway.s.test', domain: 's.test' };
let serial = 0;

before(async () => {
  store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  bea = (await store.users.create({ address: 'bea@b.test', passwordHash: 'h', mode: 'screen' })).id;
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function inbox(perUser: number, perSender = 100) {
  return testInbox(store, () => clock, { pendingCaps: { perSender, perUser } });
}

async function notify(hooks: ReturnType<typeof inbox>, from: string): Promise<string> {
  const created = new Date(clock);
  const n: Notice = { id: `caps${serial++}`, from, to: ['bea@b.test'], size: 100, sha256: 'ab'.repeat(32), created, expires: new Date(clock + 86_400_000) };
  const result = await hooks.notice(n, signer, 'cd'.repeat(32));
  return result.results[0]!.status;
}

test('strangers beyond the per-user cap are deferred, counted in the store; rows freed meanwhile are seen at once', async () => {
  const hooks = inbox(3);
  const answers = [];
  for (const s of ['s1', 's2', 's3', 's4', 's5']) answers.push(await notify(hooks, `${s}@s.test`));
  assert.deepEqual(answers, ['pending', 'pending', 'pending', 'deferred', 'deferred']);
  assert.equal((await store.twmIn.countPending(bea, 'x@s.test')).total, 3);
  // The pending hold ends them (12.7); the next stranger is decided on the store's count, not on 3.
  clock += 1;
  assert.equal(await store.twmIn.expire(new Date(clock), new Date(clock)), 3);
  assert.equal(await notify(hooks, 's6@s.test'), 'pending');
});

test('far below the cap, within a second, the estimate counts what this process recorded', async () => {
  clock += 60_000;
  await store.twmIn.expire(new Date(clock), new Date(clock));
  const hooks = inbox(20);
  const answers = [];
  // 25 notices within one second of the first count: the estimate grows with each record, reaches
  // the margin (18 of 20), and from there on the store is counted for every notice.
  for (let i = 0; i < 25; i++) answers.push(await notify(hooks, `t${i}@s.test`));
  assert.deepEqual(answers, [...Array(20).fill('pending'), ...Array(5).fill('deferred')]);
  assert.equal((await store.twmIn.countPending(bea, 'x@s.test')).total, 20);
});

test('one sender flooding a user: deferred at the per-sender cap on the store\'s count, others still pending, and freed rows seen', async () => {
  clock += 60_000;
  await store.twmIn.expire(new Date(clock), new Date(clock));
  const hooks = inbox(1000, 30);
  const answers = [];
  // Within one second of the first count: the estimate carries the sender's count up to the margin
  // (27 of 30); from there the store is counted for each notice, so the 31st on is deferred.
  for (let i = 0; i < 35; i++) answers.push(await notify(hooks, 'flood@s.test'));
  assert.deepEqual(answers, [...Array(30).fill('pending'), ...Array(5).fill('deferred')]);
  assert.equal(await store.twmIn.countPendingFrom(bea, 'flood@s.test'), 30);
  assert.equal(await notify(hooks, 'calm@s.test'), 'pending', 'per sender: another stranger is not capped');
  // Rows leave `pending` (here the hold): the next notice is decided on a fresh count.
  clock += 1;
  await store.twmIn.expire(new Date(clock), new Date(clock));
  assert.equal(await notify(hooks, 'flood@s.test'), 'pending');
});

test('a count older than a second is asked again: rows freed meanwhile by another process are seen', async () => {
  clock += 60_000;
  await store.twmIn.expire(new Date(clock), new Date(clock));
  const hooks = inbox(1000, 30);
  for (let i = 0; i < 10; i++) assert.equal(await notify(hooks, 'again@s.test'), 'pending');
  // Another process would record these: written straight to the store, unseen by this inbox's estimate.
  const n = { senderDomain: 's.test', contentSha256: 'cd'.repeat(32), from: 'again@s.test', to: ['bea@b.test'], size: 1, sha256: 'ab'.repeat(32), createdAt: new Date(clock), expiresAt: new Date(clock + 86_400_000), intro: null, purpose: null, listId: null, receivedAt: new Date(clock) };
  for (let i = 0; i < 20; i++) {
    const id = `other${serial++}`;
    await store.twmIn.record({ ...n, id }, [{ senderDomain: 's.test', noticeId: id, rcpt: 'bea@b.test', userId: bea, state: 'pending', receipt: null, receiptError: null, nextAttemptAt: null }], []);
  }
  clock += 1000;
  assert.equal(await notify(hooks, 'again@s.test'), 'deferred', '30 pending in the store: counted afresh after a second');
});
