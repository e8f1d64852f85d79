/**
 * A sender's retry of a recorded notice (docs/protocol.md 5.5) at the
 * recipient's inbox, on a real SQLite store: the store is asked whether a
 * notice was seen before only where it would be refused or deferred, and a
 * new notice learns it from its own insert (inbox.ts receiveNotice). These
 * check that a retry is still answered with its statuses ahead of every
 * other check of its own, takes no rate-limit token, and counts no attempt;
 * and that a retry schedules again the fetches given up, on their attempts or
 * for time (retried-notice.ts), and nothing else.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { MAX_CONTACT_ATTEMPTS, type Notice } from '../../core/twm-types.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/types.ts';
import { refusal, testInbox } from '../../../test/helpers/twm-inbox.ts';

const dir = mkdtempSync(join(tmpdir(), 'twoway-inbox-retry-'));
let store: Store;
let bea = 0;
const clock = Date.UTC(2026, 11, 1, 12, 0, 0);
/** The inbox's time: `clock` unless a test moves it. */
let now = clock;
/** The inbox's kicks of the fetch worker. */
let kicks = 0;
let serial = 0;

before(async () => {
  store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  bea = (await store.users.create({ address: 'bea@b.test', passwordHash: 'h', mode: 'screen' })).id;
  // Open: a stranger's notice is `accepted` and scheduled, so there is a fetch to give up.
  for (const name of ['ada', 'cat', 'dan', 'eve', 'fay']) await store.users.create({ address: `${name}@b.test`, passwordHash: 'h', mode: 'open' });
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function inbox(opts: { burst?: number; perSender?: number; maxMessageSize?: number } = {}) {
  return testInbox(store, () => now, {
    kick: () => {
      kicks++;
    },
    maxMessageSize: opts.maxMessageSize ?? 1_000_000,
    // A clock that stands still: the bucket never refills, so every token taken shows.
    noticeRate: { perSecond: 1, burst: opts.burst ?? 1000 },
    pendingCaps: { perSender: opts.perSender ?? 100, perUser: 10_000 },
  });
}

/** A fresh sender domain per test: the rate limit is per signer domain. */
function signerOf(name: string) {
  return { keyid: `twm1._twoway.${name}.test`, domain: `${name}.test` };
}

function notice(from: string, to = ['bea@b.test']): Notice {
  return { id: `retry${serial++}`, from, to, size: 100, sha256: 'ab'.repeat(32), created: new Date(clock), expires: new Date(clock + 86_400_000) };
}

const status = async (p: ReturnType<ReturnType<typeof inbox>['notice']>) => (await p).results.map((r) => r.status);

test('a retry takes no rate-limit token: the domain\'s last token is still there for a new notice', async () => {
  const hooks = inbox({ burst: 2 });
  const signer = signerOf('rate');
  const first = notice('s@rate.test');
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['pending']);
  // One token left. The retry is answered from the store and gives back the token it took.
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['pending']);
  assert.deepEqual(await status(hooks.notice(notice('s@rate.test'), signer, 'cd'.repeat(32))), ['pending'], 'the last token');
  assert.equal(await refusal(hooks.notice(notice('s@rate.test'), signer, 'cd'.repeat(32))), 'rate-limited');
  // With the bucket empty, a retry is still answered with its statuses.
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['pending']);
  assert.equal((await store.requests.get(bea, 's@rate.test'))?.count, 2, 'two notices recorded, the retries counted no attempt');
});

test('a retry is answered with its statuses where a new notice would be deferred (caps) or refused (size, id-conflict)', async () => {
  const signer = signerOf('caps');
  const first = notice('c@caps.test', ['bea@b.test', 'nobody@b.test']);
  assert.deepEqual(await status(inbox({ perSender: 1 }).notice(first, signer, 'cd'.repeat(32))), ['pending', 'unknown']);
  const capped = inbox({ perSender: 1 });
  assert.deepEqual(await status(capped.notice(notice('c@caps.test'), signer, 'cd'.repeat(32))), ['deferred'], 'the sender is at its cap');
  assert.deepEqual(await status(capped.notice(first, signer, 'cd'.repeat(32))), ['pending', 'unknown'], 'a retry at the cap');
  assert.deepEqual(await status(inbox({ maxMessageSize: 50 }).notice(first, signer, 'cd'.repeat(32))), ['pending', 'unknown'], 'a retry over the size limit');
  assert.equal(await refusal(inbox().notice(first, signer, 'ef'.repeat(32))), 'id-conflict');
  assert.equal(await refusal(inbox({ perSender: 1 }).notice(first, signer, 'ef'.repeat(32))), 'id-conflict', 'at the cap too');
  assert.equal((await store.requests.get(bea, 'c@caps.test'))?.count, 1);
});

/** What the fetch worker leaves (twm-fetch-steps.ts retry): rows given up after MAX_CONTACT_ATTEMPTS, or earlier for time. */
async function giveUp(domain: string, id: string, rcpts: string[], attempts = MAX_CONTACT_ATTEMPTS): Promise<void> {
  const changed = await store.twmIn.update(domain, id, rcpts, ['scheduled'], { state: 'expired', nextAttemptAt: null, attempts, lastError: 'connection refused' }, new Date(clock));
  assert.equal(changed.length, rcpts.length);
}

const rowsOf = async (domain: string, id: string) => (await store.twmIn.find(domain, id))!.recipients;

