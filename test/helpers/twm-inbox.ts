/**
 * Test support for src/endpoints/twm/inbox-*.test.ts: a TWM inbox on a
 * real store with the settings those tests share (one served domain, no DNS,
 * generous limits, the test's clock), and the refusal code of a
 * hook call that must be refused.
 */
import assert from 'node:assert/strict';
import { TwmError, type TwmErrorCode } from '../../src/core/twm-types.ts';
import type { DnsResolver } from '../../src/dns/types.ts';
import { createIngest } from '../../src/ingest/ingest.ts';
import type { Store } from '../../src/store/types.ts';
import { createTwmInbox, type TwmInboxOptions } from '../../src/endpoints/twm/inbox.ts';

/** The inbox's hooks for b.test on `store`, its time read from `clock`; `overrides` replace the defaults. */
export function testInbox(store: Store, clock: () => number, overrides: Partial<TwmInboxOptions> = {}) {
  const resolver: DnsResolver = { resolve: async () => Promise.reject(new Error('no DNS in this test')) };
  return createTwmInbox({
    inbox: store.twmIn,
    ingest: createIngest({ store, maxReceivedHeaders: 100 }),
    resolver,
    domains: ['b.test'],
    maxMessageSize: 1_000_000,
    uniformAnswers: false,
    noticeRate: { perSecond: 1000, burst: 1000 },
    pendingCaps: { perSender: 100, perUser: 10_000 },
    declineDelayMs: 1000,
    kick: () => {},
    now: () => new Date(clock()),
    ...overrides,
  }).hooks;
}

/** The problem code `p` is refused with; fails the test when `p` is answered. */
export async function refusal(p: Promise<unknown>): Promise<TwmErrorCode> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TwmError) return err.problemCode;
    throw err;
  }
  assert.fail('answered, not refused');
}
