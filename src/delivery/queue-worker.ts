/**
 * The queue worker: takes due recipients from the store, hands them to the
 * transport of their domain, and writes each recipient's outcome back.
 *
 * Design note.
 * - The store is the only state that matters (Postfix's deferred queue). In
 *   memory there is just the active set: the ids in flight and the transport
 *   calls per domain. A crash loses nothing but the in-flight marks; the next
 *   start polls again, so delivery is at-least-once.
 * - A poll asks the store for at most `batchSize` due entries, leaving out
 *   what is in flight and the domains at their concurrency limit, groups them
 *   by (message, recipient domain) and starts one transport call per group
 *   while the active set (`maxActive` recipients) and the domain's limit
 *   (`perDomainConcurrency` calls) allow. What does not fit waits for the
 *   next poll, which a finished call triggers when work was left behind.
 * - The calls of one message started in one poll form a round. Recipients
 *   that need a DSN (failed, given up, delayed) keep their old state and stay
 *   in flight until the round ends; then one DSN per kind covers all of them,
 *   and only after `notify` succeeded is the new state written. A crash in
 *   between sends the DSN again rather than never. If `notify` fails, a
 *   failed recipient is deferred (retried, and reported again later) and a
 *   delay warning is simply not marked as sent.
 * - Loops: no DSN ever answers a null sender ('' in the store); the DSN
 *   itself is built with Auto-Submitted and is delivered by the caller with a
 *   null envelope sender, so a DSN that cannot be delivered ends there.
 * - Timing is the pure core/retry-decision.ts (on core/retry-schedule.ts),
 *   relative to the message's arrival (createdAt); the next attempt is never
 *   set after the give-up deadline, so giving up happens on time rather than
 *   one backoff late.
 */
import { domainOf } from '../core/address.ts';
import { decideRetry } from '../core/retry-decision.ts';
import { backoffMs, DEFAULT_RETRY_SCHEDULE, type RetrySchedule } from '../core/retry-schedule.ts';
import type { QueueEntry, QueueState } from '../core/types.ts';
import { buildDsn, describeDuration, type DsnKind, type DsnRecipient } from '../mail/dsn.ts';
import { formatReply, replies } from '../core/reply.ts';
import { headerBlockEnd, messageFacts, parseHeaders } from '../mail/headers.ts';
import type { QueueRepository } from '../store/types.ts';
import { startPollLoop } from './poll-loop.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

/** A DSN ready to be delivered to the original sender (with a null envelope sender). */
export interface DeliveryStatusNotice {
  kind: DsnKind;
  /** The original envelope sender: the DSN's recipient. Never empty. */
  sender: string;
  raw: Buffer;
}

export interface QueueWorkerOptions {
  queue: QueueRepository;
  /** The transport for a recipient domain (lower-case). */
  route: (domain: string) => Transport;
  /** Overrides of DEFAULT_RETRY_SCHEDULE; undefined values keep the default. */
  schedule?: Partial<RetrySchedule>;
  /** Recipients in flight at most (the active set). Default 100. */
  maxActive?: number;
  /** Transport calls in flight per destination domain. Default 5. */
  perDomainConcurrency?: number;
  /** How often the store is polled when nobody kicks. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Due entries read per poll. Default 2 * maxActive. */
  batchSize?: number;
  now?: () => Date;
  /** For the backoff jitter; Math.random by default. */
  random?: () => number;
  /** Delivers a DSN to the original sender; only ever called for a non-null sender. */
  notify: (dsn: DeliveryStatusNotice) => Promise<void>;
  /** This host's name: Reporting-MTA of the DSNs. */
  reportingMta: string;
  /** From: of the DSNs. Default MAILER-DAEMON@reportingMta. */
  postmaster?: string;
  log?: (obj: object, msg: string) => void;
}

export interface QueueWorker {
  /** New mail was queued (or retried): poll now instead of at the next interval. */
  kick(): void;
  /** Resolves when no poll and no delivery is running (tests: kick(), then await idle()). */
  idle(): Promise<void>;
  /** Stops taking new work and waits for the deliveries in flight, DSNs included. */
  stop(): Promise<void>;
}

/** One transport call: recipients of one message at one domain. */
interface Group {
  domain: string;
  entries: QueueEntry[];
}

/** A recipient whose new state may be written only after its DSN was handed over. */
interface Pending {
  entry: QueueEntry;
  dsn: DsnRecipient;
  /** The state once the DSN was handed to notify. */
  reported: QueueState;
  /** The state if notify failed. */
  unreported: QueueState;
}

