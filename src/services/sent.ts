/**
 * What became of the mail a user sent, per recipient, whichever way it went
 * (docs/protocol.md 7.5): the queue's state for SMTP and local delivery, the
 * Two-Way Mail state once a notice was made (notified, pending, delivered,
 * declined, expired, ...). `twoway sent` and `GET /api/sent` show this.
 */
import { notFound } from '../core/errors.ts';
import type { QueueEntry, User } from '../core/types.ts';
import type { TwmOutState } from '../core/twm-types.ts';
import type { RecipientEvent, Store, TwmOutNotice, TwmOutRecipient } from '../store/types.ts';
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

/** One state a recipient entered (the timeline): the visible status, its error, reply or reason, and when. */
export interface SentEventView {
  status: string;
  detail: string | null;
  at: string;
}

export interface SentRecipientView {
  recipient: string;
  via: 'queue' | 'twm';
  status: string;
  /** The failure reason or last reply. */
  detail: string | null;
  /** The TWM notice id, for TWM recipients. */
  noticeId: string | null;
  updatedAt: string | null;
  /**
   * Every state it entered, oldest first (store recipient_events, migration
   * 0020). For a TWM recipient, the queue's deferrals of the notice too.
   * Mail sent before that migration has one event: the state it had then.
   */
  history: SentEventView[];
}

/** A TWM recipient's states in its history: as VISIBLE_STATUS, except that a fetch is a step of its own (not "notified" again). */
const TWM_HISTORY_STATUS: Record<TwmOutState, string> = { ...VISIBLE_STATUS, fetched: 'fetched', unconfirmed: 'unconfirmed' };

/** The queue's states as the sender sees them: scheduled is "queued", a deferral keeps its name. */
const QUEUE_STATUS: Record<string, string> = { scheduled: 'queued', deferred: 'deferred', delivered: 'delivered', failed: 'failed' };

const eventView =
  (names: Record<string, string>) =>
  (e: RecipientEvent): SentEventView => ({ status: names[e.state] ?? e.state, detail: e.detail, at: e.at.toISOString() });

export interface SentMessageView {
  messageId: string;
  subject: string | null;
  createdAt: string;
  recipients: SentRecipientView[];
}

function queueView(e: QueueEntry, history: RecipientEvent[]): SentRecipientView {
  const s = e.status;
  const status = s.state === 'scheduled' || s.state === 'deferred' ? 'queued' : s.state;
  const detail = s.state === 'deferred' || s.state === 'failed' ? s.lastError : s.state === 'delivered' ? s.reply : null;
  const updatedAt = s.state === 'delivered' ? s.deliveredAt : s.state === 'failed' ? s.failedAt : null;
  return {
    recipient: e.recipient,
    via: 'queue',
    status,
    detail,
    noticeId: null,
    updatedAt: updatedAt?.toISOString() ?? null,
    history: history.map(eventView(QUEUE_STATUS)),
  };
}

/** A TWM recipient: its TWM states, and the deferrals of the notice's delivery by the queue (a peer that did not answer). */
function twmView(n: TwmOutNotice, r: TwmOutRecipient, history: RecipientEvent[], queued: RecipientEvent[]): SentRecipientView {
  const deferrals = queued.filter((e) => e.state === 'deferred').map(eventView(QUEUE_STATUS));
  const events = [...history.map(eventView(TWM_HISTORY_STATUS)), ...deferrals].sort((a, b) => a.at.localeCompare(b.at));
  return { recipient: r.recipient, via: 'twm', status: VISIBLE_STATUS[r.state], detail: r.reason, noticeId: n.id, updatedAt: r.updatedAt.toISOString(), history: events };
}

type Notice = TwmOutNotice & { recipients: TwmOutRecipient[] };

/**
 * The user's queue entries and TWM notices for a page: the newest `limit` messages (or the one
 * asked for) of the user's sender key (keyRows), never another key's rows. owns() has the last
 * word: a key is shared by the accounts whose own addresses carry a `+tag` (`bob+a`, `bob+b`,
 * allowed while no `bob` exists), so a sibling's messages may take places on the page; then
 * more of the key is read, four times as much each time, until the page is full or the key has
 * no more. An account without a tag owns every row of its key: one read.
 */
