import { test } from 'node:test';
import assert from 'node:assert/strict';
import { introOf } from '../delivery/twm-transport.ts';
import { composeMessage } from './compose-message.ts';
import { messageFacts, parseHeaders } from './headers.ts';

test('a composed message: encoded subject and introduction that read back as typed, no line over 78 octets', async () => {
  const intro = `Grüße aus Köln; ${'we met at the meetup, '.repeat(8)}<b>hi</b>`;
  const raw = await composeMessage({
    from: 'ann@a.test',
    to: [{ name: 'Zoë, "Z" <z>', address: 'z@b.test' }],
    cc: [{ name: null, address: 'c@b.test' }],
    subject: 'Ré: plans',
    text: `${'x'.repeat(3000)}\nzweite Zeile ü\n`,
    inReplyTo: '<m@b.test>',
    references: ['<r@b.test>', '<m@b.test>'],
    intro,
  });
  const text = raw.toString('latin1');
  assert.ok(text.split('\r\n').every((l) => l.length <= 78), 'folded and quoted-printable');
  assert.doesNotMatch(text, /[^\r]\n/, 'CRLF only');
  const headers = parseHeaders(raw);
  const facts = messageFacts(headers);
  assert.equal(facts.subject, 'Ré: plans');
  assert.equal(facts.from, 'ann@a.test');
  assert.equal(introOf(headers), intro, 'the notice carries the introduction as typed');
  assert.match(text, /^In-Reply-To: <m@b\.test>\r$/m);
  assert.match(text, /^References: <r@b\.test> <m@b\.test>\r$/m);
  assert.match(text, /^Cc: c@b\.test\r$/m);
});

test('a forward carries the original octets whole as message/rfc822', async () => {
  const original = Buffer.from('From: x@y.test\r\nSubject: orig\r\nMessage-ID: <o@y.test>\r\n\r\nthe body\r\n');
  const raw = await composeMessage({ from: 'ann@a.test', to: [{ name: null, address: 'z@b.test' }], cc: [], subject: 'Fwd: orig', text: 'note', attachMessage: { raw: original, filename: 'forwarded-message.eml' } });
  const text = raw.toString('utf8');
  assert.match(text, /Content-Type: message\/rfc822; name=forwarded-message\.eml\r\n/);
  assert.ok(text.includes(original.toString()), 'byte for byte');
  assert.doesNotMatch(text, /TWM-Intro/i, 'no introduction unless given');
});
