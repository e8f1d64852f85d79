/**
 * The recipient's fetches and receipts (docs/protocol.md 8.3-8.5).
 *
 * Design note.
 * - The store is the state: rows `scheduled` (a fetch is due) and
 *   `receipt-due` (a receipt is due) with their next attempt time. The worker
 *   claims due rows with a lease (store/twm-inbound-claims.ts), a notice at
 *   a time, and does one fetch (for every scheduled recipient of the notice)
 *   and one receipt per notice. Any number of processes on any number of
 *   machines run it on one store: a claimed notice is theirs until the lease
 *   expires (renewed every third of `leaseMs` while in flight), and every
 *   outcome is written only while the lease is still held (a late write
 *   after a takeover changes nothing; twm-fetch-steps.ts). A poll never
 *   waits for the work it started (at most `maxInFlight` notices at once), so
 *   one slow sender does not hold up the others.
 * - After a successful store the receipt goes out at once, and only its
 *   outcome is written (`closed`, or `receipt-due` to retry): one write per
 *   message instead of two.
 * - A fetch goes to the sender domain's own SRV target, signed under the
 *   recipient domain's key; the client never uses anything from the notice
 *   but its id. The octets are checked (size, SHA-256, Content-Digest, From:,
 *   List-Id) before anything is stored; then the one ingest path stores them
 *   durably, and only then is the `delivered` receipt due.
 * - At-least-once: a crash between ingest and the row update fetches the
 *   message again; ingest then finds it stored under the notice's key and
 *   stores nothing twice (never a loss, and no duplicate).
 * - Retries use the queue's backoff; fetches end at `expires` (the store's
 *   expire() closes them) or after MAX_CONTACT_ATTEMPTS, receipts at
 *   `expires` + 24 h. A sender's retry of the notice schedules a fetch given
 *   up on its attempts again, before `expires` (endpoints/twm/retried-notice.ts):
 *   the rows come back `scheduled` and due, and this worker claims them as any.
 */
import type { BackoffOptions } from '../core/retry-schedule.ts';
import type { HeaderLimits } from '../core/header-limits.ts';
import type { Ingest } from '../ingest/ingest.ts';
import type { TwmInboundRepository, TwmInNotice, TwmInRecipient } from '../store/types.ts';
import type { TwmClient, TwmSigningKey } from './twm-client-types.ts';
import { startPollLoop } from './poll-loop.ts';
import { processOwner } from './queue-worker.ts';
import { createFetchSteps } from './twm-fetch-steps.ts';

export interface TwmFetchWorkerOptions {
  inbox: TwmInboundRepository;
  /** Counts an outcome against the sender's domain for its failure report (docs/protocol.md 6.6). */
  report?: (domain: string, resultType: string) => void;
  /** A `pending` notice is forgotten this long after it arrived, if it has not expired before (12.7). Default 14 days. */
  pendingHoldMs?: number;
  ingest: Pick<Ingest, 'findRecipient' | 'ingest'>;
  client: Pick<TwmClient, 'post'>;
  /** The signing key for one of our domains. */
  key: (domain: string) => TwmSigningKey;
  hostname: string;
  maxMessageSize: number;
  /** Header section limits (core/header-limits.ts), the same as SMTP's. */
  headerLimits?: HeaderLimits;
  backoff: Omit<BackoffOptions, 'random'>;
  pollIntervalMs?: number;
  /** Rows claimed per poll at most. */
  batchSize?: number;
  /** Notices being fetched or receipted at once. Default 50. */
  maxInFlight?: number;
  /** This process's name in the store's leases, unique in the cluster. Default: a random one. */
  owner?: string;
  /** How long a claim holds without renewal (renewed every third of it). Default 2 minutes. */
  leaseMs?: number;
  /**
   * Moves expired notices' rows to `expired` every few seconds (true, the
   * default); false when the application runs that as a cluster-wide sweep.
   */
  expire?: boolean;
  now?: () => Date;
  log?: (obj: object, msg: string) => void;
  /** Counts fetch outcomes (metrics): `stored`, `retry`, `abandoned`, or a receipt error code. */
  onFetch?: (outcome: string) => void;
}

