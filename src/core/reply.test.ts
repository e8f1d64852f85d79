import assert from 'node:assert/strict';
import test from 'node:test';
import { formatReply, isTemporary, localReply, parseReply, replies, reply, statusOf } from './reply.ts';

test('parseReply takes the codes apart and keeps the text verbatim; formatReply gives the line back', () => {
  const rows: Array<[line: string, code: number | null, enhanced: string | null, text: string]> = [
    ['550 5.1.1 <x@y>: no such user', 550, '5.1.1', '<x@y>: no such user'],
    ['250 2.0.0 Ok: queued as 4F2A', 250, '2.0.0', 'Ok: queued as 4F2A'],
    ['554 transaction failed', 554, null, 'transaction failed'],
    ['421', 421, null, ''],
    ['550 5.1.1', 550, '5.1.1', ''],
    ['550 5.1.10 recipient does not exist', 550, '5.1.10', 'recipient does not exist'],
    // Not an enhanced code: part of the text.
    ['550 5.1.1x nope', 550, null, '5.1.1x nope'],
    ['550  two spaces', 550, null, ' two spaces'],
    // A local description: an enhanced code and no server code.
    ['4.4.1 connection refused by mx[192.0.2.1]:25', null, '4.4.1', 'connection refused by mx[192.0.2.1]:25'],
    // Not a reply code (RFC 5321 replies we report are 2xx, 4xx, 5xx).
    ['354 go ahead', null, null, '354 go ahead'],
    ['timeout', null, null, 'timeout'],
    ['', null, null, ''],
  ];
  for (const [line, code, enhanced, text] of rows) {
    const r = parseReply(line);
    assert.deepEqual(r, { code, enhanced, text }, line);
    assert.equal(formatReply(r), line, line);
  }
  assert.equal(formatReply(parseReply('550-5.7.1 policy')), '550 5.7.1 policy');
  assert.equal(formatReply(parseReply('  250 2.0.0 ok  ')), '250 2.0.0 ok');
});

test('statusOf: the enhanced code, else the basic code class, else the fallback', () => {
  assert.equal(statusOf(reply(550, '5.7.1', 'x'), '5.0.0'), '5.7.1');
  assert.equal(statusOf(parseReply('421 closing'), '5.0.0'), '4.0.0');
  assert.equal(statusOf(localReply('4.4.1', 'refused'), '5.0.0'), '4.4.1');
  assert.equal(statusOf(parseReply('timeout'), '4.4.2'), '4.4.2');
});

test('isTemporary: 4xx, or a 4.x.x local description', () => {
  assert.equal(isTemporary(reply(451, '4.3.0', 'x')), true);
  assert.equal(isTemporary(reply(550, '5.1.1', 'x')), false);
  assert.equal(isTemporary(replies.connectionRefused('mx[192.0.2.1]:25')), true);
  assert.equal(isTemporary(replies.unsendableRecipient()), false);
  assert.equal(isTemporary(parseReply('huh')), false);
});

test('named replies format to the lines the server always sent', () => {
  assert.equal(formatReply(replies.noSuchLocalUser('a@b.test')), '550 5.1.1 <a@b.test>: no such user here');
  assert.equal(formatReply(replies.connectionRefused('mx.b.test[127.0.0.1]:2525')), '4.4.1 connection refused by mx.b.test[127.0.0.1]:2525');
  assert.equal(formatReply(replies.internalError()), '451 4.3.0 Internal error, please try again later');
  assert.equal(formatReply(replies.mailLoop(31)), '554 5.4.6 Mail loop detected: 31 Received headers');
});
