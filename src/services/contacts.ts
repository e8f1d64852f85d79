/**
 * The address book as the allowlist: `allow`, `block` and `remove` write
 * vCards (the profile is in core/vcard/index-entries.ts and docs/architecture.md), so
 * whatever the CLI or API does is visible to any CardDAV client later, and
 * cards written by clients count exactly like ours.
 */
import { parseSenderSpec, type SenderSpec } from '../core/address.ts';
import { forbidden, invalid, ReplyError } from '../core/errors.ts';
import { expectCapProblem } from './expect-cap.ts';
import type { Contact, ContactEntry } from '../core/types.ts';
import { buildExpectCard } from '../core/vcard/expected.ts';
import { parseContactCard } from '../core/vcard/index-entries.ts';
import { VCardError } from '../core/vcard/parse.ts';
import { buildContactCard, newUid } from '../core/vcard/write.ts';
import { normaliseDomain } from '../core/address.ts';
import type { Store } from '../store/types.ts';
import { DEFAULT_BOOK, importCards, type ImportSummary } from './contacts-import.ts';
import { contactCards } from './contacts-cards.ts';
import { sweepExpired } from './contacts-sweep.ts';

// DEFAULT_BOOK is defined beside the import (which writes to it) so that file needs nothing from this one.
export { DEFAULT_BOOK, type ImportSummary } from './contacts-import.ts';
export { TOMBSTONE_TTL_MS, type SweepSummary } from './contacts-sweep.ts';
export type { ExpectedSender } from './contacts-cards.ts';


/** An index entry as the API and CLI show it (dates as ISO 8601 text). */
export type ContactEntryView = Omit<ContactEntry, 'expect'> & {
  expect?: { purpose: string; until: string; uses: number | null; from: string | null; requireMarker: boolean };
};

export interface ContactView {
  uid: string;
  book: string;
  name: string | null;
  entries: ContactEntryView[];
  etag: string;
  updatedAt: string;
  vcard: string;
}

export function toView(c: Contact): ContactView {
  let parsed: ReturnType<typeof parseContactCard> | null = null;
  try {
    parsed = parseContactCard(c.vcard);
  } catch {
    // A stored card is shown even if a later parser rejects it; it simply contributes no entries.
  }
  return {
    uid: c.uid,
    book: c.book,
    name: parsed?.fn ?? null,
    entries: (parsed?.entries ?? []).map(({ expect, ...e }) =>
      expect
        ? { ...e, expect: { purpose: expect.purpose, until: expect.until.toISOString(), uses: expect.uses, from: expect.from, requireMarker: expect.requireMarker } }
        : e,
    ),
    etag: c.etag,
    updatedAt: c.updatedAt.toISOString(),
    vcard: c.vcard,
  };
}

function spec(sender: string): SenderSpec {
  try {
    return parseSenderSpec(sender);
  } catch (err) {
    throw invalid(err instanceof ReplyError ? err.text : `Bad sender "${sender}": expected an address or @domain`);
  }
}

const probe = (s: SenderSpec): { kind: ContactEntry['kind']; value: string } =>
  s.kind === 'address' ? { kind: 'address', value: s.address } : { kind: 'domain', value: s.domain };

export interface ContactsOptions {
  now?: () => Date;
  /** A card was written or removed: a latency hint for the decisions reconcile of this process (the store is marked anyway). */
  onChanged?: () => void;
}

/**
 * The one-sender shortcuts (`contacts allow|block|remove`, writing to
 * someone): each reads the index for that address or @domain and writes or
 * removes a card of its own through `put`.
 */
