/**
 * Step 12 deferred into the notice's own transaction (inbox.ts
 * receiveWithNonce, protocols/twoway/types.ts noticeWithNonce), on a real
 * SQLite store: a new notice's nonce is remembered in the same write as the
 * notice, and every path that records nothing (a repeated notice, a
 * deferral, a refusal, two requests at once) still remembers it, so a
 * replayed request is `replay` exactly as when step 12 came first.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Notice, TwmError } from '../../core/twm-types.ts';
import type { TwmNonce } from '../../protocols/twoway/types.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/types.ts';
import { refusal, testInbox } from '../../../test/helpers/twm-inbox.ts';

const dir = mkdtempSync(join(tmpdir(), 'twoway-inbox-nonce-'));
let store: Store;
// Now, and a second ahead: the store's nonces refuse signatures created before the process started (nonces.ts).
const clock = Date.now() + 1000;
const signer = { keyid: 'twm1._twoway.s.test', domain: 's.test' };
let serial = 0;

before(async () => {
  store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  await store.users.create({ address: 'bea@b.test', passwordHash: 'h', mode: 'screen' });
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function inbox(opts: { perSender?: number; maxMessageSize?: number } = {}) {
  const hooks = testInbox(store, () => clock, {
    maxMessageSize: opts.maxMessageSize ?? 1_000_000,
    pendingCaps: { perSender: opts.perSender ?? 100, perUser: 10_000 },
    nonces: store.twmNonces,
  });
  assert.ok(hooks.noticeWithNonce, 'nonces in the store: the notice hook takes the nonce');
  return { ...hooks, noticeWithNonce: hooks.noticeWithNonce };
}

function notice(from = 'stranger@s.test', id = `nonce${serial++}`): Notice {
  return { id, from, to: ['bea@b.test'], size: 100, sha256: 'ab'.repeat(32), created: new Date(clock), expires: new Date(clock + 86_400_000) };
}

function nonce(): TwmNonce {
  // Created after every inbox here was made, however slow the machine (else stale-signature).
  return { keyid: signer.keyid, nonce: `n${String(serial++).padStart(21, '0')}`, until: new Date(clock + 900_000), created: new Date(Date.now() + 1000) };
}

const recorded = async (n: Notice) => (await store.twmIn.find(signer.domain, n.id)) !== undefined;
/** The nonce is in the store: remembering it again says it was seen. */
const remembered = async (x: TwmNonce) => !(await store.twmNonces.remember(`${x.keyid} ${x.nonce}`, x.until, new Date(clock)));

test('a new notice: its nonce is remembered with it; the nonce again (even with another notice) is replay, nothing recorded', async () => {
  const hooks = inbox();
  const n = notice();
  const x = nonce();
  const result = await hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x);
  assert.equal(result.results[0]?.status, 'pending');
  assert.ok(await recorded(n));
  const other = notice();
  assert.equal(await refusal(hooks.noticeWithNonce(other, signer, 'cd'.repeat(32), x)), 'replay');
  assert.equal(await recorded(other), false);
  assert.ok(await remembered(x));
});

test('the same request twice at once: one answer, one replay, one notice', async () => {
  const hooks = inbox();
  const n = notice();
  const x = nonce();
  const answers = await Promise.allSettled([hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x), hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x)]);
  const statuses = answers.map((a) => (a.status === 'fulfilled' ? a.value.results[0]?.status : (a.reason as TwmError).problemCode)).sort();
  assert.deepEqual(statuses, ['pending', 'replay']);
  assert.ok(await recorded(n));
});

test('one notice twice at once under two nonces: both answered, both nonces remembered', async () => {
  const hooks = inbox();
  const n = notice();
  const [x, y] = [nonce(), nonce()];
  const answers = await Promise.all([hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x), hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), y)]);
  assert.deepEqual(
    answers.map((a) => a.results[0]?.status),
    ['pending', 'pending'],
  );
  assert.ok(await remembered(x));
  assert.ok(await remembered(y));
});

test('a repeated notice (a retry under a new nonce) remembers the new nonce: that request again is replay', async () => {
  const hooks = inbox();
  const n = notice();
  await hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), nonce());
  const retry = nonce();
  assert.equal((await hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), retry)).results[0]?.status, 'pending');
  assert.equal(await refusal(hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), retry)), 'replay');
  // Replay before id-conflict, as step 12 comes before the notice's own checks.
  assert.equal(await refusal(hooks.noticeWithNonce(n, signer, 'ef'.repeat(32), retry)), 'replay');
});

test('a deferred notice (capped) remembers its nonce: replayed, it is replay, not deferred again', async () => {
  const hooks = inbox({ perSender: 1 });
  await hooks.noticeWithNonce(notice('capped@s.test'), signer, 'cd'.repeat(32), nonce());
  const n = notice('capped@s.test');
  const x = nonce();
  assert.equal((await hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x)).results[0]?.status, 'deferred');
  assert.equal(await recorded(n), false);
  assert.equal(await refusal(hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x)), 'replay');
});

test('a refused notice remembers its nonce: replayed, it is replay, not the refusal again', async () => {
  const hooks = inbox({ maxMessageSize: 50 });
  const n = notice();
  const x = nonce();
  assert.equal(await refusal(hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x)), 'message-too-large');
  assert.equal(await refusal(hooks.noticeWithNonce(n, signer, 'cd'.repeat(32), x)), 'replay');
});

test('a nonce signed before the restart is stale-signature before anything else', async () => {
  const hooks = testInbox(store, () => clock, { nonces: store.twmNonces });
  const n = notice();
  const x = { ...nonce(), created: new Date(clock - 600_000) };
  assert.equal(await refusal(hooks.noticeWithNonce!(n, signer, 'cd'.repeat(32), x)), 'stale-signature');
  assert.equal(await recorded(n), false);
  assert.equal(await remembered(x), false);
});
