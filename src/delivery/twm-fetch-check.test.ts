/**
 * The From: check of a fetched body (docs/protocol.md 8.4 rule 3, 7.6): the
 * author's From:, or a list's or forwarder's Sender:, must be the notice's
 * `from`; a notice's `list_id` must be the message's List-Id, and, for a
 * relayed message, under the signer domain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DEFAULT_HEADER_LIMITS } from '../core/header-limits.ts';
import type { TwmInNotice } from '../store/types.ts';
import { checkFetchedBody } from './twm-fetch-check.ts';

function notice(from: string, listId: string | null, body: Buffer, senderDomain = from.slice(from.indexOf('@') + 1)): TwmInNotice {
  return {
    senderDomain,
    id: 'AAAAAAAAAAAAAAAAAAAAAA',
    contentSha256: '0'.repeat(64),
    from,
    to: ['bea@b.test'],
    size: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    createdAt: new Date(0),
    expiresAt: new Date(1),
    intro: null,
    purpose: null,
    listId,
    receivedAt: new Date(0),
  };
}

const message = (...fields: string[]) => Buffer.from(`${fields.join('\r\n')}\r\nSubject: x\r\n\r\nBody.\r\n`);
const check = (n: TwmInNotice, body: Buffer) => checkFetchedBody(n, { body, truncated: false, headers: {} }, DEFAULT_HEADER_LIMITS);

const ROWS: Array<{ name: string; from: string; listId: string | null; fields: string[]; senderDomain?: string; expect: 'direct' | 'relayed' | 'from-mismatch' }> = [
  { name: 'the author sends', from: 'ann@a.test', listId: null, fields: ['From: Ann <ann@a.test>'], expect: 'direct' },
  { name: 'the author sends, with a Sender: of someone else', from: 'ann@a.test', listId: null, fields: ['From: ann@a.test', 'Sender: pa@a.test'], expect: 'direct' },
  { name: 'the author, lower-cased in the notice', from: 'ann@a.test', listId: null, fields: ['From: Ann@A.test'], expect: 'direct' },
  { name: 'a list: Sender: and List-Id', from: 'dev@a.test', listId: 'dev.a.test', fields: ['From: alice@author.test', 'Sender: dev@a.test', 'List-Id: Devs <dev.a.test>'], expect: 'relayed' },
  { name: 'a list with a From: that has no single author', from: 'dev@a.test', listId: 'dev.a.test', fields: ['From: a@x.test, b@y.test', 'Sender: dev@a.test', 'List-Id: <dev.a.test>'], expect: 'relayed' },
  { name: 'a list whose List-Id differs from list_id', from: 'dev@a.test', listId: 'dev.a.test', fields: ['From: alice@author.test', 'Sender: dev@a.test', 'List-Id: <other.a.test>'], expect: 'from-mismatch' },
  { name: 'a list without List-Id', from: 'dev@a.test', listId: 'dev.a.test', fields: ['From: alice@author.test', 'Sender: dev@a.test'], expect: 'from-mismatch' },
  { name: 'a list_id outside the signer domain', from: 'dev@a.test', listId: 'dev.other.test', fields: ['From: alice@author.test', 'Sender: dev@a.test', 'List-Id: <dev.other.test>'], expect: 'from-mismatch' },
  { name: 'a Sender: that is not the notice from', from: 'dev@a.test', listId: 'dev.a.test', fields: ['From: alice@author.test', 'Sender: other@a.test', 'List-Id: <dev.a.test>'], expect: 'from-mismatch' },
  { name: 'no Sender: and a foreign From:', from: 'dev@a.test', listId: 'dev.a.test', fields: ['From: alice@author.test', 'List-Id: <dev.a.test>'], expect: 'from-mismatch' },
  { name: 'two Sender: fields', from: 'dev@a.test', listId: null, fields: ['From: alice@author.test', 'Sender: dev@a.test', 'Sender: dev@a.test'], expect: 'from-mismatch' },
  { name: 'a Sender: with two mailboxes', from: 'dev@a.test', listId: null, fields: ['From: alice@author.test', 'Sender: dev@a.test, x@a.test'], expect: 'from-mismatch' },
  { name: 'a forwarder: Sender:, no list_id', from: 'fwd@a.test', listId: null, fields: ['From: alice@author.test', 'Sender: <fwd@a.test>'], expect: 'relayed' },
  { name: "a forwarder relaying another domain's list mail", from: 'fwd@a.test', listId: null, fields: ['From: alice@author.test', 'Sender: fwd@a.test', 'List-Id: <news.other.test>'], expect: 'relayed' },
  { name: 'the author sends with a list_id (direct list mail)', from: 'dev@a.test', listId: 'dev.a.test', fields: ['From: dev@a.test', 'List-Id: <dev.a.test>'], expect: 'direct' },
];

for (const row of ROWS) {
  test(`fetched body: ${row.name} -> ${row.expect}`, () => {
    const body = message(...row.fields);
    const result = check(notice(row.from, row.listId, body, row.senderDomain), body);
    if (row.expect === 'from-mismatch') {
      assert.deepEqual(result, { failed: 'from-mismatch' });
      return;
    }
    assert.ok('facts' in result, JSON.stringify(result));
    assert.equal(result.relayedBy, row.expect === 'relayed' ? row.from : null);
  });
}

test('fetched body: the notice SHA-256 and the Content-Digest are both checked (one hash of the octets)', () => {
  const body = message('From: ann@a.test');
  const n = notice('ann@a.test', null, body);
  const b64 = createHash('sha256').update(body).digest('base64');
  const withDigest = (digest: string) => checkFetchedBody(n, { body, truncated: false, headers: { 'content-digest': digest } }, DEFAULT_HEADER_LIMITS);
  assert.ok('facts' in withDigest(`sha-256=:${b64}:`));
  const other = createHash('sha256').update('other').digest('base64');
  assert.deepEqual(withDigest(`sha-256=:${other}:`), { failed: 'digest-mismatch' });
  // The digest's hex form or a bare base64 value is no Content-Digest of these octets.
  assert.deepEqual(withDigest(`sha-256=:${n.sha256}:`), { failed: 'digest-mismatch' });
  // Same size, another SHA-256 than the notice's.
  const tampered = Buffer.from(body.toString().replace('Body.', 'Bodz.'));
  assert.deepEqual(checkFetchedBody(n, { body: tampered, truncated: false, headers: {} }, DEFAULT_HEADER_LIMITS), { failed: 'digest-mismatch' });
});