function senderCards(
  store: Pick<Store, 'contacts'>,
  put: (userId: number, book: string, vcard: string, fallbackUid?: string) => Promise<ContactView>,
  changed: () => void,
) {
  const ctx: SenderCardsContext = { store, put, changed };
  const singleEntryCards = (userId: number, s: SenderSpec, action: ContactEntry['action']) => singleEntryCardsOf(ctx, userId, s, action);
  const write = (userId: number, s: SenderSpec, blocked: boolean, fn?: string) => writeCard(ctx, userId, s, blocked, fn);

  return {
    /** Allows an address or @domain: lifts a block written by `block`, and adds a card unless one allows it already. */
    async allow(userId: number, sender: string): Promise<{ created: boolean; unblocked: number }> {
      const s = spec(sender);
      const blocks = await singleEntryCards(userId, s, 'block');
      for (const b of blocks) await store.contacts.remove(userId, b.book, b.uid);
      if (blocks.length > 0) changed();
      const existing = (await store.contacts.match(userId, [probe(s)])).filter((h) => h.action === 'allow');
      if (existing.length > 0) return { created: false, unblocked: blocks.length };
      await write(userId, s, false);
      return { created: true, unblocked: blocks.length };
    },

    /**
     * Writing to someone allows them (docs/architecture.md "Modes"): a card is created
     * unless one already names the address, allowing or blocking it (an
     * explicit block stays the user's decision).
     */
    async autoAllow(userId: number, address: string): Promise<boolean> {
      const s = spec(address);
      if ((await store.contacts.match(userId, [probe(s)])).length > 0) return false;
      await write(userId, s, false);
      return true;
    },

    /**
     * Does a card name this address, allowing or blocking it (autoAllow's
     * test)? The web composer asks, to offer the TWM introduction field for
     * an address the user has not written to or approved yet.
     */
    async isContact(userId: number, address: string): Promise<boolean> {
      return (await store.contacts.match(userId, [probe(spec(address))])).length > 0;
    },

    /**
     * Blocks an address or @domain with a card of its own marked
     * X-TWOWAY-BLOCKED. A richer card the user keeps for that person stays;
     * block beats allow for the same value (core/policy.ts precedence).
     */
    async block(userId: number, sender: string): Promise<{ created: boolean }> {
      const s = spec(sender);
      const existing = (await store.contacts.match(userId, [probe(s)])).filter((h) => h.action === 'block');
      if (existing.length > 0) return { created: false };
      await write(userId, s, true);
      return { created: true };
    },

    /**
     * Adds a card of its own for a person (an address, with a name),
     * a whole @domain, or a mailing list (its List-Id), allowing or blocking
     * it (the web app's "Add"). Allowing lifts the blocks `block` wrote for
     * the same sender, as `allow` does; a second card for the same sender
     * is written anyway when it carries a name (the user asked for it).
     */
    add: (userId: number, o: AddContact): Promise<ContactView> => addCard(ctx, userId, o),

    /** Removes every card that names this address or domain. Returns the removed cards' UIDs. */
    async remove(userId: number, sender: string): Promise<string[]> {
      const s = spec(sender);
      const hits = await store.contacts.match(userId, [probe(s)]);
      const removed: string[] = [];
      for (const h of hits) {
        if (await store.contacts.remove(userId, h.book, h.uid)) removed.push(h.uid);
      }
      if (removed.length > 0) changed();
      return removed;
    },
  };
}

interface SenderCardsContext {
  store: Pick<Store, 'contacts'>;
  put: (userId: number, book: string, vcard: string, fallbackUid?: string) => Promise<ContactView>;
  changed: () => void;
}

type AddContact = { sender: string; name?: string; blocked: boolean; list?: boolean };

/** Cards that consist of exactly this one entry with this action (the ones allow/block write). */
async function singleEntryCardsOf({ store }: SenderCardsContext, userId: number, s: SenderSpec, action: ContactEntry['action']) {
  const p = probe(s);
  const hits = await store.contacts.match(userId, [p]);
  const out: Array<{ book: string; uid: string }> = [];
  for (const hit of hits.filter((h) => h.action === action)) {
    const card = await store.contacts.get(userId, hit.book, hit.uid);
    if (card && toView(card).entries.length === 1) out.push({ book: hit.book, uid: hit.uid });
  }
  return out;
}

/** A card of its own for one address or @domain, allowing or blocking it. */
async function writeCard({ put }: SenderCardsContext, userId: number, s: SenderSpec, blocked: boolean, fn?: string): Promise<ContactView> {
  const uid = newUid();
  const vcard = buildContactCard({
    uid,
    fn: fn || (s.kind === 'address' ? s.address : `@${s.domain}`),
    emails: s.kind === 'address' ? [s.address] : [],
    domains: s.kind === 'domain' ? [s.domain] : [],
    blocked,
  });
  return put(userId, DEFAULT_BOOK, vcard, uid);
}

