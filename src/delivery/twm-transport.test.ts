import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHeaders } from '../mail/headers.ts';
import { generateKeyPairSync } from 'node:crypto';
import { createTwmTransport, introOf, noticeId } from './twm-transport.ts';

const intro = (field: string) => introOf(parseHeaders(Buffer.from(`From: a@x.test\r\n${field}\r\nSubject: s\r\n\r\nbody\r\n`)));

test('the introduction: unfolded, RFC 2047 encoded words decoded (as the web composer and mail clients write non-ASCII)', () => {
  assert.equal(intro('TWM-Intro: Hi Bea,\r\n we met at the conference.'), 'Hi Bea, we met at the conference.');
  assert.equal(intro('TWM-Intro: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_?=\r\n =?UTF-8?Q?K=C3=B6ln?='), 'Grüße aus Köln');
  assert.equal(intro('TWM-Intro: =?UTF-8?B?PGI+aGk8L2I+?='), '<b>hi</b>', 'decoded to text; shown as text by every reader');
});

test('controls and bidirectional overrides are replaced after decoding, so encoding cannot smuggle them in', () => {
  assert.equal(intro('TWM-Intro: =?UTF-8?Q?a=0D=0Ab=E2=80=AEc?='), 'a b c');
  assert.equal(intro('TWM-Intro: =?UTF-8?Q?=01?='), undefined, 'nothing left');
  assert.equal(intro('X-Other: x'), undefined);
  assert.equal([...intro(`TWM-Intro: ${'é'.repeat(1200)}`)!].length, 1000);
});

test('notice ids: valid (docs/protocol.md 6.1), the creation time first, then 128 random bits', () => {
  const at = new Date('2026-12-05T08:00:00.123Z');
  const [a, b, later] = [noticeId(at), noticeId(at), noticeId(new Date(at.getTime() + 1))];
  for (const id of [a, b, later]) assert.match(id!, /^[A-Za-z0-9_-]{30}$/);
  assert.notEqual(a, b, 'the random part differs');
  assert.equal(a!.slice(0, 8), b!.slice(0, 8), 'the same millisecond, the same prefix');
  assert.equal(Buffer.from(a!.slice(8), 'base64url').length, 16);
  assert.ok(later!.slice(0, 8) > a!.slice(0, 8), 'time order is binary order');
});

test("the router's lookups are used: no second read of the outbox, the notice that lists the recipient is sent", async () => {
  const now = new Date('2026-12-05T08:00:00Z');
  const id = noticeId(now);
  const notice = {
    id,
    messageId: 'm1',
    sender: 'ann@a.test',
    domain: 'b.test',
    content: Buffer.from(JSON.stringify({ id, from: 'ann@a.test' })),
    subject: 's',
    messageIdHeader: '<m1@a.test>',
    size: 10,
    sha256: 'ab',
    createdAt: now,
    expiresAt: new Date(now.getTime() + 86_400_000),
    bodyRemoved: false,
    expiryReported: false,
    recipients: [{ noticeId: id, recipient: 'bea@b.test', state: 'queued' as const, reason: null, updatedAt: now }],
  };
  const posted: string[] = [];
  const moved: string[] = [];
  const transport = createTwmTransport({
    outbox: {
      findByMessage: async () => assert.fail('read again'),
      create: async () => assert.fail('a new notice'),
      transition: async (_id: string, rcpts: string[], change: { to: string }) => {
        moved.push(`${rcpts.join(',')} ${change.to}`);
        return rcpts;
      },
    } as never,
    client: {
      post: async (_domain: string, path: string) => {
        posted.push(path);
        return { status: 200, headers: {}, body: Buffer.from(JSON.stringify({ id, results: [{ rcpt: 'bea@b.test', status: 'accepted' }] })), endpoint: 'twm.b.test:443' };
      },
    } as never,
    key: () => ({ keyid: 's1._twoway.a.test', privateKey: generateKeyPairSync('ed25519').privateKey }) as never,
    expiryMs: 86_400_000 * 7,
    domains: ['a.test'],
    now: () => now,
  });
  const raw = Buffer.from('From: <ann@a.test>\r\nTo: <bea@b.test>\r\n\r\nbody\r\n');
  const [result] = await transport.deliver('b.test', { messageId: 'm1', sender: 'ann@a.test', raw, routed: { notices: [notice] } }, ['bea@b.test']);
  assert.equal(result!.status, 'delivered');
  assert.equal(posted.length, 1);
  assert.deepEqual(moved, ['bea@b.test accepted']);
});
