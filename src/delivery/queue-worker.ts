/**
 * The queue worker: claims due recipients in the store, hands them to the
 * transport of their domain, and writes each recipient's outcome back.
 *
 * Design note.
 * - The store is the only state that matters (Postfix's deferred queue). In
 *   memory there is just the active set: the ids in flight and the transport
 *   calls per domain. A crash loses nothing; the entries it was delivering
 *   are claimed by another process (or by this one after a restart) once
 *   their leases expire, so delivery is at-least-once.
 * - Any number of processes, on any number of machines sharing the store,
 *   run this worker: a poll claims entries with a lease (owner, expiry;
 *   store/queue-claims.ts) and each outcome is written only while the lease
 *   is still ours (queue-round.ts). Leases of entries in flight are renewed
 *   every third of `leaseMs`; a process that hangs longer loses its entries
 *   to another, and its late writes are refused.
 * - A poll claims at most `batchSize` due entries, leaving out the domains at their concurrency limit, groups them
 *   by (message, recipient domain) and starts one transport call per group
 *   while the active set (`maxActive` recipients) and the domain's limit
 *   (`perDomainConcurrency` calls) allow. It claims in steps that grow from
 *   what is known to fit (createPoll). What does not fit waits for the
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
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { backoffMs } from '../core/retry-schedule.ts';
import type { RetrySchedule } from '../core/retry-schedule.ts';
import type { DsnKind } from '../mail/dsn.ts';
import type { QueueRepository } from '../store/types.ts';
import { createActiveSet, groupByMessage, type ActiveSet } from './queue-active-set.ts';
import { mergeSchedule, positiveInteger, recipientDomain, type Group } from './queue-decide.ts';
import { createRoundRunner } from './queue-round.ts';
import { startPollLoop } from './poll-loop.ts';
import type { Transport } from './types.ts';

export { isNullSender } from './queue-decide.ts';

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
  /** Due entries claimed per poll at most. Default 2 * maxActive. */
  batchSize?: number;
  /** This process's name in the store's leases, unique in the cluster. Default: a random one. */
  owner?: string;
  /** How long a claim holds without renewal (renewed every third of it). Default 2 minutes. */
  leaseMs?: number;
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
  /**
   * New mail was queued (or retried): poll now instead of at the next interval. Given the
   * recipients of the new message, a poll that could start none of them (their domains all at
   * their limit, or the active set full) is not run: a call that ends polls for them.
   */
  kick(recipients?: readonly string[]): void;
  /** Resolves when no poll and no delivery is running (tests: kick(), then await idle()). */
  idle(): Promise<void>;
  /** Stops taking new work and waits for the deliveries in flight, DSNs included. */
  stop(): Promise<void>;
}

export function startQueueWorker(options: QueueWorkerOptions): QueueWorker {
  const settings = settingsOf(options);
  const { queue } = options;
  const { owner, leaseMs, clock, log } = settings;
  const active = createActiveSet(settings.maxActive, settings.perDomain);
  const { runRound } = createRoundRunner({
    queue,
    route: options.route,
    notify: options.notify,
    active,
    owner,
    schedule: settings.schedule,
    clock,
    random: settings.random,
    dsn: { reportingMta: options.reportingMta, postmaster: settings.postmaster },
    log,
  });
  const running = new Set<Promise<void>>();
  const state: PollState = { backlog: false, kickedMeanwhile: false, stopping: undefined };

  function start(messageId: string, groups: Group[]): void {
    const round: Promise<void> = runRound(messageId, groups)
      .catch((err: unknown) => log({ err, messageId }, 'queue round failed'))
      .finally(() => {
        // Normally every write already did this; after an unexpected error the
        // entries must not stay marked forever (they are due again when the lease ends).
        for (const group of groups) for (const entry of group.entries) active.inFlight.delete(entry.id);
        running.delete(round);
        // Room was made: take what the last poll had to leave behind.
        if (state.backlog) loop.kick();
      });
    running.add(round);
  }

  const poll = createPoll({ queue, active, owner, leaseMs, clock, batchSize: settings.batchSize, state, start });
  const loop = startPollLoop(poll, {
    intervalMs: settings.pollIntervalMs,
    onError: (err) => log({ err }, 'queue poll failed'),
    pending: () => running,
  });
  const renewal = startRenewal(queue, active, owner, leaseMs, clock, log);
  function stop(): Promise<void> {
    state.stopping ??= loop.stop().finally(() => clearInterval(renewal));
    return state.stopping;
  }
  function kick(recipients?: readonly string[]): void {
    if (recipients && recipients.length > 0 && (active.full() || recipients.every((r) => active.busy(recipientDomain(r))))) {
      // Nothing of it could start now, and a poll would scan the whole due backlog to learn
      // that. A call to each of these domains is in flight; when one ends it polls (start()).
      state.backlog = true;
      // A poll running now may have claimed before this message was queued: keep its end from clearing the flag.
      state.kickedMeanwhile = true;
      return;
    }
    loop.kick();
  }
  // The loop polls at once: anything due from before a restart.
  return { kick, idle: loop.idle, stop };
}

interface PollState {
  /** Due work was left behind: the next call that ends polls again. */
  backlog: boolean;
  /** A kick was skipped since the current poll began (kick()). */
  kickedMeanwhile: boolean;
  stopping: Promise<void> | undefined;
}

