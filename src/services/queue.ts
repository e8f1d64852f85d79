/**
 * The outbound queue as people see it: per-recipient state, retry now,
 * delete. Administrators see every entry (CLI); a user sees only the entries
 * of mail they sent (API), by passing `owner`.
 */
import { notFound } from '../core/errors.ts';
import type { QueueEntry, QueueState, User } from '../core/types.ts';
import type { Store } from '../store/types.ts';
import { owns } from './outbound.ts';

export interface QueueEntryView {
  id: number;
  messageId: string;
  sender: string;
  recipient: string;
  createdAt: string;
  state: QueueState['state'];
  attempts: number | null;
  nextAttemptAt: string | null;
  detail: string | null;
}

export function queueEntryView(e: QueueEntry): QueueEntryView {
  const s = e.status;
  return {
    id: e.id,
    messageId: e.messageId,
    sender: e.sender,
    recipient: e.recipient,
    createdAt: e.createdAt.toISOString(),
    state: s.state,
    attempts: s.state === 'deferred' ? s.attempts : null,
    nextAttemptAt: s.state === 'scheduled' || s.state === 'deferred' ? s.nextAttemptAt.toISOString() : null,
    detail: s.state === 'deferred' || s.state === 'failed' ? s.lastError : s.state === 'delivered' ? s.reply : null,
  };
}

export function createQueueAdmin(store: Pick<Store, 'queue'>, onChanged?: () => void) {
  async function find(id: number, owner?: User): Promise<QueueEntry> {
    const entry = await store.queue.get(id);
    // "Not yours" and "does not exist" look the same: ids do not leak across users.
    if (!entry || (owner && !owns(owner, entry.sender))) throw notFound(`No queue entry ${id}`);
    return entry;
  }

  /**
   * A user's entries, in queue order: read by their sender key (an index, not the whole queue:
   * store/sent-queries.ts), `owns` still the final say, as for the Sent view.
   */
  async function ownEntries(owner: User): Promise<QueueEntry[]> {
    const entries = await store.queue.listBySender(owner.address);
    return entries.filter((e) => owns(owner, e.sender)).sort((a, b) => a.id - b.id);
  }

  return {
    async list(options: { state?: QueueState['state']; owner?: User } = {}): Promise<QueueEntry[]> {
      if (!options.owner) return store.queue.list(options.state ? { state: options.state } : {});
      const state = options.state;
      return (await ownEntries(options.owner)).filter((e) => state === undefined || e.status.state === state);
    },

    /** Schedules a scheduled or deferred entry for now. Finished entries cannot be retried. */
    async retry(id: number, owner?: User): Promise<QueueEntry> {
      const entry = await find(id, owner);
      if (entry.status.state === 'delivered' || entry.status.state === 'failed') {
        throw notFound(`Queue entry ${id} is ${entry.status.state}; there is nothing to retry`);
      }
      // A deferred entry keeps its attempt count and warning: a manual retry does not restart the backoff or warn twice.
      const status: QueueState =
        entry.status.state === 'deferred' ? { ...entry.status, nextAttemptAt: new Date() } : { state: 'scheduled', nextAttemptAt: new Date() };
      await store.queue.update(id, status);
      onChanged?.();
      return { ...entry, status };
    },

    /**
     * Every scheduled and deferred entry due now (postqueue -f), or only the
     * owner's. Returns the entries it made due.
     */
    async flush(owner?: User): Promise<QueueEntry[]> {
      const entries = owner ? await ownEntries(owner) : await store.queue.list();
      const pending = entries.filter((e) => e.status.state === 'scheduled' || e.status.state === 'deferred');
      if (pending.length === 0) return [];
      const now = new Date();
      // Administrators flush everything in one statement; a user's flush names their entries.
      const ids = new Set(await store.queue.flush(now, owner ? pending.map((e) => e.id) : undefined));
      if (ids.size > 0) onChanged?.();
      return pending
        .filter((e) => ids.has(e.id))
        .map((e) => ({ ...e, status: { ...e.status, nextAttemptAt: now } as QueueState }));
    },

    async remove(id: number, owner?: User): Promise<void> {
      await find(id, owner);
      await store.queue.remove(id);
    },
  };
}

export type QueueAdmin = ReturnType<typeof createQueueAdmin>;
