/**
 * A sender's retry of a recorded notice (docs/protocol.md 5.5) at the
 * recipient's inbox, on a real SQLite store: the store is asked whether a
 * notice was seen before only where it would be refused or deferred, and a
 * new notice learns it from its own insert (inbox.ts receiveNotice). These
 * check that a retry is still answered with its statuses ahead of every
 * other check of its own, takes no rate-limit token, and counts no attempt.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Notice } from '../../core/twm-types.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/types.ts';
import { refusal, testInbox } from '../../../test/helpers/twm-inbox.ts';

const dir = mkdtempSync(join(tmpdir(), 'twoway-inbox-retry-'));
let store: Store;
let bea = 0;
const clock = Date.UTC(2026, 11, 1, 12, 0, 0);
let serial = 0;

before(async () => {
  store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  bea = (await store.users.create({ address: 'bea@b.test', passwordHash: 'h', mode: 'screen' })).id;
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function inbox(opts: { burst?: number; perSender?: number; maxMessageSize?: number } = {}) {
  return testInbox(store, () => clock, {
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
