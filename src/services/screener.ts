/**
 * The Screener's actions over contact requests. Every action takes many
 * senders (bulk) and reports per sender what it did.
 *
 *   approve        allow the sender (a vCard), release held mail to INBOX
 *   approveDomain  allow @domain, release every held sender of that domain
 *   deny           block the sender (a vCard), drop what is held
 *   clear          forget the requests and drop what is held, deciding nothing
 */
import { parseAddress } from '../core/address.ts';
import { invalid, notFound, ReplyError } from '../core/errors.ts';
import type { ContactRequest, ContactRequestStatus } from '../core/types.ts';
import type { Store } from '../store/types.ts';
import type { Contacts } from './contacts.ts';

export interface ScreenerActionResult {
  sender: string;
  released?: number;
  dropped?: number;
}

export interface RequestView extends Omit<ContactRequest, 'firstSeen' | 'lastSeen' | 'id' | 'userId'> {
  firstSeen: string;
  lastSeen: string;
}

export const requestView = ({ id: _id, userId: _u, firstSeen, lastSeen, ...rest }: ContactRequest): RequestView => ({
  ...rest,
  firstSeen: firstSeen.toISOString(),
  lastSeen: lastSeen.toISOString(),
});

export function createScreener(store: Pick<Store, 'requests' | 'messages'>, contacts: Contacts) {
  function normalise(sender: string): string {
    try {
      return parseAddress(sender).address;
    } catch (err) {
      throw invalid(err instanceof ReplyError ? err.text : `Bad sender "${sender}"`);
    }
  }

  async function known(userId: number, senders: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const s of senders.map(normalise)) {
      if (!(await store.requests.get(userId, s))) throw notFound(`No contact request from ${s}`);
      out.push(s);
    }
    return out;
  }

  return {
    async list(userId: number, status?: ContactRequestStatus): Promise<ContactRequest[]> {
      return store.requests.list(userId, status ? { status } : {});
    },

    async approve(userId: number, senders: string[]): Promise<ScreenerActionResult[]> {
      const results: ScreenerActionResult[] = [];
      for (const sender of await known(userId, senders)) {
        await contacts.allow(userId, sender);
        const held = await store.requests.heldMessageIds(userId, [sender]);
        const released = await store.messages.move(userId, held, 'INBOX');
        await store.requests.setStatus(userId, [sender], 'approved');
        results.push({ sender, released });
      }
      return results;
    },

    async approveDomain(userId: number, domain: string): Promise<ScreenerActionResult[]> {
      const d = domain.replace(/^@/, '').toLowerCase();
      await contacts.allow(userId, `@${d}`);
      const results: ScreenerActionResult[] = [];
      for (const sender of await store.requests.sendersOfDomain(userId, d)) {
        const held = await store.requests.heldMessageIds(userId, [sender]);
        const released = await store.messages.move(userId, held, 'INBOX');
        await store.requests.setStatus(userId, [sender], 'approved');
        results.push({ sender, released });
      }
      return results;
    },

    async deny(userId: number, senders: string[]): Promise<ScreenerActionResult[]> {
      const results: ScreenerActionResult[] = [];
      for (const sender of await known(userId, senders)) {
        await contacts.block(userId, sender);
        const held = await store.requests.heldMessageIds(userId, [sender]);
        const dropped = await store.messages.remove(userId, held);
        await store.requests.setStatus(userId, [sender], 'denied');
        results.push({ sender, dropped });
      }
      return results;
    },

    async clear(userId: number, senders: string[]): Promise<ScreenerActionResult[]> {
      const results: ScreenerActionResult[] = [];
      for (const sender of await known(userId, senders)) {
        const held = await store.requests.heldMessageIds(userId, [sender]);
        const dropped = await store.messages.remove(userId, held);
        await store.requests.remove(userId, [sender]);
        results.push({ sender, dropped });
      }
      return results;
    },
  };
}

export type Screener = ReturnType<typeof createScreener>;
