/**
 * Who a message goes out as over Two-Way Mail (docs/protocol.md 7.6): a
 * notice is signed under a key of the `from` domain, so its `from` must be
 * an address of a domain we sign for.
 *
 * - A mailing list's message (a Sender: of ours and a List-Id under the
 *   Sender:'s domain) goes as the list: `from` is the Sender:, `list_id` the
 *   List-Id. The author's From: stays in the message, whoever the author is.
 * - Otherwise a message whose From: is ours goes as its author, with its
 *   List-Id as `list_id` only when that is under the author's domain (a
 *   recipient refuses a `list_id` its signer does not own, 5.4 step 9).
 * - Otherwise a message whose Sender: is ours and whose From: is not (a
 *   forwarder that keeps the author's From:) goes as the forwarder, without
 *   `list_id`: the forwarder has no list identity of its own.
 * - Anything else cannot be signed by us: null, and the message takes SMTP
 *   (7.6, "a list or forwarder that cannot sign MUST use SMTP").
 */
import { normaliseListId, listIdUnder } from '../core/screener-keys.ts';
import { fromIdentity, senderIdentity } from './from.ts';
import type { Header } from './headers.ts';

export interface TwmIdentity {
  /** The notice's `from`: the address the notice is signed for. */
  from: string;
  /** The notice's `list_id`, or null. */
  listId: string | null;
  /** `from` is the Sender: of a list or forwarder, not the author's From:. */
  relayed: boolean;
}

export function twmIdentity(headers: Header[], ours: (domain: string) => boolean): TwmIdentity | null {
  const author = fromIdentity(headers);
  const sender = senderIdentity(headers);
  const listHeader = headers.find((h) => h.name === 'list-id')?.value;
  const listId = listHeader === undefined ? null : normaliseListId(listHeader);
  if (sender.address !== null && ours(sender.domain) && listId !== null && listIdUnder(listId, sender.domain)) {
    return { from: sender.address, listId, relayed: sender.address !== author.address };
  }
  if (author.address !== null && ours(author.domain)) {
    return { from: author.address, listId: listId !== null && listIdUnder(listId, author.domain) ? listId : null, relayed: false };
  }
  if (sender.address !== null && ours(sender.domain)) return { from: sender.address, listId: null, relayed: true };
  return null;
}
