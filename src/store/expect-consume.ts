/**
 * Consuming one use of an expected-sender entry (docs/protocol.md 9.3 and
 * 10.3) inside the delivery's own transaction: the message row and the
 * card's `USES=n-1` commit together or not at all, so a crash or two
 * confirmations at the same moment can never deliver more messages than
 * the entry allows, nor lose a use. The card is re-read inside the
 * transaction after `nextSeq` took the book's row lock, so a concurrent
 * CardDAV edit either commits before (and is what gets rewritten) or waits.
 * When the use is gone by then, the transaction fails with ExpectUsedUpError
 * and ingest decides the message again (it then lands as a stranger's).
 */
import type { Transaction } from 'kysely';
import type { ExpectTerms } from '../core/types.ts';
import { rewriteExpectCard } from '../core/vcard/expected.ts';
import { parseContactCard } from '../core/vcard/index-entries.ts';
import { deleteCards, logChange, nextSeq, writeCard } from './card-writes.ts';
import type { Database } from './schema.ts';
import { ExpectUsedUpError } from '../core/errors.ts';

export interface ExpectUse {
  book: string;
  uid: string;
  domain: string;
  terms: ExpectTerms;
  at: Date;
}

export async function consumeExpectInTx(tx: Transaction<Database>, userId: number, use: ExpectUse): Promise<void> {
  const at = await nextSeq(tx, userId, use.book, false);
  const usedUp = () => new ExpectUsedUpError(`the expected-sender entry for ${use.domain} has no use left`);
  if (!at) throw usedUp(); // the book is gone, and the entry with it
  const row = await tx
    .selectFrom('contacts')
    .select(['id', 'href', 'vcard'])
    .where('user_id', '=', userId)
    .where('book', '=', use.book)
    .where('uid', '=', use.uid)
    .executeTakeFirst();
  if (!row) throw usedUp(); // the card was removed meanwhile: the entry is gone too
  const result = rewriteExpectCard(row.vcard, { now: use.at, consume: { domain: use.domain, terms: use.terms } });
  // Another delivery took the last use first: this one must be decided again, not admitted.
  if (!result.consumed) throw usedUp();
  if (!result.changed) return; // unlimited uses: nothing to count
  if (result.text === null) {
    await deleteCards(tx, [row.id]);
    await logChange(tx, at, row.href, true);
    return;
  }
  const entries = parseContactCard(result.text).entries;
  await writeCard(tx, userId, at, { book: use.book, href: row.href, uid: use.uid, vcard: result.text, entries }, row.id);
}
