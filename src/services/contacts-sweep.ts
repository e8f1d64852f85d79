/** The hourly clean-up of expected-sender entries and CardDAV sync tombstones. */
import { rewriteExpectCard } from '../core/vcard/expected.ts';
import { parseContactCard } from '../core/vcard/index-entries.ts';
import type { Store } from '../store/types.ts';

/** How long deleted cards are remembered for CardDAV sync; a client that last synced before that starts over. */
export const TOMBSTONE_TTL_MS = 30 * 24 * 3600 * 1000;

export interface SweepSummary {
  /** Cards rewritten without their expired or used-up X-TWOWAY-EXPECT properties. */
  rewritten: number;
  /** Cards deleted because nothing but their shell was left (docs/protocol.md 10.3). */
  removed: number;
  /** Change-log tombstones forgotten (older than TOMBSTONE_TTL_MS). */
  tombstones: number;
}

/**
 * The clean-up of docs/protocol.md 10.3, for every user: removes each
 * X-TWOWAY-EXPECT property whose UNTIL has passed or whose USES is 0,
 * with the same rewrite as consuming a use (core/vcard/expected.ts
 * rewriteExpectCard: only those content lines change), and deletes a card
 * left with nothing but its shell. Each write is conditional on the ETag
 * the sweep read, so a card a client changed meanwhile is left for the
 * next sweep rather than overwritten. Also forgets sync-log tombstones
 * older than TOMBSTONE_TTL_MS. Meant to run at least hourly.
 */
export async function sweepExpired(store: Pick<Store, 'addressBooks'>, now: Date): Promise<SweepSummary> {
  const summary: SweepSummary = { rewritten: 0, removed: 0, tombstones: 0 };
  for (const ref of await store.addressBooks.cardsWithEntryKind('expect')) {
    const card = await store.addressBooks.getCard(ref.userId, ref.book, ref.href);
    if (!card) continue;
    let result: ReturnType<typeof rewriteExpectCard>;
    try {
      result = rewriteExpectCard(card.vcard, { now });
    } catch {
      continue; // a card the parser now rejects is left alone (its entries were indexed by an older parser)
    }
    if (!result.changed) continue;
    const ifMatch = [card.etag];
    if (result.text === null) {
      if ((await store.addressBooks.removeCard(ref.userId, ref.book, ref.href, { ifMatch })) === 'deleted') summary.removed++;
      continue;
    }
    const entries = parseContactCard(result.text).entries;
    const r = await store.addressBooks.putCard(ref.userId, { book: ref.book, href: ref.href, uid: card.uid, vcard: result.text, entries }, { ifMatch });
    if (r.status === 'ok') summary.rewritten++;
  }
  summary.tombstones = await store.addressBooks.pruneTombstones(new Date(now.getTime() - TOMBSTONE_TTL_MS));
  return summary;
}
