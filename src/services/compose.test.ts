import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddress } from '../core/address.ts';
import { checkDraft, COMPOSE_LIMITS, splitAddressField, threadHeaders, type Draft } from './compose.ts';

const draft = (d: Partial<Draft>): Draft => ({ to: '', cc: '', bcc: '', subject: '', text: '', intro: '', replyTo: null, forward: null, ...d });
// The outbound service's recipient check without its address-literal switch: parseAddress is what it runs.
const outbound = { checkRecipient: (a: string) => parseAddress(a).address };

test('address fields split on commas and semicolons outside quotes and angle brackets', () => {
  assert.deepEqual(splitAddressField(' a@x.test ;"Lee, Ann" <ann@y.test>, Bo <bo@z.test>,, <c@w.test> '), [
    { name: null, address: 'a@x.test' },
    { name: 'Lee, Ann', address: 'ann@y.test' },
    { name: 'Bo', address: 'bo@z.test' },
    { name: null, address: 'c@w.test' },
  ]);
  assert.deepEqual(splitAddressField('"<img src=x onerror=alert(1)>" <e@v.test>'), [{ name: '<img src=x onerror=alert(1)>', address: 'e@v.test' }]);
  assert.deepEqual(splitAddressField('   '), []);
});

test('threading: In-Reply-To is the Message-ID; References continue the chain, trimmed in the middle', () => {
  const raw = (h: string) => Buffer.from(`${h}Subject: x\r\n\r\nbody\r\n`);
  assert.deepEqual(threadHeaders(raw('Message-ID: <m@x>\r\nReferences: <r1@x>\r\n <r2@x>\r\n')), { inReplyTo: '<m@x>', references: ['<r1@x>', '<r2@x>', '<m@x>'] });
  assert.deepEqual(threadHeaders(raw('Message-ID: <m@x>\r\nIn-Reply-To: <p@x> (comment)\r\n')), { inReplyTo: '<m@x>', references: ['<p@x>', '<m@x>'] });
  assert.equal(threadHeaders(raw('From: a@b\r\n')), null, 'no Message-ID: nothing to thread on');
  // A header injection attempt is not a Message-ID.
  assert.equal(threadHeaders(raw('Message-ID: <a\r\n b>\r\n')), null);
  const long = Array.from({ length: 40 }, (_, i) => `<r${i}@x>`).join(' ');
  const t = threadHeaders(raw(`Message-ID: <m@x>\r\nReferences: ${long}\r\n`))!;
  assert.equal(t.references.length, COMPOSE_LIMITS.references);
  assert.equal(t.references[0], '<r0@x>', 'the root stays');
  assert.equal(t.references.at(-1), '<m@x>');
  assert.equal(t.references.at(-2), '<r39@x>');
});

test('a draft: every problem at once, per field; 413 only for text over the limit', () => {
  const none = checkDraft(outbound, draft({ subject: 'hi' }));
  assert.deepEqual(none.problems, [{ field: 'to', text: 'Write at least one recipient.' }]);
  assert.equal(none.status, 400);

  const bad = checkDraft(outbound, draft({ to: 'ok@x.test, nope', cc: 'also bad@', intro: 'i'.repeat(1001) }));
  assert.deepEqual(
    bad.problems.map((p) => p.field),
    ['to', 'cc', 'intro'],
  );
  assert.match(bad.problems[0]!.text, /^To: "nope" is not an address/);

  const big = checkDraft(outbound, draft({ to: 'ok@x.test', text: 'é'.repeat(COMPOSE_LIMITS.textBytes / 2 + 1) }));
  assert.equal(big.status, 413);
  assert.deepEqual(big.problems.map((p) => p.field), ['text']);

  const good = checkDraft(outbound, draft({ to: 'Ann <Ann@X.test>', bcc: 'ann@x.test, b@y.test', subject: ' two\r\nlines ', intro: 'Hi\nthere' }));
  assert.deepEqual(good.problems, []);
  assert.deepEqual(good.recipients, ['ann@x.test', 'b@y.test'], 'normalised, once each');
  assert.equal(good.subject, 'two lines', 'a subject is one line');
  assert.equal(good.intro, 'Hi there');
});
