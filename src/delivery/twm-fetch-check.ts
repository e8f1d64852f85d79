/**
 * The checks of a fetched body against its notice (docs/protocol.md 7.4,
 * 8.3, 8.4), in order: size, SHA-256, Content-Digest, header limits, From:
 * (or Sender:) and List-Id. `failed` names the receipt error; `refused` is a
 * header-limit refusal, which no receipt error names.
 *
 * The From: check (8.4 rule 3): the message's From: is the notice's `from`
 * (the author sent it), or else its Sender: is (a mailing list or forwarder
 * that keeps the author's From:, 7.6). Then `relayedBy` names the list or
 * forwarder, and ingest decides on it instead of the author, whose domain
 * signed nothing.
 */
import { createHash } from 'node:crypto';
import { normalisedAddress } from '../core/address.ts';
import { HeaderLimitChecker, type HeaderLimits } from '../core/header-limits.ts';
import { listIdUnder, normaliseListId } from '../core/screener-keys.ts';
import type { ReceiptError } from '../core/twm-types.ts';
import { senderIdentity } from '../mail/from.ts';
import { messageFacts, parseHeaders, type Header } from '../mail/headers.ts';
import type { TwmInNotice } from '../store/types.ts';
import type { TwmResponse } from './twm-client-types.ts';

export function checkFetchedBody(
  n: TwmInNotice,
  response: Pick<TwmResponse, 'body' | 'truncated' | 'headers'>,
  headerLimits: HeaderLimits,
): { failed: ReceiptError } | { refused: string } | { facts: ReturnType<typeof messageFacts>; relayedBy: string | null; headers: Header[] } {
  const body = response.body;
  if (response.truncated || body.length !== n.size || (response.headers['content-length'] !== undefined && Number(response.headers['content-length']) !== n.size)) {
    return { failed: 'size-mismatch' };
  }
  // One hash for both checks: the notice's hex SHA-256 and the answer's Content-Digest (base64).
  const sha256 = createHash('sha256').update(body).digest();
  if (sha256.toString('hex') !== n.sha256) return { failed: 'digest-mismatch' };
  const digest = response.headers['content-digest'];
  if (digest !== undefined && !digest.includes(`:${sha256.toString('base64')}:`)) return { failed: 'digest-mismatch' };
  const header = new HeaderLimitChecker(headerLimits);
  header.push(body);
  const refused = header.finish();
  if (refused) return { refused: refused.message };
  const headers = parseHeaders(body);
  const facts = messageFacts(headers);
  const from = normalisedAddress(n.from);
  let relayedBy: string | null = null;
  if (from === null) return { failed: 'from-mismatch' };
  if (facts.from !== from) {
    const sender = senderIdentity(headers);
    if (sender.address !== from) return { failed: 'from-mismatch' };
    // Only a List-Id of the signer's own is a list identity (the notice endpoint refuses others too).
    if (n.listId !== null && !listIdUnder(n.listId, n.senderDomain)) return { failed: 'from-mismatch' };
    relayedBy = sender.address;
  }
  if (n.listId !== null && (facts.listId === null || normaliseListId(facts.listId) !== n.listId)) return { failed: 'from-mismatch' };
  // The parsed fields go on to ingest, which would parse the same octets again.
  return { facts, relayedBy, headers };
}