export function startQueueWorker(options: QueueWorkerOptions): QueueWorker {
  const { queue, route, notify, reportingMta } = options;
  const { schedule, maxActive, perDomain, batchSize, pollIntervalMs, clock, random, postmaster, log } = settingsOf(options);

  const active = createActiveSet(maxActive, perDomain);
  const { inFlight } = active;
  const running = new Set<Promise<void>>();
  let backlog = false;
  let stopping: Promise<void> | undefined;
  /**
   * Entries whose round wrote their state while a poll's query was running:
   * the query may have read them before that write, as still due, after they
   * left the active set. One poll runs at a time (poll-loop.ts), so one set.
   */
  let settledDuringPoll: Set<number> | null = null;

  /** One step of the poll loop (delivery/poll-loop.ts): starts the due work that fits. */
  async function poll(): Promise<boolean> {
    if (active.full()) {
      backlog = true;
      return false;
    }
    const busy = active.busyDomains();
    const settled = new Set<number>();
    settledDuringPoll = settled;
    let found: QueueEntry[];
    try {
      found = await queue.due(clock(), batchSize, { excludeIds: [...inFlight], excludeDomains: busy });
    } finally {
      settledDuringPoll = null;
    }
    // Never deliver twice: an entry written while the query ran is not due any more.
    const due = found.filter((e) => !settled.has(e.id));
    if (stopping) return false;
    // More may be due: the batch was full, or busy domains were left out (their turn comes when a call ends).
    let leftBehind = due.length >= batchSize || busy.length > 0;

    for (const [messageId, domains] of groupByMessage(due, inFlight)) {
      const groups: Group[] = [];
      for (const [domain, entries] of domains) {
        const taken = active.take(domain, entries);
        if (!taken) {
          leftBehind = true;
          continue;
        }
        if (taken.length < entries.length) leftBehind = true;
        groups.push({ domain, entries: taken });
      }
      if (groups.length > 0) start(messageId, groups);
    }
    backlog = leftBehind;
    // What was left behind is taken when a round ends and makes room (start()).
    return false;
  }

  function start(messageId: string, groups: Group[]): void {
    const round: Promise<void> = runRound(messageId, groups)
      .catch((err: unknown) => log({ err, messageId }, 'queue round failed'))
      .finally(() => {
        // Normally every write already did this; after an unexpected error the
        // entries must not stay marked forever (they are still due in the store).
        for (const group of groups) for (const entry of group.entries) inFlight.delete(entry.id);
        running.delete(round);
        // Room was made: take what the last poll had to leave behind.
        if (backlog) kick();
      });
    running.add(round);
  }

  async function runRound(messageId: string, groups: Group[]): Promise<void> {
    let message: { raw: Buffer } | undefined;
    try {
      message = await queue.message(messageId);
    } catch (err) {
      log({ err, messageId }, 'could not read a queued message');
    }
    const first = groups[0]!.entries[0]!;
    const sender = isNullSender(first.sender) ? null : first.sender;
    const failed: Pending[] = [];
    const delayed: Pending[] = [];
    let finished = false;

    await Promise.all(
      groups.map(async (group) => {
        let results: RecipientResult[];
        try {
          results = await deliverGroup(route, log, group, message && { messageId, sender, raw: message.raw });
        } finally {
          active.release(group.domain);
        }
        for (const entry of group.entries) {
          const outcome = decide(entry, resultFor(entry, results), sender !== null, clock(), schedule, random);
          if ('write' in outcome) {
            if (outcome.write.state === 'delivered' || outcome.write.state === 'failed') finished = true;
            await write(entry, outcome.write);
          } else {
            (outcome.pending.kind === 'failed' ? failed : delayed).push(outcome.pending);
          }
        }
      }),
    );

    if (sender !== null) {
      const original = message?.raw ?? Buffer.alloc(0);
      if (await report('failed', sender, first, original, failed)) finished = true;
      await report('delayed', sender, first, original, delayed);
    }
    if (finished) {
      await queue.removeMessageIfDone(messageId).catch((err: unknown) => log({ err, messageId }, 'could not drop a finished message'));
    }
  }

  /** Sends one DSN for all `pending` recipients, then writes their states. True if final states were written. */
  async function report(kind: DsnKind, sender: string, first: QueueEntry, original: Buffer, pending: Pending[]): Promise<boolean> {
    if (pending.length === 0) return false;
    let sent = false;
    try {
      const raw = roundDsn(kind, sender, first, original, pending, { reportingMta, postmaster, date: clock(), giveUpAfterMs: schedule.giveUpAfterMs });
      await notify({ kind, sender, raw });
      sent = true;
      log({ messageId: first.messageId, kind, sender, recipients: pending.map((p) => p.entry.recipient) }, 'delivery status notification sent');
    } catch (err) {
      log({ err, messageId: first.messageId, kind, sender }, 'could not send a delivery status notification; will try again');
    }
    for (const p of pending) await write(p.entry, sent ? p.reported : p.unreported);
    return sent && kind === 'failed';
  }

  /** Writes a recipient's state and takes it out of the active set (also when the write fails: it is then still due). */
  async function write(entry: QueueEntry, state: QueueState): Promise<void> {
    try {
      await queue.update(entry.id, state);
      log({ id: entry.id, messageId: entry.messageId, recipient: entry.recipient, ...describe(state) }, `recipient ${state.state}`);
    } catch (err) {
      log({ err, id: entry.id, messageId: entry.messageId }, 'could not write a queue state; the recipient stays due');
    } finally {
      inFlight.delete(entry.id);
      settledDuringPoll?.add(entry.id);
    }
  }

  const loop = startPollLoop(poll, {
    intervalMs: pollIntervalMs,
    onError: (err) => log({ err }, 'queue poll failed'),
    pending: () => running,
  });
  function kick(): void {
    loop.kick();
  }
  function stop(): Promise<void> {
    stopping ??= loop.stop();
    return stopping;
  }
  // The loop polls at once: anything due from before a restart.
  return { kick, idle: loop.idle, stop };
}

