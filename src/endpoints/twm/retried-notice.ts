/**
 * A sender's retry of a notice we recorded (docs/protocol.md 5.5): the same id
 * from the same sender domain with the same content digest. It is answered
 * with the current statuses (6.2) and takes no other action, with one
 * exception (8.4): recipients whose fetch was given up (after MAX_CONTACT_ATTEMPTS, or because
 * the next attempt would have come after `expires`) while the notice is still live. The retry is fresh
 * evidence that the sender's server is up (it just reached us), so their
 * fetches are scheduled again, due now, with a fresh attempt budget, once per
 * retry; else the message would be lost until `expires` although its sender
 * is reachable. Rows expired by time or by the pending hold, declined,
 * failed, delivered or closed ones are left alone.
 *
 * Such a retry is new work for the sender's domain, as a new notice is: it
 * keeps the rate-limit token it took (a retry that only asks gives it back),
 * and where a new notice would be refused (the notice rate, the size limit)
 * it is refused too, so that the sender comes back rather than reading a
 * status that leads nowhere. A sender cannot buy fetches beyond its notice
 * rate by retrying (12.2).
 */
import { twmError, type Notice, type NoticeResult, type NoticeStatus, type TwmError } from '../../core/twm-types.ts';
import type { TwmInboundRepository, TwmInNotice, TwmInRecipient } from '../../store/types.ts';

export interface KnownNotice {
  notice: TwmInNotice;
  recipients: TwmInRecipient[];
}

/** What the retry took: the notice-rate token under `rateKey`; or, where it took none, the refusal a new notice gets there. */
export type RetryTerms = { rateKey: string } | { refuse: () => TwmError };

export interface RetryContext {
  inbox: Pick<TwmInboundRepository, 'find' | 'rescheduleGivenUp'>;
  uniformAnswers: boolean;
  /** Returns a notice-rate token taken under this key. */
  giveBack: (rateKey: string) => void;
  /** Wakes the fetch worker: a rescheduled fetch is due now. */
  kick: () => void;
}

/** The answer to a retry of `known` (5.5), after rescheduling its given-up fetches (8.4). */
export async function answerRetry(ctx: RetryContext, known: KnownNotice, n: Notice, contentSha256: string, senderDomain: string, at: Date, terms: RetryTerms): Promise<NoticeResult> {
  const giveBack = () => {
    if ('rateKey' in terms) ctx.giveBack(terms.rateKey);
  };
  if (known.notice.contentSha256 !== contentSha256) {
    giveBack();
    throw twmError('id-conflict', 'this id was used for another notice');
  }
  const stale = givenUp(known, at);
  if (stale.length === 0) {
    giveBack();
    return answerFor(known.recipients, n, ctx.uniformAnswers);
  }
  if ('refuse' in terms) throw terms.refuse();
  const rescheduled = new Set(await ctx.inbox.rescheduleGivenUp(senderDomain, n.id, at));
  if (rescheduled.size === 0) giveBack();
  else ctx.kick();
  // Fewer than read: another retry, here or in another process, came first; the store has the statuses.
  const rows =
    rescheduled.size === stale.length
      ? known.recipients.map((r) => (rescheduled.has(r.rcpt) ? { ...r, state: 'scheduled' as const, attempts: 0, nextAttemptAt: at } : r))
      : ((await ctx.inbox.find(senderDomain, n.id))?.recipients ?? known.recipients);
  return answerFor(rows, n, ctx.uniformAnswers);
}

/**
 * The rows a retry schedules again (the store decides, rescheduleGivenUp): fetches given up, the
 * notice live. Only a give-up leaves an `expired` row with attempts while its notice is live: the
 * pending hold expires rows that were never fetched.
 */
function givenUp(known: KnownNotice, at: Date): TwmInRecipient[] {
  if (known.notice.expiresAt <= at) return [];
  return known.recipients.filter((r) => r.state === 'expired' && r.attempts > 0 && r.receipt === null);
}

/** A notice seen before (5.5): an answer per `to` address from its rows, uniform answers included (12.6). */
function answerFor(recipients: readonly TwmInRecipient[], n: Notice, uniformAnswers: boolean): NoticeResult {
  const rows = new Map(recipients.map((r) => [r.rcpt, r]));
  const answer = (rcpt: string): NoticeStatus => {
    const row = rows.get(rcpt.toLowerCase());
    const status = row ? answerOf(row) : 'unknown';
    return status === 'unknown' && uniformAnswers ? 'pending' : status;
  };
  return { id: n.id, results: n.to.map((rcpt) => ({ rcpt, status: answer(rcpt) })) };
}

/** What a stored row answers (6.2): a fetch to come is `accepted`, a final row that was not delivered `pending`. */
function answerOf(r: TwmInRecipient): NoticeStatus {
  switch (r.state) {
    case 'unknown':
      return 'unknown';
    case 'scheduled':
    case 'stored':
      return 'accepted';
    case 'receipt-due':
    case 'closed':
      return r.receipt === 'delivered' ? 'accepted' : 'pending';
    default:
      return 'pending';
  }
}
