/**
 * The Screener's actions over contact requests. Every action takes many
 * senders (bulk) and reports per sender what it did.
 *
 *   approve        allow the sender (a vCard), release held mail to INBOX
 *   approveDomain  allow @domain, release every held sender of that domain
 *   deny           block the sender (a vCard), drop what is held
 *   clear          forget the requests and drop what is held, deciding nothing
 *   spam           mark as spam: held mail goes to Junk (and teaches the spam
 *                  filter spam), the request is denied; nothing is blocked
 *                  (spammers change addresses; the filter learns instead)
 *
 * With `learn` (a [spam] section that learns), approving teaches the spam
 * filter ham for the released mail, and `spam` teaches spam, as work queued
 * in the same transaction as the move (store/spam-learning-repository.ts).
 */
import { domainOf, isSubdomainOf, parseAddress, parseSenderSpec } from '../core/address.ts';
import { invalid, notFound, ReplyError } from '../core/errors.ts';
import { reputationOf, type Reputation, type ReputationFacts } from '../core/reputation.ts';
import type { ContactRequest, ContactRequestStatus, MessageSummary } from '../core/types.ts';
import type { RequestPageKey, Store } from '../store/types.ts';
import type { Contacts } from './contacts.ts';
import type { TwmDecisions } from './twm-decisions.ts';

export interface ScreenerActionResult {
  sender: string;
  released?: number;
  dropped?: number;
  junked?: number;
}

/** A request as listed: with the reputation it is ordered by (core/reputation.ts). */
export type RankedRequest = ContactRequest & { reputation: Reputation };

export interface RequestView extends Omit<RankedRequest, 'firstSeen' | 'lastSeen' | 'id' | 'userId'> {
  firstSeen: string;
  lastSeen: string;
}

export const requestView = ({ id: _id, userId: _u, firstSeen, lastSeen, ...rest }: RankedRequest): RequestView => ({
  ...rest,
  firstSeen: firstSeen.toISOString(),
  lastSeen: lastSeen.toISOString(),
});

type ScreenerStore = Pick<Store, 'requests' | 'messages' | 'contacts'>;

/**
 * Every action changes stored state only: the card (the decision itself,
 * which also marks the user's allowlist as changed for the reconcile of
 * services/decisions.ts), the held mail, the request's status, and the
 * state rows of Two-Way Mail notices (services/twm-decisions.ts), which the
 * fetch worker of a running server picks up from the store. So the CLI, the
 * API and any other process decide alike.
 */
export function createScreener(store: ScreenerStore, contacts: Contacts, twm: TwmDecisions, options: { learn?: boolean } = {}) {
  return { ...createScreenerQueries(store), ...createScreenerActions(store, contacts, twm, options.learn === true) };
}

/** Reading the Screener: the ranked list, its key pages, one request's preview. */
function createScreenerQueries(store: ScreenerStore) {
  return {
    /**
     * The requests, best reputation first (ties: most recent first). Those
     * judged likely spam are left out unless `likelySpam` is true.
     */
    async list(userId: number, status?: ContactRequestStatus, options: { likelySpam?: boolean } = {}): Promise<RankedRequest[]> {
      const rows = (await store.requests.list(userId, status ? { status } : {})).filter((r) => options.likelySpam === true || !r.likelySpam);
      // Stable sort: the store's order (most recent first) breaks ties.
      return (await withReputation(store, rows)).sort((a, b) => b.reputation.score - a.reputation.score);
    },

    /**
     * One key page of pending requests in the order of list() (the rank is
     * stored with each request, so a page costs one indexed query whatever
     * its depth), with `next`, the key of the page after it (null on the
     * last), and the counts. The reasons are reputationOf's, from the stored facts.
     */
    async page(
      userId: number,
      options: { after?: RequestPageKey | undefined; limit: number; likelySpam?: boolean },
    ): Promise<{ requests: RankedRequest[]; next: RequestPageKey | null; listed: number; likelySpam: number }> {
      const likelySpam = options.likelySpam === true;
      const [rows, counts] = await Promise.all([
        store.requests.pendingPage(userId, { after: options.after, limit: options.limit + 1, likelySpam }),
        store.requests.pendingCounts(userId),
      ]);
      const shown = rows.slice(0, options.limit);
      // The stored rank and "known on this server" (store/request-rank.ts): nothing is looked up per request here.
      const requests = shown.map(({ rank: _rank, known, ...r }) => ({ ...r, reputation: reputationOf(factsOf(r, known)) }));
      const last = shown[shown.length - 1];
      const next = rows.length > options.limit && last ? { rank: last.rank, lastSeen: last.lastSeen, id: last.id } : null;
      return { requests, next, listed: counts.listed, likelySpam: counts.likelySpam };
    },

    /**
     * One request and the mail it holds, newest first (at most `limit`): the
     * Screener's preview. A Two-Way Mail request holds nothing here: the body
     * stays on the sender's server until the sender is allowed.
     */
    async preview(userId: number, sender: string, limit = 20): Promise<{ request: ContactRequest; held: MessageSummary[] }> {
      const request = await store.requests.get(userId, sender.trim().toLowerCase());
      if (!request) throw notFound(`No contact request from ${sender}`);
      const ids = (await store.requests.heldMessageIds(userId, [request.sender])).sort((a, b) => b - a).slice(0, limit);
      const held: MessageSummary[] = [];
      for (const id of ids) {
        const found = await store.messages.get(userId, id);
        if (!found) continue;
        const { raw: _raw, ...summary } = found;
        held.push(summary);
      }
      return { request, held };
    },
  };
}

