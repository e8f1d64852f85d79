/**
 * What became of the mail a user sent, per recipient, whichever way it went
 * (docs/protocol.md 7.5): the queue's state for SMTP and local delivery, the
 * Two-Way Mail state once a notice was made (notified, pending, delivered,
 * declined, expired, ...). `twoway sent` and `GET /api/sent` show this.
 */
import { notFound } from '../core/errors.ts';
import type { QueueEntry, User } from '../core/types.ts';
import type { TwmOutState } from '../core/twm-types.ts';
import type { Store, TwmOutNotice, TwmOutRecipient } from '../store/types.ts';
import { owns } from './outbound.ts';

/** What the sending user sees per TWM recipient (7.2's "user-visible status"). */
export const VISIBLE_STATUS: Record<TwmOutState, string> = {
  queued: 'queued',
  accepted: 'notified',
  pending: 'pending',
  fetched: 'notified',
  delivered: 'delivered',
  declined: 'declined',
  failed: 'failed',
  expired: 'expired',
  unconfirmed: 'fetched, not confirmed',
};

export interface SentRecipientView {
  recipient: string;
  via: 'queue' | 'twm';
  status: string;
  /** The failure reason or last reply. */
  detail: string | null;
  /** The TWM notice id, for TWM recipients. */
  noticeId: string | null;
  updatedAt: string | null;
}

export interface SentMessageView {
  messageId: string;
  subject: string | null;
  createdAt: string;
  recipients: SentRecipientView[];
}

function queueView(e: QueueEntry): SentRecipientView {
  const s = e.status;
  const status = s.state === 'scheduled' || s.state === 'deferred' ? 'queued' : s.state;
  const detail = s.state === 'deferred' || s.state === 'failed' ? s.lastError : s.state === 'delivered' ? s.reply : null;
  const updatedAt = s.state === 'delivered' ? s.deliveredAt : s.state === 'failed' ? s.failedAt : null;
  return { recipient: e.recipient, via: 'queue', status, detail, noticeId: null, updatedAt: updatedAt?.toISOString() ?? null };
}

function twmView(n: TwmOutNotice, r: TwmOutRecipient): SentRecipientView {
  return { recipient: r.recipient, via: 'twm', status: VISIBLE_STATUS[r.state], detail: r.reason, noticeId: n.id, updatedAt: r.updatedAt.toISOString() };
}

export function createSent(store: Pick<Store, 'queue' | 'twmOut'>) {
  async function list(user: User, options: { messageId?: string; limit?: number } = {}): Promise<SentMessageView[]> {
    const limit = options.limit ?? 100;
    const entries = (await store.queue.list()).filter((e) => owns(user, e.sender) && (!options.messageId || e.messageId === options.messageId));
    // Subaddressed envelopes too (a list's bounce address), but only what this user owns.
    const notices = (await store.twmOut.listBySender(user.address, { limit: limit * 10, ...(options.messageId ? { messageId: options.messageId } : {}) })).filter((n) =>
      owns(user, n.sender),
    );
    const messages = new Map<string, SentMessageView & { byRcpt: Map<string, SentRecipientView> }>();
    const entry = (messageId: string, createdAt: Date) => {
      let m = messages.get(messageId);
      if (!m) {
        m = { messageId, subject: null, createdAt: createdAt.toISOString(), recipients: [], byRcpt: new Map() };
        messages.set(messageId, m);
      }
      return m;
    };
    for (const e of entries) entry(e.messageId, e.createdAt).byRcpt.set(e.recipient.toLowerCase(), queueView(e));
    // A TWM recipient's queue entry only says "notice answered"; its TWM state says the rest.
    for (const n of notices) {
      const m = entry(n.messageId, n.createdAt);
      m.subject ??= n.subject;
      for (const r of n.recipients) m.byRcpt.set(r.recipient, twmView(n, r));
    }
    return [...messages.values()]
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, limit)
      .map(({ byRcpt, ...m }) => ({ ...m, recipients: [...byRcpt.values()] }));
  }

  return {
    list,
    async status(user: User, messageId: string): Promise<SentMessageView> {
      const [found] = await list(user, { messageId, limit: 1 });
      // Another user's message looks like one that does not exist.
      if (!found) throw notFound(`No sent message ${messageId}`);
      return found;
    },
  };
}

export type Sent = ReturnType<typeof createSent>;
