/** The application services, built once per process from the store. */
import type { Store } from '../store/types.ts';
import { createAccounts } from './accounts.ts';
import { createContacts } from './contacts.ts';
import { createMail } from './mail.ts';
import { createScreener } from './screener.ts';

export function createServices(store: Store, domains: string[]) {
  const accounts = createAccounts(store, domains);
  const contacts = createContacts(store);
  const screener = createScreener(store, contacts);
  const mail = createMail(store);
  return { accounts, contacts, screener, mail };
}

export type Services = ReturnType<typeof createServices>;
