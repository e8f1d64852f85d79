import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRemoteTransport } from './remote-transport.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

const raw = Buffer.from('From: <ann@a.test>\r\nTo: <bea@b.test>\r\nSubject: s\r\n\r\nbody\r\n');
const message: OutboundMessage = { messageId: 'm1', sender: 'ann@a.test', raw };

/** A transport that records what it was handed and delivers everything. */
function recorder(): Transport & { seen: OutboundMessage[] } {
  const seen: OutboundMessage[] = [];
  return {
    seen,
    deliver: async (_domain, m, recipients): Promise<RecipientResult[]> => {
      seen.push(m);
      return recipients.map((recipient) => ({ recipient, status: 'delivered' as const, reply: { code: 250, text: 'ok' } as never }));
    },
  };
}

function setup(options: { twmDomain: boolean; testing?: boolean }) {
  const smtp = recorder();
  const twm = recorder();
  let lookups = 0;
  const remote = createRemoteTransport({
    smtp,
    twm,
    client: { discover: async () => (options.twmDomain ? { kind: 'twm' } : { kind: 'none' }) as never },
    outbox: {
      findByMessage: async () => {
        lookups++;
        return [];
      },
    },
    domains: ['a.test'],
    ...(options.testing ? { testing: true } : {}),
  });
  return { remote, smtp, twm, lookups: () => lookups };
}

test('to a TWM domain: the notice transport gets what the router read (no notice yet, the parsed header), looked up once', async () => {
  const s = setup({ twmDomain: true });
  await s.remote.deliver('b.test', message, ['bea@b.test']);
  assert.equal(s.lookups(), 1);
  assert.equal(s.smtp.seen.length, 0);
  const handed = s.twm.seen[0]!;
  assert.deepEqual(handed.routed?.notices, []);
  assert.deepEqual(
    handed.routed?.headers?.map((h) => h.name),
    ['from', 'to', 'subject'],
  );
  assert.equal(handed.raw, raw);
});

test('to an SMTP domain, and the SMTP copy of testing mode: nothing of the router goes along', async () => {
  const plain = setup({ twmDomain: false });
  await plain.remote.deliver('b.test', message, ['bea@b.test']);
  assert.equal(plain.twm.seen.length, 0);
  assert.equal(plain.smtp.seen[0]!.routed, undefined);

  const testing = setup({ twmDomain: true, testing: true });
  await testing.remote.deliver('b.test', message, ['bea@b.test']);
  assert.ok(testing.twm.seen[0]!.routed, 'the notice transport has it');
  const copy = testing.smtp.seen[0]!;
  assert.equal(copy.routed, undefined, 'the marked copy has a header of its own: not the one parsed here');
  assert.match(copy.raw.toString(), /^TWM-Testing: y\r\n/);
});
