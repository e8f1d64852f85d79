/**
 * answerRetry on a scripted store: what the answer and the rate-limit token
 * become when another retry (here or in another process) rescheduled the
 * given-up fetch between this retry's read and its write. The paths through
 * a real store are inbox-retry.test.ts's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CONTACT_ATTEMPTS, type Notice } from '../../core/twm-types.ts';
import type { TwmInNotice, TwmInRecipient } from '../../store/types.ts';
import { answerRetry, type RetryContext } from './retried-notice.ts';

const at = new Date(Date.UTC(2026, 11, 1, 12, 0, 0));
const n: Notice = { id: 'raced-retry-0000000000', from: 's@x.test', to: ['ada@b.test'], size: 10, sha256: 'ab'.repeat(32), created: at, expires: new Date(at.getTime() + 3_600_000) };
const notice: TwmInNotice = {
  senderDomain: 'x.test',
  id: n.id,
  contentSha256: 'cd'.repeat(32),
  from: n.from,
  to: n.to,
  size: n.size,
  sha256: n.sha256,
  createdAt: n.created,
  expiresAt: n.expires,
  intro: null,
  purpose: null,
  listId: null,
  receivedAt: at,
};
const row = (over: Partial<TwmInRecipient>): TwmInRecipient => ({
  senderDomain: 'x.test',
  noticeId: n.id,
  rcpt: 'ada@b.test',
  userId: 1,
  state: 'expired',
  receipt: null,
  receiptError: null,
  nextAttemptAt: null,
  attempts: MAX_CONTACT_ATTEMPTS,
  lastError: 'connection refused',
  updatedAt: at,
  ...over,
});

test('a retry that finds the fetch rescheduled by another in between answers from the store, gives its token back and kicks nobody', async () => {
  const given: string[] = [];
  let kicks = 0;
  const ctx: RetryContext = {
    inbox: {
      // The other retry won the conditional write; the store now holds its result.
      rescheduleGivenUp: async () => [],
      find: async () => ({ notice, recipients: [row({ state: 'scheduled', attempts: 0, nextAttemptAt: at })] }),
    },
    uniformAnswers: false,
    giveBack: (key) => given.push(key),
    kick: () => {
      kicks++;
    },
  };
  const result = await answerRetry(ctx, { notice, recipients: [row({})] }, n, 'cd'.repeat(32), 'x.test', at, { rateKey: 'x.test' });
  assert.deepEqual(result.results, [{ rcpt: 'ada@b.test', status: 'accepted' }]);
  assert.deepEqual(given, ['x.test'], 'this retry did no new work');
  assert.equal(kicks, 0);
});
