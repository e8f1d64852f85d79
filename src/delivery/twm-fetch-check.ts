/**
 * The checks of a fetched body against its notice (docs/protocol.md 7.4,
 * 8.3), in order: size, SHA-256, Content-Digest, header limits, From: and
 * List-Id. `failed` names the receipt error; `refused` is a header-limit
 * refusal, which no receipt error names.
 */
import { createHash } from 'node:crypto';
import { normalisedAddress } from '../core/address.ts';
import { HeaderLimitChecker, type HeaderLimits } from '../core/header-limits.ts';
import { normaliseListId } from '../core/screener-keys.ts';
import { contentDigest } from '../core/twm-signature.ts';
import type { ReceiptError } from '../core/twm-types.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import type { TwmInNotice } from '../store/types.ts';
import type { TwmResponse } from './twm-client-types.ts';

export function checkFetchedBody(
  n: TwmInNotice,
  response: Pick<TwmResponse, 'body' | 'truncated' | 'headers'>,
  headerLimits: HeaderLimits,
): { failed: ReceiptError } | { refused: string } | { facts: ReturnType<typeof messageFacts> } {
  const body = response.body;
  if (response.truncated || body.length !== n.size || (response.headers['content-length'] !== undefined && Number(response.headers['content-length']) !== n.size)) {
    return { failed: 'size-mismatch' };
  }
  if (createHash('sha256').update(body).digest('hex') !== n.sha256) return { failed: 'digest-mismatch' };
  const digest = response.headers['content-digest'];
  if (digest !== undefined && !digest.includes(contentDigest(body).slice('sha-256='.length))) return { failed: 'digest-mismatch' };
  const header = new HeaderLimitChecker(headerLimits);
  header.push(body);
  const refused = header.finish();
  if (refused) return { refused: refused.message };
  const facts = messageFacts(parseHeaders(body));
  if (facts.from === null || facts.from !== normalisedAddress(n.from)) return { failed: 'from-mismatch' };
  if (n.listId !== null && (facts.listId === null || normaliseListId(facts.listId) !== n.listId)) return { failed: 'from-mismatch' };
  return { facts };
}
