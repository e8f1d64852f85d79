/**
 * Sends queued learning (store `spam_learning`) to rspamd's controller,
 * never in a request path: a move or a Screener decision only writes a row.
 * Failed attempts are retried with exponential backoff (core/retry-schedule.ts);
 * a request rspamd refuses for good (wrong password, unreadable message) or
 * one that keeps failing for `giveUpAfterAttempts` is marked failed.
 *
 * Any number of processes on any number of machines run this worker on one
 * store: a pass claims due rows with a lease (owner, expiry;
 * store/spam-learning-claims.ts) and sends them one at a time. The leases of
 * the rows claimed and not yet finished are renewed every third of
 * `leaseMs`, since a batch of slow sends (each up to `[spam] timeout_ms`)
 * can outlast one lease; a process that hangs longer loses its rows to
 * another, and its late outcome is refused (logged, nothing written). Rows
 * claimed but not sent when the worker stops are released at once.
 */
import { nextAttempt, type BackoffOptions } from '../core/retry-schedule.ts';
import type { LearnWrite, SpamLearnItem, SpamLearningRepository } from '../store/types.ts';
import { LearnError, type RspamdClient } from './rspamd-client.ts';

export interface LearnWorkerOptions {
  repo: SpamLearningRepository;
  client: Pick<RspamdClient, 'learn'>;
  backoff: BackoffOptions;
  /** How often the queue is looked at when nothing kicks it. */
  pollMs?: number;
  giveUpAfterAttempts?: number;
  /** This process's name in the store's leases, unique in the cluster (app-start.ts: the queue worker's). */
  owner: string;
  /** How long a claim holds without renewal (renewed every third of it). Default 2 minutes. */
  leaseMs?: number;
  /** Rows claimed at a time. Default 20. */
  batchSize?: number;
  log?: (obj: Record<string, unknown>, msg: string) => void;
  now?: () => Date;
}

export interface LearnWorker {
  /** Look at the queue now (after a move queued learning). */
  kick(): void;
  /** Runs one pass; resolves when it is done (tests). */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

export function startLearnWorker(options: LearnWorkerOptions): LearnWorker {
  const now = options.now ?? (() => new Date());
  const pollMs = options.pollMs ?? 5_000;
  const owner = options.owner;
  const leaseMs = options.leaseMs ?? 120_000;
  const batchSize = options.batchSize ?? 20;
  const send = createSend(options, owner, now);
  /** Rows claimed by this worker and not yet finished: their leases are renewed. */
  const held = new Set<number>();
  let running: Promise<number> | null = null;
  let again = false;
  let stopped = false;

  async function pass(): Promise<number> {
    let sent = 0;
    for (;;) {
      const claimed = await options.repo.claim(now(), batchSize, { owner, until: new Date(now().getTime() + leaseMs) });
      if (claimed.length === 0) return sent;
      for (const item of claimed) held.add(item.id);
      try {
        for (const item of claimed) {
          if (stopped) break;
          if (await send(item)) sent++;
          held.delete(item.id);
        }
      } finally {
        // Claimed, not sent (stopping, or the store failed): free for any process at once.
        const unsent = claimed.filter((item) => held.delete(item.id)).map((item) => item.id);
        if (unsent.length > 0) await options.repo.release(unsent, owner);
      }
      if (stopped) return sent;
    }
  }

  function run(): Promise<number> {
    if (running) {
      again = true;
      return running;
    }
    running = pass()
      .catch((err: unknown) => {
        options.log?.({ err: err instanceof Error ? err.message : String(err) }, 'spam learning pass failed');
        return 0;
      })
      .finally(() => {
        running = null;
        if (again && !stopped) {
          again = false;
          void run();
        }
      });
    return running;
  }

  const timer = setInterval(() => void run(), pollMs);
  timer.unref();
  const renewal = startRenewal(options, held, owner, leaseMs, now);
  return {
    kick: () => void run(),
    runOnce: () => run(),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      clearInterval(renewal);
    },
  };
}

/** Sends one claimed row to rspamd and writes its outcome under the lease; true if rspamd learned it and that was recorded. */
function createSend(options: LearnWorkerOptions, owner: string, now: () => Date) {
  const giveUp = options.giveUpAfterAttempts ?? 20;
  const log = options.log ?? (() => undefined);
  return async (item: SpamLearnItem): Promise<boolean> => {
    let outcome: string;
    try {
      // The store keeps no pending row without its copy (spam-learning-repository.ts queueLearning); one made otherwise is not sent.
      if (item.raw.length === 0) throw new LearnError('no copy of the message to teach', true);
      outcome = await options.client.learn(item.kind, item.raw);
    } catch (err) {
      const attempts = item.attempts + 1;
      const permanent = err instanceof LearnError && err.permanent;
      const failed = permanent || attempts >= giveUp;
      const error = err instanceof Error ? err.message : String(err);
      const write = await options.repo.retry(item.id, item.kind, owner, { attempts, nextAttemptAt: nextAttempt(attempts, now(), options.backoff), error, failed });
      if (logRefused(log, write, item)) return false;
      log({ id: item.id, kind: item.kind, attempts, failed, err: error }, failed ? 'spam learning failed for good' : 'spam learning deferred');
      return false;
    }
    const write = await options.repo.done(item.id, item.kind, owner, outcome, now());
    if (logRefused(log, write, item)) return false;
    log({ id: item.id, user: item.userId, message: item.messageId, kind: item.kind, outcome }, 'spam filter learned');
    return true;
  };
}

/** Logs an outcome that was not recorded; true if it was not. */
function logRefused(log: NonNullable<LearnWorkerOptions['log']>, write: LearnWrite, item: SpamLearnItem): boolean {
  if (write === 'written') return false;
  if (write === 'lease-lost') log({ id: item.id, kind: item.kind }, 'spam learning: late write refused (another process took the row over after this one held it past its lease)');
  else log({ id: item.id, kind: item.kind }, 'spam learning: the class changed during the attempt; the new class goes out next');
  return true;
}

/** Renews the leases of the rows claimed and not yet finished every third of the lease, so that slow sends keep them. */
function startRenewal(options: LearnWorkerOptions, held: ReadonlySet<number>, owner: string, leaseMs: number, now: () => Date) {
  const timer = setInterval(
    () => {
      if (held.size === 0) return;
      const ids = [...held];
      options.repo
        .renew(ids, { owner, until: new Date(now().getTime() + leaseMs) })
        .then((kept) => {
          // Not the rows finished meanwhile: their outcome's write ended the lease.
          const lost = ids.filter((id) => held.has(id) && !kept.includes(id)).length;
          if (lost > 0) options.log?.({ lost, owner }, 'spam learning leases lost to another process (this one was too slow); their outcomes will not be recorded here');
        })
        .catch((err: unknown) => options.log?.({ err: err instanceof Error ? err.message : String(err) }, 'could not renew spam learning leases'));
    },
    Math.max(1, Math.floor(leaseMs / 3)),
  );
  // A renewal timer alone should not keep the process alive.
  timer.unref();
  return timer;
}