export interface TwmFetchWorker {
  kick(): void;
  /** Runs polls until nothing is due now (tests). */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

type Row = { notice: TwmInNotice; recipient: TwmInRecipient };
type Group = { notice: TwmInNotice; fetch: TwmInRecipient[]; receipt: TwmInRecipient[] };

export function startTwmFetchWorker(options: TwmFetchWorkerOptions): TwmFetchWorker {
  const now = options.now ?? (() => new Date());
  const log = options.log ?? (() => undefined);
  const owner = options.owner ?? processOwner();
  const leaseMs = options.leaseMs ?? 120_000;
  // A step that makes a row due at once (a failed receipt) asks for a poll: it is claimed then
  // (into `next` while its notice is still in flight here) rather than at the next interval.
  const steps = createFetchSteps({ options, owner, now, log, count: options.onFetch ?? (() => undefined), due: () => loop.kick() });
  /** Notices (`senderDomain id`) being handled, and their promises. */
  const inFlight = new Map<string, Promise<void>>();
  /**
   * Rows claimed while their notice was still in flight here (a fetch whose
   * body failed its checks makes its receipt due at once): ours, started when
   * the notice's current work ends rather than left leased and idle.
   */
  const next = new Map<string, Group>();

  function start(key: string, g: Group): void {
    const work = (async () => {
      try {
        if (g.fetch.length > 0) await steps.fetch(g.notice, g.fetch);
        // Rows of one receipt share its status; `failed` ones may differ in their error.
        const byStatus = new Map<string, TwmInRecipient[]>();
        for (const r of g.receipt) byStatus.set(`${r.receipt} ${r.receiptError}`, [...(byStatus.get(`${r.receipt} ${r.receiptError}`) ?? []), r]);
        for (const rows of byStatus.values()) await steps.receipt(g.notice, rows);
      } catch (err) {
        log({ err, notice: g.notice.id }, 'twm fetch worker error');
      }
    })().finally(() => {
      inFlight.delete(key);
      const then = next.get(key);
      next.delete(key);
      if (then) start(key, then);
      // A freed place matters only if the last poll left due rows behind for want of one; otherwise
      // every poll after each delivery was one more claim statement that found nothing (the
      // notice that makes new work kicks us itself, inbox.ts wakeFetcher).
      else if (state.saturated) loop.kick();
    });
    inFlight.set(key, work);
  }

  const state: PollState = { owner, leaseMs, now, inFlight, next, start, saturated: false };
  const poll = createPoll(options, state);
  const loop = startPollLoop(poll, {
    intervalMs: options.pollIntervalMs ?? 1000,
    onError: (err) => log({ err }, 'twm fetch worker poll failed'),
    pending: () => inFlight.values(),
  });
  // Renews the leases of the notices in flight, so that a slow sender does not cost us the notice.
  const renewal = setInterval(() => {
    const keys = [...inFlight.keys()];
    if (keys.length === 0) return;
    options.inbox.renew(keys, { owner, until: new Date(now().getTime() + leaseMs) }).catch((err: unknown) => log({ err }, 'could not renew twm fetch leases'));
  }, Math.max(1, Math.floor(leaseMs / 3)));
  renewal.unref();
  return {
    kick: () => loop.kick(),
    drain: loop.drain,
    stop: () => loop.stop().finally(() => clearInterval(renewal)),
  };
}

interface PollState {
  owner: string;
  leaseMs: number;
  now: () => Date;
  inFlight: Map<string, Promise<void>>;
  next: Map<string, Group>;
  start: (key: string, g: Group) => void;
  /** The last poll may have left due rows unclaimed: it had no free place, or claimed as many rows as it could. */
  saturated: boolean;
}

/** One step of the poll loop: claims due notices that fit and starts them; true if more may be due. */
function createPoll(options: TwmFetchWorkerOptions, s: PollState): () => Promise<boolean> {
  const batchSize = options.batchSize ?? 50;
  const maxInFlight = options.maxInFlight ?? 50;
  let lastExpiry = 0;
  return async () => {
    const at = s.now();
    // Expiry is a write: once every few seconds is enough (a notice's lifetime is days).
    if (options.expire !== false && at.getTime() - lastExpiry >= 5_000) {
      lastExpiry = at.getTime();
      await options.inbox.expire(at, new Date(at.getTime() - (options.pendingHoldMs ?? 14 * 86_400_000)));
    }
    const free = maxInFlight - s.inFlight.size;
    s.saturated = free <= 0;
    if (free <= 0) return false;
    // A claimed row is at least part of one notice: `free` rows never make more than `free` notices.
    const limit = Math.min(batchSize, free);
    const claimed: Row[] = await options.inbox.claim(at, limit, { owner: s.owner, until: new Date(at.getTime() + s.leaseMs) });
    const groups = new Map<string, Group>();
    for (const { notice, recipient } of claimed) {
      const key = `${notice.senderDomain} ${notice.id}`;
      // A notice running here already: its new rows wait for the current work (never two at once).
      const into = s.inFlight.has(key) ? s.next : groups;
      const g = into.get(key) ?? { notice, fetch: [], receipt: [] };
      const list = recipient.state === 'scheduled' ? g.fetch : g.receipt;
      if (!list.some((r) => r.rcpt === recipient.rcpt)) list.push(recipient);
      into.set(key, g);
    }
    s.saturated = claimed.length >= limit;
    for (const [key, g] of groups) s.start(key, g);
    return claimed.length >= limit;
  };
}
