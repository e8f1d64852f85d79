import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { User } from '../core/types.ts';
import { forwardPrefill, htmlToText, replyPrefill } from './compose-prefill.ts';

const carol = { id: 1, address: 'carol@example.test' } as User;
const stored = (raw: string, from: string | null, subject: string | null) => ({ raw: Buffer.from(raw), from, sender: from, subject, receivedAt: new Date('2026-01-02T03:04:05Z') });

test('reply: to the Reply-To (else the author), "Re:" once, the text quoted; reply all adds the others but not the user', () => {
  const raw = [
    'From: =?UTF-8?Q?Z=C3=B6e?= <zoe@x.test>',
    'Reply-To: list@x.test',
    'To: carol@example.test, "Bo, Jr." <bo@y.test>',
    'Cc: carol+tag@example.test, dee@z.test',
    'Subject: plans',
    '',
    'line one',
    '',
    'line three',
    '',
  ].join('\r\n');
  const r = replyPrefill(carol, stored(raw, 'zoe@x.test', 'plans'), false);
  assert.equal(r.to, 'list@x.test');
  assert.equal(r.cc, '');
  assert.equal(r.subject, 'Re: plans');
  assert.equal(r.text, '\n\nOn 2026-01-02 03:04 UTC, Zöe <zoe@x.test> wrote:\n> line one\n>\n> line three\n');
  const all = replyPrefill(carol, stored(raw, 'zoe@x.test', 'plans'), true);
  assert.equal(all.cc, '"Bo, Jr." <bo@y.test>, dee@z.test');
  assert.equal(replyPrefill(carol, stored(raw, 'zoe@x.test', 'RE: plans'), false).subject, 'RE: plans');
});

test("reply to one of the user's own sent messages writes to its recipients again", () => {
  const raw = 'From: carol@example.test\r\nTo: ann@x.test\r\nSubject: s\r\n\r\nhi\r\n';
  assert.equal(replyPrefill(carol, stored(raw, 'carol@example.test', 's'), false).to, 'ann@x.test');
});

test('an HTML-only original is quoted as text: no markup, entities decoded, script content dropped', () => {
  assert.equal(htmlToText('<p>a &lt;b&gt; &amp; c</p><script>alert(1)</script><div>d<br>e</div>'), 'a <b> & c\nd\ne\n');
  const raw = 'From: a@x.test\r\nSubject: h\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>you</b></p>\r\n';
  assert.match(replyPrefill(carol, stored(raw, 'a@x.test', 'h'), false).text, /wrote:\n> Hello you\n/);
});

test('forward: "Fwd:" once, no recipients, no text (the original is attached whole)', () => {
  assert.deepEqual(forwardPrefill(stored('Subject: x\r\n\r\n', null, 'Fwd: x')), { to: '', cc: '', subject: 'Fwd: x', text: '' });
  assert.equal(forwardPrefill(stored('Subject: x\r\n\r\n', null, null)).subject, 'Fwd: ');
});
