/**
 * Runs the decisions reconcile (services/decisions.ts) on the store: users
 * whose address book changed get their pending requests and TWM notices
 * re-decided, whichever process changed it. What it schedules is then the
 * TWM fetch worker's (delivery/twm-fetch-worker.ts), through the store.
 */
import { startPollLoop, type PollLoop } from './poll-loop.ts';

export type DecisionsWorker = PollLoop;

/** What the worker needs of services/decisions.ts (structurally: delivery/ imports no services). */
export interface Reconciler {
  reconcileChanged(
    limit: number,
    onError: (err: unknown, userId: number) => void,
  ): Promise<{ users: number; more: boolean; summary: Record<string, number> }>;
}

export function startDecisionsWorker(options: {
  decisions: Reconciler;
  pollIntervalMs?: number;
  log?: (obj: object, msg: string) => void;
}): DecisionsWorker {
  const log = options.log ?? (() => undefined);
  return startPollLoop(
    async () => {
      const { users, more, summary } = await options.decisions.reconcileChanged(50, (err, userId) => log({ err, userId }, 'decisions reconcile failed'));
      if (users > 0 && Object.values(summary).some((n) => n > 0)) log({ users, ...summary }, 'address book changes applied to pending requests');
      return more;
    },
    { intervalMs: options.pollIntervalMs ?? 1000, onError: (err) => log({ err }, 'decisions worker poll failed') },
  );
}
