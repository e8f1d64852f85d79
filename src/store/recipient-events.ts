/**
 * The history of sent mail per recipient (migration 0020): every state a
 * queue recipient or a Two-Way Mail recipient enters is recorded in
 * `recipient_events` by the one function of each repository that changes
 * it, in the same transaction (queue-repository.ts insertQueued and
 * updateState, with queue-prepared.ts insertQueueEvents;
 * twm-outbound-repository.ts create and transition). Read back here, for
 * services/sent.ts and the Sent page's timeline.
 */
import type { RecipientEvent } from './types.ts';
import { chunks, toDate, unique, type Db } from './db-util.ts';

// Ids per read: well under both databases' bound-parameter limits.
const PER_STATEMENT = 1000;

const toEvent = (r: { state: string; detail: string | null; at: number | string | bigint }): RecipientEvent => ({ state: r.state, detail: r.detail, at: toDate(r.at) });

/** The events of these queue recipients, oldest first, by recipient id. */
export async function queueEvents(s: Db, ids: readonly number[]): Promise<Map<number, RecipientEvent[]>> {
  const out = new Map<number, RecipientEvent[]>();
  for (const part of chunks(unique(ids), PER_STATEMENT)) {
    const rows = await s.db
      .selectFrom('recipient_events')
      .select(['queue_recipient_id', 'state', 'detail', 'at'])
      .where('queue_recipient_id', 'in', part)
      .orderBy('queue_recipient_id')
      .orderBy('id')
      .execute();
    for (const r of rows) {
      const id = r.queue_recipient_id!;
      out.set(id, [...(out.get(id) ?? []), toEvent(r)]);
    }
  }
  return out;
}

/** The events of the recipients of these TWM notices, oldest first, keyed `noticeId\nrecipient`. */
export async function twmEvents(s: Db, noticeIds: readonly string[]): Promise<Map<string, RecipientEvent[]>> {
  const out = new Map<string, RecipientEvent[]>();
  for (const part of chunks(unique(noticeIds), PER_STATEMENT)) {
    const rows = await s.db
      .selectFrom('recipient_events')
      .select(['twm_notice_id', 'recipient', 'state', 'detail', 'at'])
      .where('twm_notice_id', 'in', part)
      .orderBy('twm_notice_id')
      .orderBy('recipient')
      .orderBy('id')
      .execute();
    for (const r of rows) {
      const key = `${r.twm_notice_id}\n${r.recipient}`;
      out.set(key, [...(out.get(key) ?? []), toEvent(r)]);
    }
  }
  return out;
}
