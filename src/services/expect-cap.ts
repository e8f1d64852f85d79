/**
 * The cap on live expected-sender entries per user (docs/protocol.md 12.11):
 * a stolen contacts-scope app password, or a page that fakes sign-ups, must
 * not be able to open the mailbox to many domains at once. Counted over the
 * cards the index lists with `expect` entries; the card being replaced does
 * not count against itself.
 */
import { expectLive } from '../core/vcard/expected.ts';
import { parseContactCard } from '../core/vcard/index-entries.ts';
import type { ContactEntry } from '../core/types.ts';
import type { Store } from '../store/types.ts';

/** At most this many live X-TWOWAY-EXPECT properties per user, over all their address books. */
export const MAX_LIVE_EXPECTED = 20;

/** Live expect properties among entries (a declared FROM entry belongs to its property and is not counted twice). */
export function liveExpected(entries: ContactEntry[], now: Date): number {
  return entries.filter((e) => e.kind === 'expect' && e.declaredFor === undefined && e.expect && expectLive(e.expect, now)).length;
}

/**
 * The refusal text when storing `entries` at `href` of `book` would take the
 * user over MAX_LIVE_EXPECTED live entries, else null.
 */
export async function expectCapProblem(
  store: Pick<Store, 'addressBooks'>,
  userId: number,
  target: { book: string; href: string | null; uid: string | null },
  entries: ContactEntry[],
  now: Date,
): Promise<string | null> {
  const adding = liveExpected(entries, now);
  if (adding === 0) return null;
  let live = 0;
  // This user's cards with expect entries: few, by the cap itself (plus expired ones the sweep has not removed yet).
  for (const ref of await store.addressBooks.cardsWithEntryKind('expect', userId)) {
    if (ref.book === target.book && ref.href === target.href) continue;
    const card = await store.addressBooks.getCard(userId, ref.book, ref.href);
    if (!card || (ref.book === target.book && target.uid !== null && card.uid === target.uid)) continue;
    try {
      live += liveExpected(parseContactCard(card.vcard).entries, now);
    } catch {
      // a card an older parser accepted and this one refuses matches nothing: not counted
    }
  }
  if (live + adding <= MAX_LIVE_EXPECTED) return null;
  return `Too many expected senders: ${live} live X-TWOWAY-EXPECT entries already, at most ${MAX_LIVE_EXPECTED} per user; remove one or wait for one to expire or be used`;
}
