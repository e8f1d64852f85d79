/**
 * When the fetch worker polls its store: on a kick, at its interval, after a
 * delivery only if the last poll left due rows behind for want of a free
 * place, and at once when a step makes a row due now (a failed receipt).
 * The interval is a minute here, so whatever happens within the test was
 * started by the worker's own wake-ups, not by its timer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { TwmInState } from '../core/twm-types.ts';
import type { Lease, TwmInboundRepository, TwmInNotice, TwmInRecipient, TwmInRecipientChange } from '../store/types.ts';
import type { TwmResponse } from './twm-client-types.ts';
import { startTwmFetchWorker } from './twm-fetch-worker.ts';

const { privateKey } = generateKeyPairSync('ed25519');
const T0 = new Date('2026-12-01T10:00:00Z');

function notice(id: string, size = 100): TwmInNotice {
  return {
    senderDomain: 'a.test',
    id,
    contentSha256: '0'.repeat(64),
    from: 'ann@a.test',
    to: ['bea@b.test'],
    size,
    sha256: '0'.repeat(64),
    createdAt: T0,
    expiresAt: new Date(T0.getTime() + 86_400_000),
    intro: null,
    purpose: null,
    listId: null,
    receivedAt: T0,
  };
}

/** The rows of a store, claimed and updated as the real ones are (leases, conditional updates); counts claims. */
function fakeInbox(notices: TwmInNotice[]) {
  const rows = notices.map((n) => ({
    notice: n,
    recipient: {
      senderDomain: n.senderDomain,
      noticeId: n.id,
      rcpt: 'bea@b.test',
      userId: 1,
      state: 'scheduled' as TwmInState,
      receipt: null,
      receiptError: null,
      nextAttemptAt: T0,
      attempts: 0,
      lastError: null,
      updatedAt: T0,
    } as TwmInRecipient,
    lease: null as Lease | null,
  }));
  let claims = 0;
  const inbox: Pick<TwmInboundRepository, 'claim' | 'update' | 'renew' | 'expire'> = {
    async claim(now: Date, limit: number, lease: Lease) {
      claims++;
      const due = rows.filter((r) => (r.recipient.state === 'scheduled' || r.recipient.state === 'receipt-due') && r.recipient.nextAttemptAt! <= now && !r.lease);
      return due.slice(0, limit).map((r) => {
        r.lease = lease;
        return { notice: r.notice, recipient: { ...r.recipient } };
      });
    },
    async update(_domain: string, id: string, rcpts: string[], from: readonly TwmInState[], change: TwmInRecipientChange, _at: Date, owner?: string) {
      const changed: string[] = [];
      for (const r of rows) {
        if (r.notice.id !== id || !rcpts.includes(r.recipient.rcpt) || !from.includes(r.recipient.state)) continue;
        if (owner !== undefined && r.lease?.owner !== owner) continue;
        Object.assign(r.recipient, change);
        r.lease = null;
        changed.push(r.recipient.rcpt);
      }
      return changed;
    },
    renew: async () => 0,
    expire: async () => 0,
  };
  return { inbox: inbox as TwmInboundRepository, rows, claims: () => claims };
}

function start(inbox: TwmInboundRepository, post: (path: string) => TwmResponse, maxInFlight = 50) {
  const posted: string[] = [];
  const worker = startTwmFetchWorker({
    inbox,
    ingest: { findRecipient: async () => undefined, ingest: async () => undefined } as never,
    client: {
      post: async (_domain, path) => {
        posted.push(path);
        return post(path);
      },
    },
    key: (domain) => ({ selector: 'twm1', domain, privateKey }),
    hostname: 'mx.b.test',
    maxMessageSize: 1000,
    backoff: { baseMs: 60_000, maxMs: 3_600_000, jitter: 0 },
    pollIntervalMs: 60_000,
    maxInFlight,
    expire: false,
    now: () => T0,
  });
  return { worker, posted };
}

const gone: TwmResponse = { status: 404, headers: { 'content-type': 'application/problem+json' }, body: Buffer.from('{"twm_error":"unknown-id"}'), endpoint: 'twm.a.test:443' };
const noContent: TwmResponse = { status: 204, headers: {}, body: Buffer.alloc(0), endpoint: 'twm.a.test:443' };

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(done(), `timed out waiting for ${what}`);
}

test('a finished delivery does not poll the store again when the last poll had room to spare', async () => {
  const { inbox, rows, claims } = fakeInbox([notice('n1')]);
  const { worker } = start(inbox, () => gone);
  try {
    await until('the fetch to end', () => rows[0]!.recipient.state === 'closed');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(claims(), 1, 'one claim: the first poll; the end of the fetch claimed nothing more');
  } finally {
    await worker.stop();
  }
});

test('a delivery that frees the only place polls at once for the rows left behind', async () => {
  const { inbox, rows } = fakeInbox([notice('n1'), notice('n2')]);
  const { worker, posted } = start(inbox, () => gone, 1);
  try {
    await until('both fetches to end', () => rows.every((r) => r.recipient.state === 'closed'));
    assert.equal(posted.length, 2);
  } finally {
    await worker.stop();
  }
});

test('a failed fetch makes its receipt due now and the worker sends it without waiting for the interval', async () => {
  // Larger than maxMessageSize: refused before any fetch, a `failed` receipt due at once.
  const { inbox, rows } = fakeInbox([notice('big', 5000)]);
  const { worker, posted } = start(inbox, () => noContent);
  try {
    await until('the failed receipt', () => rows[0]!.recipient.state === 'closed');
    assert.deepEqual(posted, ['/.well-known/twm/v1/receipt']);
    assert.equal(rows[0]!.recipient.receiptError, 'message-too-large');
  } finally {
    await worker.stop();
  }
});