/** The options with their defaults, checked now rather than at the first deferral. */
function settingsOf(options: QueueWorkerOptions) {
  const schedule = mergeSchedule(options.schedule);
  const maxActive = positiveInteger('maxActive', options.maxActive ?? 100);
  const random = options.random ?? Math.random;
  backoffMs(1, { baseMs: schedule.baseMs, maxMs: schedule.maxMs, jitter: schedule.jitter, random }); // throws a RangeError now rather than at the first deferral
  return {
    schedule,
    maxActive,
    perDomain: positiveInteger('perDomainConcurrency', options.perDomainConcurrency ?? 5),
    batchSize: positiveInteger('batchSize', options.batchSize ?? 2 * maxActive),
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    clock: options.now ?? (() => new Date()),
    random,
    postmaster: options.postmaster ?? `MAILER-DAEMON@${options.reportingMta}`,
    log: options.log ?? (() => undefined),
  };
}

/** The active set, the only delivery state in memory: recipients in flight and transport calls per domain. */
function createActiveSet(maxActive: number, perDomain: number) {
  const inFlight = new Set<number>();
  const domainCalls = new Map<string, number>();
  return {
    inFlight,
    full: () => inFlight.size >= maxActive,
    /** Domains at their concurrency limit. */
    busyDomains: () => [...domainCalls].filter(([, calls]) => calls >= perDomain).map(([domain]) => domain),
    /** Takes what fits of one domain's entries as one transport call; null when the set or the domain is full. */
    take(domain: string, entries: QueueEntry[]): QueueEntry[] | null {
      const room = maxActive - inFlight.size;
      if (room <= 0 || (domainCalls.get(domain) ?? 0) >= perDomain) return null;
      const taken = entries.slice(0, room);
      for (const entry of taken) inFlight.add(entry.id);
      domainCalls.set(domain, (domainCalls.get(domain) ?? 0) + 1);
      return taken;
    },
    /** A transport call to `domain` ended. */
    release(domain: string): void {
      const calls = (domainCalls.get(domain) ?? 1) - 1;
      if (calls > 0) domainCalls.set(domain, calls);
      else domainCalls.delete(domain);
    },
  };
}

/** message id -> domain -> entries not in flight, in the store's order (oldest first). */
function groupByMessage(due: QueueEntry[], inFlight: ReadonlySet<number>): Map<string, Map<string, QueueEntry[]>> {
  const byMessage = new Map<string, Map<string, QueueEntry[]>>();
  for (const entry of due) {
    if (inFlight.has(entry.id)) continue;
    const domains = byMessage.get(entry.messageId) ?? new Map<string, QueueEntry[]>();
    byMessage.set(entry.messageId, domains);
    const domain = recipientDomain(entry.recipient);
    const entries = domains.get(domain) ?? [];
    domains.set(domain, entries);
    entries.push(entry);
  }
  return byMessage;
}

/** The new state of one recipient, or the DSN it needs first (the timing is core/retry-decision.ts). */
function decide(
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
async function deliverGroup(
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
function roundDsn(
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

function recipientDomain(recipient: string): string {
  try {
    return domainOf(recipient);
  } catch {
    return ''; // not an address: its transport call fails it, per recipient
  }
}

/** The transport's result for an entry; an omitted recipient counts as a temporary local failure. */
function resultFor(entry: QueueEntry, results: RecipientResult[]): RecipientResult {
  const lower = entry.recipient.toLowerCase();
  const found = results.find((r) => r.recipient === entry.recipient) ?? results.find((r) => r.recipient.toLowerCase() === lower);
  return found ?? { recipient: entry.recipient, status: 'deferred', reply: replies.localProblem('the transport returned no result for this recipient') };
}

function describe(state: QueueState): object {
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

function mergeSchedule(overrides: Partial<RetrySchedule> | undefined): RetrySchedule {
  const merged: RetrySchedule = { ...DEFAULT_RETRY_SCHEDULE };
  for (const key of Object.keys(merged) as Array<keyof RetrySchedule>) {
    const value = overrides?.[key];
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
