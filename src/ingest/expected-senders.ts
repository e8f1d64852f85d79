/**
 * Expected senders at delivery time (docs/protocol.md 9.3 and 10.3). The
 * store indexes an X-TWOWAY-EXPECT property as `{kind: 'expect', value:
 * domain}` only; its purpose, expiry and uses live in the card, so a hit is
 * read back from the card here. The card stays the single source of truth:
 * consuming a use and cleaning up expired entries rewrite the card itself
 * (visible to CardDAV clients as any other change).
 *
 * Consuming a use is not here: it is written in the delivery's own
 * transaction (store/expect-consume.ts), so the message and the use commit
 * together. The clean-up of expired entries below is conditional on the
 * card's ETag (and redone on the new text when it changed meanwhile), so a
 * client's concurrent edit is never overwritten.
 */
import { OWNERSHIP_CONFIRMATION } from '../mail/headers.ts';
import type { ContactEntry, ExpectTerms } from '../core/types.ts';
import { expectLive, rewriteExpectCard } from '../core/vcard/expected.ts';
import { parseContactCard } from '../core/vcard/index-entries.ts';
import type { Store } from '../store/types.ts';

/** Reads by UID (what the index hits name); writes by href, conditional on the ETag read. */
export type ExpectCardStore = Pick<Store['contacts'], 'get'> & Pick<Store['addressBooks'], 'putCard' | 'removeCard'>;
type Hit = ContactEntry & { uid: string; book: string };

/** The entry a matching message consumes a use of. */
export interface ExpectMatch {
  book: string;
  uid: string;
  domain: string;
  terms: ExpectTerms;
}

/**
 * The live ownership-confirmation entry to use among the index hits (for a
 * marked message first the entries that require the marker; then the
 * earliest UNTIL; ties: the fewest uses left), or null; an unmarked
 * (`marked` false) message only sees entries without MARKER=REQUIRED. Cards whose expect
 * entries have expired or are used up are cleaned up on the way (a failure
 * to clean up is ignored: the entry does not match either way).
 */
export async function findExpected(contacts: ExpectCardStore, userId: number, hits: Hit[], now: Date, marked: boolean): Promise<ExpectMatch | null> {
  const domains = new Set(hits.filter((h) => h.kind === 'expect').map((h) => h.value));
  if (domains.size === 0) return null;
  const cards = new Map<string, { book: string; uid: string }>();
  for (const h of hits) if (h.kind === 'expect') cards.set(`${h.book}\n${h.uid}`, { book: h.book, uid: h.uid });

  const candidates: ExpectMatch[] = [];
  for (const { book, uid } of cards.values()) {
    const card = await contacts.get(userId, book, uid);
    if (!card) continue;
    let entries: ContactEntry[];
    try {
      entries = parseContactCard(card.vcard).entries;
    } catch {
      continue; // a card the parser now rejects contributes nothing
    }
    let stale = false;
    for (const e of entries) {
      if (e.kind !== 'expect' || !e.expect) continue;
      if (!expectLive(e.expect, now)) {
        stale = true;
        continue;
      }
      // An unmarked message may only use an entry that does not require the marker.
      if (domains.has(e.value) && e.expect.purpose === OWNERSHIP_CONFIRMATION && (marked || !e.expect.requireMarker)) {
        // A hit on a declared sending domain (FROM) consumes a use of the property it belongs to.
        candidates.push({ book, uid, domain: e.declaredFor ?? e.value, terms: e.expect });
      }
    }
    if (stale) await rewrite(contacts, userId, book, uid, now).catch(() => undefined);
  }
  const usesLeft = (m: ExpectMatch) => m.terms.uses ?? Number.POSITIVE_INFINITY;
  // A marked message prefers an entry that requires the marker: the ones that do not stay for unmarked mail.
  const markerRank = (m: ExpectMatch) => (marked && m.terms.requireMarker ? 0 : 1);
  candidates.sort((a, b) => markerRank(a) - markerRank(b) || a.terms.until.getTime() - b.terms.until.getTime() || usesLeft(a) - usesLeft(b));
  return candidates[0] ?? null;
}

async function rewrite(
  contacts: ExpectCardStore,
  userId: number,
  book: string,
  uid: string,
  now: Date,
): Promise<void> {
  // Conditional on the ETag read: a client's edit (or another delivery's use) that lands in
  // between makes the write fail, and the rewrite starts over on the new text, so no edit is
  // overwritten and no use is counted twice.
  for (let attempt = 0; attempt < 5; attempt++) {
    const card = await contacts.get(userId, book, uid);
    if (!card) return;
    const result = rewriteExpectCard(card.vcard, { now });
    if (!result.changed) return;
    const ifMatch = [card.etag];
    const outcome =
      result.text === null
        ? await contacts.removeCard(userId, book, card.href, { ifMatch })
        : (await contacts.putCard(userId, { book, href: card.href, uid: card.uid, vcard: result.text, entries: parseContactCard(result.text).entries }, { ifMatch })).status;
    if (outcome !== 'precondition-failed') return;
  }
  throw new Error(`expected-sender card ${uid} kept changing; use not recorded`);
}