interface PollInput {
  queue: QueueRepository;
  active: ActiveSet;
  owner: string;
  leaseMs: number;
  clock: () => Date;
  batchSize: number;
  state: PollState;
  start: (messageId: string, groups: Group[]) => void;
}

/**
 * One step of the poll loop (delivery/poll-loop.ts): claims due work and starts what fits; the rest is released.
 *
 * The claims grow from what is known to fit: the free calls of the domains in flight (at least
 * one), doubling while each claim comes back full, and never more than the active set's room.
 * One claim of the whole batch (as before) took up to `batchSize` entries of a domain with one
 * free call to start one, and released the rest: with one busy destination and a backlog, about
 * 40 entries claimed, read and released per delivered message, a tenth of the relay sender's CPU
 * (bench/smtp-relay.ts). A domain that fills up during the step is left out of its next claim,
 * so that other domains' due entries behind its backlog still start in this step.
 */
function createPoll({ queue, active, owner, leaseMs, clock, batchSize, state, start }: PollInput): () => Promise<boolean> {
  return async () => {
    if (active.full()) {
      state.backlog = true;
      return false;
    }
    state.kickedMeanwhile = false;
    const unstarted: number[] = [];
    let leftBehind = false;
    let claimedInStep = 0;
    let want = Math.max(1, active.freeCalls());
    for (;;) {
      const busy = active.busyDomains();
      const limit = Math.min(want, active.room(), batchSize - claimedInStep);
      if (limit <= 0 || state.stopping) {
        // No room (the active set, or this step's batch) for what may still be due.
        leftBehind = true;
        break;
      }
      const now = clock();
      // Not the entries in flight here: a round writes an entry's state (which ends its lease) before it
      // lets go of it, and a claim in between would take it again only for groupByMessage to skip it,
      // leaving it leased, and so not retried, until the lease expired.
      const excludeIds = [...active.inFlight];
      // Whole messages (their due recipients), so that a small claim does not split a message's call.
      const claimed = await queue.claim(now, limit, { owner, until: new Date(now.getTime() + leaseMs) }, { excludeDomains: busy, excludeIds });
      claimedInStep += claimed.length;
      for (const [messageId, domains] of groupByMessage(state.stopping ? [] : claimed, active.inFlight)) {
        const groups: Group[] = [];
        for (const [domain, entries] of domains) {
          const taken = active.take(domain, entries) ?? [];
          if (taken.length < entries.length) unstarted.push(...entries.slice(taken.length).map((e) => e.id));
          if (taken.length > 0) groups.push({ domain, entries: taken });
        }
        if (groups.length > 0) start(messageId, groups);
      }
      if (state.stopping) unstarted.push(...claimed.filter((e) => !active.inFlight.has(e.id)).map((e) => e.id));
      // Nothing more is due outside the busy domains (their turn comes when a call ends).
      if (claimed.length < limit) break;
      want = limit * 2;
    }
    // Claimed but not started: free for any process (this one included) at once, not after the lease.
    await queue.release(unstarted, owner);
    // More may be due: the room ran out, some of a claim did not fit, or busy domains were left out.
    state.backlog = leftBehind || unstarted.length > 0 || active.busyDomains().length > 0 || state.kickedMeanwhile;
    // What was left behind is taken when a round ends and makes room (start()).
    return false;
  };
}

/** Renews the leases of the entries in flight every third of the lease, so that a slow delivery keeps them. */
function startRenewal(queue: QueueRepository, active: ActiveSet, owner: string, leaseMs: number, clock: () => Date, log: (obj: object, msg: string) => void) {
  const timer = setInterval(() => {
    const ids = [...active.inFlight];
    if (ids.length === 0) return;
    const until = new Date(clock().getTime() + leaseMs);
    queue
      .renew(ids, { owner, until })
      .then((held) => {
        if (held.length < ids.length) log({ lost: ids.length - held.length, owner }, 'queue leases lost to another process (this one was too slow); their outcomes will not be recorded here');
      })
      .catch((err: unknown) => log({ err }, 'could not renew queue leases'));
  }, Math.max(1, Math.floor(leaseMs / 3)));
  // The listeners keep the process alive, a renewal timer alone should not.
  timer.unref();
  return timer;
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
    owner: options.owner ?? processOwner(),
    leaseMs: positiveInteger('leaseMs', options.leaseMs ?? 120_000),
    clock: options.now ?? (() => new Date()),
    random,
    postmaster: options.postmaster ?? `MAILER-DAEMON@${options.reportingMta}`,
    log: options.log ?? (() => undefined),
  };
}

/** The slot a server process fills: this machine, its listening address (`host:port`) and its worker index. */
export function processSlot(listen: string, workerIndex: number): string {
  return `${hostname()}@${listen}#${workerIndex}`;
}

/**
 * A name for this process in the store's leases: `<node>/<pid>:<random>`.
 * `node` names the slot this process fills (a machine, a listening address
 * and a worker index: the same after a restart), so that a restarted process can
 * take back at once what its dead predecessor in that slot held
 * (ClusterLeaseRepository.releaseEarlier) instead of waiting for the leases
 * to expire; pid and random part tell incarnations apart.
 */
export function processOwner(node = hostname()): string {
  return `${node}/${process.pid}:${randomBytes(4).toString('hex')}`;
}