test('a retry after the fetch was given up on its attempts schedules it again, due now, once, and answers "accepted"', async () => {
  const hooks = inbox();
  const signer = signerOf('gone');
  const first = notice('s@gone.test', ['ada@b.test', 'bea@b.test', 'nobody@b.test']);
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['accepted', 'pending', 'unknown']);
  await giveUp('gone.test', first.id, ['ada@b.test']);
  kicks = 0;
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['accepted', 'pending', 'unknown']);
  assert.equal(kicks, 1, 'the fetch worker is woken');
  const [ada, beaRow] = await rowsOf('gone.test', first.id);
  assert.deepEqual([ada?.state, ada?.attempts, ada?.nextAttemptAt], ['scheduled', 0, new Date(clock)]);
  assert.equal(beaRow?.state, 'pending', 'a pending recipient stays pending');
  // Once per give-up: a second retry finds a fetch to come, and writes nothing.
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['accepted', 'pending', 'unknown']);
  assert.equal(kicks, 1);
  assert.deepEqual((await rowsOf('gone.test', first.id))[0], ada);
  // Given up once more, another retry schedules it once more.
  await store.twmIn.update('gone.test', first.id, ['ada@b.test'], ['scheduled'], { state: 'expired', nextAttemptAt: null, attempts: MAX_CONTACT_ATTEMPTS }, new Date(clock));
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['accepted', 'pending', 'unknown']);
  assert.equal((await rowsOf('gone.test', first.id))[0]?.state, 'scheduled');
});

test('a retry schedules again a fetch given up for time too, and leaves alone declined, failed and delivered recipients, and a notice past `expires`', async () => {
  const hooks = inbox();
  const signer = signerOf('mixed');
  const n = notice('s@mixed.test', ['ada@b.test', 'cat@b.test', 'dan@b.test', 'eve@b.test', 'fay@b.test']);
  assert.deepEqual(await status(hooks.notice(n, signer, 'cd'.repeat(32))), ['accepted', 'accepted', 'accepted', 'accepted', 'accepted']);
  await giveUp('mixed.test', n.id, ['ada@b.test']);
  // fay: given up because the next attempt would have come after `expires`, before the attempt count.
  await giveUp('mixed.test', n.id, ['fay@b.test'], 3);
  const at = new Date(clock);
  await store.twmIn.update('mixed.test', n.id, ['cat@b.test'], ['scheduled'], { state: 'closed', receipt: 'delivered', nextAttemptAt: null }, at);
  await store.twmIn.update('mixed.test', n.id, ['dan@b.test'], ['scheduled'], { state: 'receipt-due', receipt: 'declined', nextAttemptAt: new Date(clock + 60_000) }, at);
  await store.twmIn.update('mixed.test', n.id, ['eve@b.test'], ['scheduled'], { state: 'closed', receipt: 'failed', receiptError: 'digest-mismatch', nextAttemptAt: null, attempts: MAX_CONTACT_ATTEMPTS }, at);
  const before = await rowsOf('mixed.test', n.id);

  // Past `expires` the retry is refused (6.1) and nothing moves, ada's given-up fetch included.
  now = n.expires.getTime();
  try {
    assert.equal(await refusal(hooks.notice(n, signer, 'cd'.repeat(32))), 'expired');
  } finally {
    now = clock;
  }
  assert.deepEqual(await rowsOf('mixed.test', n.id), before);

  kicks = 0;
  assert.deepEqual(await status(hooks.notice(n, signer, 'cd'.repeat(32))), ['accepted', 'accepted', 'pending', 'pending', 'accepted']);
  assert.equal(kicks, 1);
  const after = await rowsOf('mixed.test', n.id);
  assert.equal(after[0]?.state, 'scheduled', 'ada: given up on attempts');
  assert.deepEqual([after[4]?.state, after[4]?.attempts], ['scheduled', 0], 'fay: given up for time, the notice still live');
  assert.deepEqual(after.slice(1, 4), before.slice(1, 4), 'the others as they were');
  // The same notice from another sender domain is another notice: nothing of this one moves.
  assert.deepEqual(await status(hooks.notice(n, signerOf('other'), 'cd'.repeat(32))), ['accepted', 'accepted', 'accepted', 'accepted', 'accepted']);
  assert.deepEqual((await rowsOf('mixed.test', n.id)).slice(1, 4), before.slice(1, 4));
});

test('a retry that schedules a fetch again is new work: it keeps its rate-limit token, and is refused where a new notice would be', async () => {
  const signer = signerOf('work');
  const hooks = inbox({ burst: 2 });
  const first = notice('s@work.test', ['ada@b.test']);
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['accepted']);
  await giveUp('work.test', first.id, ['ada@b.test']);
  assert.deepEqual(await status(hooks.notice(first, signer, 'cd'.repeat(32))), ['accepted'], 'the second token');
  assert.equal((await rowsOf('work.test', first.id))[0]?.state, 'scheduled');
  assert.equal(await refusal(hooks.notice(notice('s@work.test'), signer, 'cd'.repeat(32))), 'rate-limited', 'the bucket is empty');

  // With the bucket empty, or over the size limit, the retry is refused as a new notice would be,
  // so that its sender comes back; and nothing moves.
  await giveUp('work.test', first.id, ['ada@b.test']);
  kicks = 0;
  assert.equal(await refusal(hooks.notice(first, signer, 'cd'.repeat(32))), 'rate-limited');
  assert.equal(await refusal(inbox({ maxMessageSize: 50 }).notice(first, signer, 'cd'.repeat(32))), 'message-too-large');
  assert.equal((await rowsOf('work.test', first.id))[0]?.state, 'expired');
  assert.equal(kicks, 0);
  // A digest that differs is a conflict whatever the rows say.
  assert.equal(await refusal(inbox().notice(first, signer, 'ef'.repeat(32))), 'id-conflict');
  assert.equal((await rowsOf('work.test', first.id))[0]?.state, 'expired');
  // Where a new notice would be taken, the retry is.
  assert.deepEqual(await status(inbox().notice(first, signer, 'cd'.repeat(32))), ['accepted']);
  assert.equal(kicks, 1);
});
