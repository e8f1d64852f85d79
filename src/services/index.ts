/** The application services, built once per process from the store (by src/app.ts; small tests may build them too). */
import type { Store } from '../store/types.ts';
import { createAccounts } from './accounts.ts';
import { createAuthThrottle } from './auth-throttle.ts';
import { createContacts } from './contacts.ts';
import { createMail } from './mail.ts';
import { createMailSearch } from './mail-search.ts';
import { createOutbound, type OutboundOptions } from './outbound.ts';
import { createQueueAdmin } from './queue.ts';
import { createScreener } from './screener.ts';
import { createSent } from './sent.ts';
import { createTwmDecisions } from './twm-decisions.ts';
import { createLoginCache, DEFAULT_LOGIN_CACHE_TTL_MS } from './login-cache.ts';
import { createWebSessions } from './web-sessions.ts';

/** What sending needs beyond the store; without it `outbound` is null (read-only tools, API tests). */
export type SendingOptions = Omit<OutboundOptions, 'store' | 'contacts' | 'now'>;

export interface ServiceOptions {
  /** A [spam] section that learns: moves and Screener decisions then queue learning. */
  learn?: boolean;
  /** The application clock (core/clock.ts); the system time by default. */
  now?: () => Date;
  random?: () => number;
  /** Two-Way Mail decision delays (config twm.approval_delay, twm.decline_delay); 0 by default. */
  approvalDelayMs?: number;
  declineDelayMs?: number;
  /** How long a verified login is remembered (config server.login_cache; login-cache.ts); 0: not at all. 5 minutes by default. */
  loginCacheMs?: number;
  /**
   * Latency hints for workers in this process: a decision scheduled TWM work,
   * or the address book changed. Everything they stand for is in the store
   * already; workers of any process find it by polling.
   */
  onTwmScheduled?: () => void;
  onAllowlistChanged?: () => void;
}

export function createServices(store: Store, domains: string[], sending?: SendingOptions, options: ServiceOptions = {}) {
  const now = options.now ?? (() => new Date());
  const loginCache = createLoginCache({ ttlMs: options.loginCacheMs ?? DEFAULT_LOGIN_CACHE_TTL_MS, now: () => now().getTime() });
  const accounts = createAccounts(store, domains, createAuthThrottle(), loginCache);
  const contacts = createContacts(store, { now, ...(options.onAllowlistChanged ? { onChanged: options.onAllowlistChanged } : {}) });
  const twmDecisions = createTwmDecisions({
    inbox: store.twmIn,
    users: store.users,
    approvalDelayMs: options.approvalDelayMs ?? 0,
    declineDelayMs: options.declineDelayMs ?? 0,
    now,
    ...(options.random ? { random: options.random } : {}),
    ...(options.onTwmScheduled ? { onScheduled: options.onTwmScheduled } : {}),
  });
  const screener = createScreener(store, contacts, twmDecisions, { learn: options.learn === true });
  const mail = createMail(store, { learn: options.learn === true });
  const mailSearch = createMailSearch(store);
  const outbound = sending ? createOutbound({ ...sending, store, contacts, now }) : null;
  const queue = createQueueAdmin(store, sending?.onQueued);
  const sent = createSent(store);
  const webSessions = createWebSessions(store, now);
  return { accounts, contacts, screener, mail, mailSearch, outbound, queue, sent, twmDecisions, webSessions };
}

export type Services = ReturnType<typeof createServices>;
