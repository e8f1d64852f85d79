/**
 * Decisions follow the store: a reconcile that re-decides a user's pending
 * contact requests and pending Two-Way Mail notices after their address
 * book changed, whoever changed it (a CardDAV client's PUT, `twoway
 * contacts allow`, the API, an import, the Screener, another server process).
 *
 * Every card write marks the user in the same transaction
 * (`allowlist_changes`, store/card-writes.ts). For a marked user this
 * module asks the policy (`ingest.predict`, the same lookups and `decide()`
 * as for a new message) where each pending sender now stands
 * (core/screener-keys.ts standingOf):
 *   - allowed: held SMTP mail moves to INBOX and the request is approved;
 *     pending (or silently held) TWM notices are scheduled for fetching;
 *   - blocked: held mail is dropped and the request denied; pending notices
 *     are declined (a `declined` receipt if the user reveals declines);
 *   - otherwise nothing changes.
 * A held SMTP message is re-decided on the authenticated domain its request
 * recorded: a forged copy of a now-allowed address (no aligned
 * authentication) stays held, as the policy would hold it on arrival.
 *
 * Every change is conditional (request `pending`, message still in the
 * Screener, notice rows still `pending`/`held`), so two processes may
 * reconcile the same user at once; the mark is cleared only at the version
 * read, so a write during the reconcile brings the user back next round.
 */
import { standingOf } from '../core/screener-keys.ts';
import type { User } from '../core/types.ts';
import type { Ingest } from '../ingest/ingest.ts';
import type { Store } from '../store/types.ts';
import type { TwmDecisions } from './twm-decisions.ts';

export interface DecisionsOptions {
  store: Pick<Store, 'addressBooks' | 'requests' | 'messages' | 'twmIn' | 'users'>;
  ingest: Pick<Ingest, 'predict'>;
  twm: TwmDecisions;
  now: () => Date;
}

/** A type alias, not an interface: workers read it as a plain record of counts. */
export type ReconcileSummary = {
  /** Requests approved / denied. */
  approved: number;
  denied: number;
  /** Held messages moved to INBOX / dropped. */
  released: number;
  dropped: number;
  /** TWM notice rows scheduled for fetching / declined. */
  fetches: number;
  declines: number;
};

const empty = (): ReconcileSummary => ({ approved: 0, denied: 0, released: 0, dropped: 0, fetches: 0, declines: 0 });

export function createDecisions(options: DecisionsOptions) {
  const { store } = options;

  async function reconcileUser(userId: number): Promise<ReconcileSummary> {
    const sum = empty();
    const user = await store.users.findById(userId);
    if (!user) return sum;
    const at = options.now();
    await reconcileRequests(options, user, at, sum);
    await reconcileNotices(options, user, at, sum);
    return sum;
  }

  return {
    reconcileUser,
    /**
     * Reconciles up to `limit` marked users and clears their marks. A user
     * whose reconcile fails keeps the mark (retried next round). Returns
     * whether more may be waiting.
     */
    async reconcileChanged(limit = 50, onError?: (err: unknown, userId: number) => void): Promise<{ users: number; more: boolean; summary: ReconcileSummary }> {
      const marks = await store.addressBooks.changedAllowlists(limit);
      const summary = empty();
      let failed = 0;
      for (const { userId, version } of marks) {
        try {
          const s = await reconcileUser(userId);
          for (const k of Object.keys(summary) as Array<keyof ReconcileSummary>) summary[k] += s[k];
          await store.addressBooks.settleAllowlist(userId, version);
        } catch (err) {
          failed++;
          onError?.(err, userId);
        }
      }
      // Failing users keep their marks for the next poll, not for a busy loop now.
      return { users: marks.length, more: marks.length === limit && failed === 0, summary };
    },
  };
}

export type Decisions = ReturnType<typeof createDecisions>;

/** Pending SMTP requests: held mail released (approved) or dropped (denied) as the sender's standing now says. */
async function reconcileRequests({ store, ingest }: DecisionsOptions, user: User, at: Date, sum: ReconcileSummary): Promise<void> {
  const userId = user.id;
  for (const r of await store.requests.list(userId, { status: 'pending' })) {
    if (!r.sender.includes('@')) continue; // no address: nothing in the address book can name it
    const standing = standingOf(
      await ingest.predict(user, {
        channel: 'smtp',
        origin: 'remote',
        from: r.sender,
        fromProblem: null,
        listId: null,
        alignedDomain: r.authDomain,
        authenticatedDomains: r.authDomain ? [r.authDomain] : [],
        autoSubmitted: false,
        ownershipConfirmation: false,
        at,
      }),
    );
    if (standing === 'undecided') continue;
    const held = await store.requests.heldMessageIds(userId, [r.sender]);
    if (standing === 'allowed') {
      sum.released += await store.messages.move(userId, held, 'INBOX');
      sum.approved += await store.requests.setStatus(userId, [r.sender], 'approved', ['pending']);
    } else {
      sum.dropped += await store.messages.remove(userId, held);
      sum.denied += await store.requests.setStatus(userId, [r.sender], 'denied', ['pending']);
    }
  }
}

/** Pending and held TWM notices: scheduled for fetching when allowed, declined when blocked. */
async function reconcileNotices({ store, ingest, twm }: DecisionsOptions, user: User, at: Date, sum: ReconcileSummary): Promise<void> {
  const userId = user.id;
  // Each notice on its own facts, as when it arrived (endpoints/twm/inbox.ts): its signer domain is authenticated.
  for (const row of await store.twmIn.forUser(userId, 'any', ['pending', 'held'], at)) {
    const n = row.notice;
    const standing = standingOf(
      await ingest.predict(user, {
        channel: 'twm',
        origin: 'remote',
        from: n.from,
        fromProblem: null,
        listId: n.listId,
        alignedDomain: n.senderDomain,
        authenticatedDomains: [n.senderDomain],
        autoSubmitted: false,
        ownershipConfirmation: n.purpose === 'ownership-confirmation',
        at,
      }),
    );
    if (standing === 'allowed') sum.fetches += await twm.schedule([row], [row.recipient.state]);
    // A held row was blocked on arrival and stays held (or was declined then).
    else if (standing === 'blocked' && row.recipient.state === 'pending') sum.declines += await twm.decline(userId, [row], ['pending']);
  }
}
