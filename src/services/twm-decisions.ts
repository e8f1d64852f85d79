/**
 * What a Screener decision does to Two-Way Mail notices, as stored state
 * only (docs/protocol.md 8.6): an approval moves the sender's pending
 * notices to `scheduled` after a random delay, a denial closes them or, when
 * the user reveals declines, makes a `declined` receipt due. The fetch
 * worker of whichever server process runs finds those rows by polling the
 * store, so a decision taken by the CLI, the API or the address-book
 * reconcile (services/decisions.ts) travels the same way.
 *
 * Every change is a conditional update (`from` states): two processes
 * applying the same decision, or a decision racing the fetch worker, cannot
 * undo each other's result.
 */
import type { TwmInState } from '../core/twm-types.ts';
import type { TwmInboundRepository, TwmInNotice, TwmInRecipient, UserRepository } from '../store/types.ts';

export interface TwmDecisionOptions {
  inbox: Pick<TwmInboundRepository, 'forUser' | 'update'>;
  users: Pick<UserRepository, 'findById'>;
  /** Fetches released by an approval wait a random time up to this (8.4). */
  approvalDelayMs: number;
  /** Declined receipts wait a random time up to this (8.6). */
  declineDelayMs: number;
  now: () => Date;
  random?: () => number;
  /** Something became due soon: a latency hint for an in-process fetch worker (the store is the signal). */
  onScheduled?: () => void;
}

/** Which notices a decision covers: senders' addresses, or a whole domain (and its subdomains). */
export type TwmCover = { senders: string[] } | { domain: string };

type Row = { notice: TwmInNotice; recipient: TwmInRecipient };

export function createTwmDecisions(options: TwmDecisionOptions) {
  const { inbox, now } = options;
  const random = options.random ?? Math.random;

  /** Schedules the fetch of these rows (those still in one of `from`). */
  async function schedule(rows: Row[], from: readonly TwmInState[]): Promise<number> {
    const at = now();
    let n = 0;
    for (const { notice, recipient } of rows) {
      const when = new Date(at.getTime() + random() * options.approvalDelayMs);
      n += (await inbox.update(notice.senderDomain, notice.id, [recipient.rcpt], from, { state: 'scheduled', nextAttemptAt: when }, at)).length;
    }
    if (n > 0) options.onScheduled?.();
    return n;
  }

  /** Declines these rows: a `declined` receipt later if the user reveals declines, else closed silently. */
  async function decline(userId: number, rows: Row[], from: readonly TwmInState[]): Promise<number> {
    if (rows.length === 0) return 0;
    const at = now();
    const reveal = (await options.users.findById(userId))?.revealDeclined ?? false;
    let n = 0;
    for (const { notice, recipient } of rows) {
      const change = reveal
        ? { state: 'receipt-due' as const, receipt: 'declined' as const, nextAttemptAt: new Date(at.getTime() + random() * options.declineDelayMs) }
        : { state: 'closed' as const, nextAttemptAt: null };
      n += (await inbox.update(notice.senderDomain, notice.id, [recipient.rcpt], from, change, at)).length;
    }
    if (n > 0 && reveal) options.onScheduled?.();
    return n;
  }

  return {
    schedule,
    decline,
    /** Approval (8.6): every unexpired pending notice of the covered senders is fetched after a random delay. */
    async approved(userId: number, cover: TwmCover): Promise<number> {
      return schedule(await inbox.forUser(userId, cover, ['pending'], now()), ['pending']);
    },
    /** Denial (8.6): pending and held notices of these senders are declined. */
    async denied(userId: number, senders: string[]): Promise<number> {
      return decline(userId, await inbox.forUser(userId, { senders }, ['pending', 'held'], now()), ['pending', 'held']);
    },
  };
}

export type TwmDecisions = ReturnType<typeof createTwmDecisions>;