/** The web app's "Add" (senderCards' `add`): a card for a person, a @domain or a mailing list. */
async function addCard(ctx: SenderCardsContext, userId: number, o: AddContact): Promise<ContactView> {
  const { store, put, changed } = ctx;
  const name = o.name?.trim().slice(0, 200) || undefined;
  if (o.list) {
    const uid = newUid();
    let vcard: string;
    try {
      vcard = buildContactCard({ uid, ...(name ? { fn: name } : {}), lists: [o.sender.trim()], blocked: o.blocked });
    } catch (err) {
      throw invalid(err instanceof ReplyError ? err.text : `Bad List-Id "${o.sender}"`);
    }
    return put(userId, DEFAULT_BOOK, vcard, uid);
  }
  const s = spec(o.sender.trim());
  if (!o.blocked) {
    const blocks = await singleEntryCardsOf(ctx, userId, s, 'block');
    for (const b of blocks) await store.contacts.remove(userId, b.book, b.uid);
    if (blocks.length > 0) changed();
  }
  return writeCard(ctx, userId, s, o.blocked, name);
}

export function createContacts(store: Pick<Store, 'contacts' | 'addressBooks'>, options: ContactsOptions = {}) {
  const clock = options.now ?? (() => new Date());
  const changed = options.onChanged ?? (() => undefined);
  async function put(userId: number, book: string, vcard: string, fallbackUid?: string): Promise<ContactView> {
    let parsed: ReturnType<typeof parseContactCard>;
    try {
      parsed = parseContactCard(vcard);
    } catch (err) {
      throw invalid(err instanceof VCardError ? err.message : `Malformed vCard: ${String(err)}`);
    }
    const uid = parsed.uid ?? fallbackUid ?? newUid();
    const tooMany = await expectCapProblem(store, userId, { book, href: null, uid }, parsed.entries, clock());
    if (tooMany !== null) throw forbidden(tooMany);
    const view = toView(await store.contacts.put(userId, { book, uid, vcard, entries: parsed.entries }));
    changed();
    return view;
  }

  /**
   * Records an expected sender (docs/protocol.md 10.2): a card of its own
   * with one X-TWOWAY-EXPECT property, so an ownership confirmation from
   * this domain (or a subdomain, or the declared sending domain `from`),
   * authenticated (and marked, if `requireMarker`), reaches the INBOX in
   * every mode until it expires or its uses run out.
   */
  async function expect(
    userId: number,
    domain: string,
    options: { forMs: number; uses?: number | null; purpose?: string; now?: Date; from?: string; requireMarker?: boolean },
  ): Promise<ContactView & { domain: string; until: string; uses: number | null }> {
    let d: string;
    try {
      d = normaliseDomain(domain.trim().replace(/^@/, ''));
    } catch (err) {
      throw invalid(err instanceof ReplyError ? err.text : `Bad domain "${domain}"`);
    }
    if (!Number.isFinite(options.forMs) || options.forMs <= 0) throw invalid('The validity must be a positive duration');
    const uses = options.uses === undefined ? 1 : options.uses;
    if (uses !== null && (!Number.isInteger(uses) || uses < 1 || uses > 9999)) throw invalid('Uses must be a whole number from 1 to 9999');
    const purpose = options.purpose ?? 'ownership-confirmation';
    if (!/^[A-Za-z][A-Za-z0-9-]{0,62}$/.test(purpose)) throw invalid(`Bad purpose "${purpose}"`);
    // UNTIL has whole seconds: round up so the entry lives at least forMs.
    const until = new Date(Math.ceil(((options.now ?? clock()).getTime() + options.forMs) / 1000) * 1000);
    const uid = newUid();
    let from: string | null = null;
    if (options.from !== undefined) {
      try {
        from = normaliseDomain(options.from.trim());
      } catch (err) {
        throw invalid(err instanceof ReplyError ? err.text : `Bad sending domain "${options.from}"`);
      }
    }
    const card = buildExpectCard({ uid, domain: d, purpose, until, uses, from, requireMarker: options.requireMarker === true });
    const view = await put(userId, DEFAULT_BOOK, card, uid);
    return { ...view, domain: d, until: until.toISOString(), uses };
  }

  return {
    put,
    expect,

    async importCards(userId: number, file: string, onProgress?: (done: number, total: number) => void): Promise<ImportSummary> {
      const summary = await importCards(store, userId, file, onProgress);
      if (summary.imported + summary.merged > 0) changed();
      return summary;
    },

    sweepExpired: (now: Date = clock()) => sweepExpired(store, now),
    ...senderCards(store, put, changed),
    cards: contactCards(store, clock, changed),

    async list(userId: number): Promise<ContactView[]> {
      return (await store.contacts.list(userId)).map(toView);
    },
  };
}

export type Contacts = ReturnType<typeof createContacts>;