async function ownRows(store: Pick<Store, 'queue' | 'twmOut'>, user: User, limit: number, messageId: string | undefined): Promise<{ entries: QueueEntry[]; notices: Notice[] }> {
  for (let ask = limit; ; ask *= 4) {
    const rows = await keyRows(store, user, ask, messageId);
    const own = { entries: rows.entries.filter((e) => owns(user, e.sender)), notices: rows.notices.filter((n) => owns(user, n.sender)) };
    const shown = new Set([...own.entries.map((e) => e.messageId), ...own.notices.map((n) => n.messageId)]);
    if (messageId !== undefined || !rows.more || shown.size >= limit) return own;
  }
}

/**
 * The key's newest `limit` messages on each side (or the one asked for), then each side's rows of
 * the messages the other side's page holds: a message's queue entries and notices may lie on
 * different pages (a domain's notice is made when its delivery starts, later than the message),
 * and a message shown must show all its recipients. `more`: a side filled its page, so the key
 * may hold older messages.
 */
async function keyRows(store: Pick<Store, 'queue' | 'twmOut'>, user: User, limit: number, messageId: string | undefined): Promise<{ entries: QueueEntry[]; notices: Notice[]; more: boolean }> {
  const only = messageId === undefined ? {} : { messageIds: [messageId] };
  const [entries, notices] = await Promise.all([
    store.queue.listBySender(user.address, { limit, ...only }),
    store.twmOut.listBySender(user.address, { limit, ...only }),
  ]);
  const queued = new Set(entries.map((e) => e.messageId));
  const noticed = new Set(notices.map((n) => n.messageId));
  const more = queued.size >= limit || noticed.size >= limit;
  // With one message asked for, both sides were asked for all of it.
  if (messageId !== undefined) return { entries, notices, more: false };
  const [moreEntries, moreNotices] = await Promise.all([
    store.queue.listBySender(user.address, { messageIds: [...noticed].filter((id) => !queued.has(id)) }),
    store.twmOut.listBySender(user.address, { messageIds: [...queued].filter((id) => !noticed.has(id)) }),
  ]);
  return { entries: [...entries, ...moreEntries], notices: [...notices, ...moreNotices], more };
}

export function createSent(store: Pick<Store, 'queue' | 'twmOut'>) {
  async function list(user: User, options: { messageId?: string; limit?: number } = {}): Promise<SentMessageView[]> {
    const limit = options.limit ?? 100;
    const { entries, notices } = await ownRows(store, user, limit, options.messageId);
    const messages = new Map<string, SentMessageView & { byRcpt: Map<string, SentRecipientView> }>();
    const entry = (messageId: string, createdAt: Date) => {
      let m = messages.get(messageId);
      if (!m) {
        m = { messageId, subject: null, createdAt: createdAt.toISOString(), recipients: [], byRcpt: new Map() };
        messages.set(messageId, m);
      }
      return m;
    };
    const [queueHistory, twmHistory] = await Promise.all([store.queue.history(entries.map((e) => e.id)), store.twmOut.history(notices.map((n) => n.id))]);
    const queueEntryOf = new Map(entries.map((e) => [`${e.messageId}\n${e.recipient.toLowerCase()}`, e.id]));
    for (const e of entries) entry(e.messageId, e.createdAt).byRcpt.set(e.recipient.toLowerCase(), queueView(e, queueHistory.get(e.id) ?? []));
    // A TWM recipient's queue entry only says "notice answered"; its TWM state says the rest.
    for (const n of notices) {
      const m = entry(n.messageId, n.createdAt);
      m.subject ??= n.subject;
      for (const r of n.recipients) {
        const queued = queueHistory.get(queueEntryOf.get(`${n.messageId}\n${r.recipient}`) ?? -1) ?? [];
        m.byRcpt.set(r.recipient, twmView(n, r, twmHistory.get(`${n.id}\n${r.recipient}`) ?? [], queued));
      }
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
