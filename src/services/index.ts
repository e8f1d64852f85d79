/** The application services, built once per process from the store. */
import type { Store } from '../store/types.ts';
import { createAccounts } from './accounts.ts';
import { createAddressBooks } from './address-books.ts';
import { createContacts } from './contacts.ts';
import { createMail } from './mail.ts';
import { createOutbound, type OutboundOptions } from './outbound.ts';
import { createQueueAdmin } from './queue.ts';
import { createScreener, type ScreenerDecisionHooks } from './screener.ts';
import { createSent } from './sent.ts';

/** What sending needs beyond the store; without it `outbound` is null (read-only tools, API tests). */
export type SendingOptions = Omit<OutboundOptions, 'store' | 'contacts'>;

/** `learn`: a [spam] section that learns; moves and Screener decisions then queue learning. */
export function createServices(store: Store, domains: string[], sending?: SendingOptions, decisions?: ScreenerDecisionHooks, spam?: { learn: boolean }) {
  const accounts = createAccounts(store, domains);
  const contacts = createContacts(store);
  const screener = createScreener(store, contacts, decisions, { learn: spam?.learn === true });
  const mail = createMail(store, { learn: spam?.learn === true });
  const outbound = sending ? createOutbound({ ...sending, store, contacts }) : null;
  const queue = createQueueAdmin(store, sending?.onQueued);
  const sent = createSent(store);
  const addressBooks = createAddressBooks(store, accounts);
  return { accounts, contacts, screener, mail, outbound, queue, sent, addressBooks };
}

export type Services = ReturnType<typeof createServices>;
