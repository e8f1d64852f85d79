/**
 * Sends queued learning (store `spam_learning`) to rspamd's controller,
 * never in a request path: a move or a Screener decision only writes a row.
 * Failed attempts are retried with exponential backoff (core/retry-schedule.ts);
 * a request rspamd refuses for good (wrong password, unreadable message) or
 * one that keeps failing for `giveUpAfterAttempts` is marked failed.
 */
import { nextAttempt, type BackoffOptions } from '../core/retry-schedule.ts';
import type { SpamLearningRepository } from '../store/types.ts';
import { LearnError, type RspamdClient } from './rspamd-client.ts';

export interface LearnWorkerOptions {
  repo: SpamLearningRepository;
  client: Pick<RspamdClient, 'learn'>;
  backoff: BackoffOptions;
  /** How often the queue is looked at when nothing kicks it. */
  pollMs?: number;
  giveUpAfterAttempts?: number;
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
  const giveUp = options.giveUpAfterAttempts ?? 20;
  let running: Promise<number> | null = null;
  let again = false;
  let stopped = false;

  async function pass(): Promise<number> {
    let sent = 0;
    for (;;) {
      const due = await options.repo.due(now(), 20);
      if (due.length === 0) return sent;
      for (const item of due) {
        if (stopped) return sent;
        try {
          const outcome = await options.client.learn(item.kind, item.raw);
          await options.repo.done(item.id, item.kind, outcome, now());
          sent++;
          options.log?.({ id: item.id, user: item.userId, message: item.messageId, kind: item.kind, outcome }, 'spam filter learned');
        } catch (err) {
          const attempts = item.attempts + 1;
          const permanent = err instanceof LearnError && err.permanent;
          const failed = permanent || attempts >= giveUp;
          const error = err instanceof Error ? err.message : String(err);
          await options.repo.retry(item.id, item.kind, { attempts, nextAttemptAt: nextAttempt(attempts, now(), options.backoff), error, failed });
          options.log?.({ id: item.id, kind: item.kind, attempts, failed, err: error }, failed ? 'spam learning failed for good' : 'spam learning deferred');
        }
      }
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
  return {
    kick: () => void run(),
    runOnce: () => run(),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