/** Each request with its reputation (core/reputation.ts), including whether anyone on this server allows the sender or its domain. */
async function withReputation(store: ScreenerStore, rows: ContactRequest[]): Promise<RankedRequest[]> {
  const probes = rows.flatMap((r) => (r.sender.includes('@') ? [{ kind: 'address' as const, value: r.sender }, { kind: 'domain' as const, value: domainOf(r.sender) }] : []));
  const known = new Set((await store.contacts.allowedAnywhere(probes)).map((k) => `${k.kind}\n${k.value}`));
  return rows.map((r) => {
    const knownOnServer = known.has(`address\n${r.sender}`) ? 'address' : r.sender.includes('@') && known.has(`domain\n${domainOf(r.sender)}`) ? 'domain' : null;
    return { ...r, reputation: reputationOf(factsOf(r, knownOnServer)) };
  });
}

const factsOf = (r: ContactRequest, knownOnServer: 'address' | 'domain' | null): ReputationFacts => ({
  authenticated: r.authDomain !== null,
  dmarc: r.dmarc,
  spamScore: r.spamScore,
  likelySpam: r.likelySpam,
  knownOnServer,
});

/**
 * The stored request keys for these senders. A request is keyed by an
 * address, except for mail that had neither a From: nor an envelope sender
 * (core/screener-keys.ts senderKey), which can be denied or cleared but not
 * allowed.
 */
async function requestKeys(store: ScreenerStore, userId: number, senders: string[]): Promise<Array<{ key: string; address: boolean }>> {
  const out: Array<{ key: string; address: boolean }> = [];
  for (const raw of senders) {
    let key = raw.trim().toLowerCase();
    let address = true;
    try {
      key = parseAddress(raw).address;
    } catch (err) {
      address = false;
      if (!(await store.requests.get(userId, key))) throw invalid(err instanceof ReplyError ? err.text : `Bad sender "${raw}"`);
    }
    if (!(await store.requests.get(userId, key))) throw notFound(`No contact request from ${key}`);
    out.push({ key, address });
  }
  return out;
}

/** `example.com` or `@example.com` as a domain the address book can allow. */
function domainArgument(domain: string): string {
  try {
    const spec = parseSenderSpec('@' + domain.trim().replace(/^@/, ''));
    if (spec.kind !== 'domain') throw new Error('not a domain');
    return spec.domain;
  } catch (err) {
    throw invalid(err instanceof ReplyError ? err.text : `Bad domain "${domain}"`);
  }
}

/** Deciding the Screener: approve, approve a domain, deny, spam, clear. */
function createScreenerActions(store: ScreenerStore, contacts: Contacts, twm: TwmDecisions, learn: boolean) {
  async function release(userId: number, sender: string): Promise<ScreenerActionResult> {
    const held = await store.requests.heldMessageIds(userId, [sender]);
    const released = await store.messages.move(userId, held, 'INBOX', learn ? 'ham' : undefined);
    await store.requests.setStatus(userId, [sender], 'approved');
    return { sender, released };
  }
  /** The held mail of each request moved or dropped, and its status set: deny, spam and clear. */
  async function settle(userId: number, senders: string[], each: (sender: string, address: boolean, held: number[]) => Promise<ScreenerActionResult>) {
    const results: ScreenerActionResult[] = [];
    for (const { key, address } of await requestKeys(store, userId, senders)) results.push(await each(key, address, await store.requests.heldMessageIds(userId, [key])));
    return results;
  }

  return {
    async approve(userId: number, senders: string[]): Promise<ScreenerActionResult[]> {
      const keys = await requestKeys(store, userId, senders);
      const unaddressed = keys.find((k) => !k.address);
      if (unaddressed) throw invalid(`Cannot allow "${unaddressed.key}": the mail had no sender address; use deny or clear`);
      const results: ScreenerActionResult[] = [];
      for (const { key } of keys) {
        await contacts.allow(userId, key);
        results.push(await release(userId, key));
      }
      await twm.approved(userId, { senders: keys.map((k) => k.key) });
      return results;
    },

    /** Allows @domain (which covers its subdomains) and releases every pending sender it covers. */
    async approveDomain(userId: number, domain: string): Promise<ScreenerActionResult[]> {
      const d = domainArgument(domain);
      await contacts.allow(userId, `@${d}`);
      const pending = await store.requests.list(userId, { status: 'pending' });
      const covered = pending.map((r) => r.sender).filter((s) => s.includes('@') && isSubdomainOf(domainOf(s), d));
      const results: ScreenerActionResult[] = [];
      for (const sender of covered) results.push(await release(userId, sender));
      await twm.approved(userId, { domain: d });
      return results;
    },

    async deny(userId: number, senders: string[]): Promise<ScreenerActionResult[]> {
      const results = await settle(userId, senders, async (sender, address, held) => {
        // Without an address there is nothing to block; the held mail is still dropped.
        if (address) await contacts.block(userId, sender);
        const dropped = await store.messages.remove(userId, held);
        await store.requests.setStatus(userId, [sender], 'denied');
        return { sender, dropped };
      });
      await twm.denied(userId, results.map((r) => r.sender));
      return results;
    },

    async spam(userId: number, senders: string[]): Promise<ScreenerActionResult[]> {
      const results = await settle(userId, senders, async (sender, _address, held) => {
        const junked = await store.messages.move(userId, held, 'Junk', learn ? 'spam' : undefined);
        await store.requests.setStatus(userId, [sender], 'denied');
        return { sender, junked };
      });
      await twm.denied(userId, results.map((r) => r.sender));
      return results;
    },

    async clear(userId: number, senders: string[]): Promise<ScreenerActionResult[]> {
      return settle(userId, senders, async (sender, _address, held) => {
        const dropped = await store.messages.remove(userId, held);
        await store.requests.remove(userId, [sender]);
        return { sender, dropped };
      });
    },
  };
}

export type Screener = ReturnType<typeof createScreener>;
