/**
 * The queue worker's pure parts and the transport call: what a transport
 * result means for a recipient (its new state, or the DSN it needs first:
 * the timing is core/retry-decision.ts), the one DSN of a round, and the
 * settings with their defaults. Split from queue-worker.ts, which runs them.
 */
import { domainOf } from '../core/address.ts';
import { decideRetry } from '../core/retry-decision.ts';
import { DEFAULT_RETRY_SCHEDULE, type RetrySchedule } from '../core/retry-schedule.ts';
import type { QueueEntry, QueueState } from '../core/types.ts';
import { buildDsn, describeDuration, type DsnKind, type DsnRecipient } from '../mail/dsn.ts';
import { formatReply, replies } from '../core/reply.ts';
import { headerBlockEnd, messageFacts, parseHeaders } from '../mail/headers.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

/** One transport call: recipients of one message at one domain. */
export interface Group {
  domain: string;
  entries: QueueEntry[];
}

/** A recipient whose new state may be written only after its DSN was handed over. */
export interface Pending {
  entry: QueueEntry;
  dsn: DsnRecipient;
  /** The state once the DSN was handed to notify. */
  reported: QueueState;
  /** The state if notify failed. */
  unreported: QueueState;
}

/** The new state of one recipient, or the DSN it needs first (the timing is core/retry-decision.ts). */
export function decide(
entry: QueueEntry,
result: RecipientResult,
reportable: boolean,
now: Date,
schedule: RetrySchedule,
random: () => number,
): { write: QueueState } | { pending: Pending & { kind: DsnKind } } {
  const reply = formatReply(result.reply);
  const previous = entry.status.state === 'deferred' ? entry.status : undefined;
  const decision = decideRetry({
    result: result.status,
    previousAttempts: previous?.attempts ?? 0,
    warned: previous?.warnedAt != null,
    createdAt: entry.createdAt,
    now,
    schedule,
    random,
  });
  if (decision.next === 'delivered') return { write: { state: 'delivered', deliveredAt: now, reply } };

  const remote = result.remoteMta ? { remoteMta: result.remoteMta } : {};
  const { attempts } = decision;

  if (decision.next === 'failed') {
    // Not reported yet (notify failed): retried, and reported again later.
    const retry: QueueState = { state: 'deferred', nextAttemptAt: decision.retryAt, attempts, lastError: reply };
    if (!decision.gaveUp) {
      const final: QueueState = { state: 'failed', failedAt: now, lastError: reply };
      if (!reportable) return { write: final };
      const dsn = { recipient: entry.recipient, reply: result.reply, lastAttemptAt: now, ...remote };
      return { pending: { kind: 'failed', entry, dsn, reported: final, unreported: retry } };
    }
    const age = now.getTime() - entry.createdAt.getTime();
    const gaveUp = `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} over ${describeDuration(age)}`;
    const final: QueueState = { state: 'failed', failedAt: now, lastError: `${gaveUp}; last reply: ${reply}` };
    if (!reportable) return { write: final };
    // 4.4.7: "delivery time expired" (RFC 3463); the last reply stays the diagnostic.
    const dsn = { recipient: entry.recipient, status: '4.4.7', reply: result.reply, note: `The mail system ${gaveUp}.`, lastAttemptAt: now, ...remote };
    return { pending: { kind: 'failed', entry, dsn, reported: final, unreported: retry } };
  }

  const deferred: QueueState = { state: 'deferred', nextAttemptAt: decision.nextAttemptAt, attempts, lastError: reply };
  if (!reportable || !decision.warn) return { write: deferred };
  const dsn = { recipient: entry.recipient, reply: result.reply, lastAttemptAt: now, ...remote };
  return { pending: { kind: 'delayed', entry, dsn, reported: { ...deferred, warnedAt: now }, unreported: deferred } };
}

/** One transport call; a transport that rejects (a local problem) defers its recipients. */
export async function deliverGroup(
route: (domain: string) => Transport,
log: (obj: object, msg: string) => void,
group: Group,
message: OutboundMessage | undefined,
): Promise<RecipientResult[]> {
  const recipients = [...new Set(group.entries.map((e) => e.recipient))];
  if (!message) return recipients.map((recipient) => ({ recipient, status: 'deferred', reply: replies.localProblem('the queued message could not be read') }));
  try {
    return await route(group.domain).deliver(group.domain, message, recipients);
  } catch (err) {
    // The contract: a transport rejects only on a local problem; the recipients are not at fault.
    log({ err, messageId: message.messageId, domain: group.domain }, 'transport failed');
    const reason = err instanceof Error ? err.message : String(err);
    return recipients.map((recipient) => ({ recipient, status: 'deferred', reply: replies.localProblem(`local delivery error: ${reason}`) }));
  }
}

/** The one DSN of a round for all `pending` recipients of one kind. */
export function roundDsn(
  kind: DsnKind,
  sender: string,
  first: QueueEntry,
  original: Buffer,
  pending: Pending[],
  at: { reportingMta: string; postmaster: string; date: Date; giveUpAfterMs: number },
): Buffer {
  return buildDsn({
    reportingMta: at.reportingMta,
    kind,
    to: sender,
    originalMessageId: messageFacts(parseHeaders(original)).messageId,
    arrivalDate: first.createdAt,
    recipients: pending.map((p) => p.dsn),
    originalHeaders: original.subarray(0, headerBlockEnd(original)).toString('utf8'),
    postmaster: at.postmaster,
    date: at.date,
    ...(kind === 'delayed' ? { retryUntil: new Date(first.createdAt.getTime() + at.giveUpAfterMs) } : {}),
  });
}

/** The null reverse-path: '' in the store; null and '<>' are accepted too, defensively. */
export function isNullSender(sender: string | null | undefined): boolean {
  return sender === null || sender === undefined || sender === '' || sender === '<>';
}

export function recipientDomain(recipient: string): string {
  try {
    return domainOf(recipient);
  } catch {
    return ''; // not an address: its transport call fails it, per recipient
  }
}

/** The transport's result for an entry; an omitted recipient counts as a temporary local failure. */
export function resultFor(entry: QueueEntry, results: RecipientResult[]): RecipientResult {
  const lower = entry.recipient.toLowerCase();
  const found = results.find((r) => r.recipient === entry.recipient) ?? results.find((r) => r.recipient.toLowerCase() === lower);
  return found ?? { recipient: entry.recipient, status: 'deferred', reply: replies.localProblem('the transport returned no result for this recipient') };
}

export function describe(state: QueueState): object {
  switch (state.state) {
    case 'deferred':
      return { attempts: state.attempts, nextAttemptAt: state.nextAttemptAt.toISOString(), reply: state.lastError };
    case 'failed':
      return { reply: state.lastError };
    case 'delivered':
      return { reply: state.reply };
    default:
      return {};
  }
}

export function mergeSchedule(overrides: Partial<RetrySchedule> | undefined): RetrySchedule {
  const merged: RetrySchedule = { ...DEFAULT_RETRY_SCHEDULE };
  for (const key of Object.keys(merged) as Array<keyof RetrySchedule>) {
    const value = overrides?.[key];
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}

export function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
