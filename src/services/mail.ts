/** Reading a user's mail: mailboxes, listings, one message. */
import { invalid, notFound } from '../core/errors.ts';
import { MAILBOXES, type MailboxName, type MessageSummary } from '../core/types.ts';
import type { Store } from '../store/types.ts';

export interface MessageView extends Omit<MessageSummary, 'receivedAt' | 'userId'> {
  receivedAt: string;
}

export const messageView = ({ userId: _u, receivedAt, ...rest }: MessageSummary): MessageView => ({
  ...rest,
  receivedAt: receivedAt.toISOString(),
});

export function parseMailbox(name: string): MailboxName {
  const found = MAILBOXES.find((m) => m.toLowerCase() === name.toLowerCase());
  if (!found) throw invalid(`Unknown mailbox "${name}": expected one of ${MAILBOXES.join(', ')}`);
  return found;
}

export function createMail(store: Pick<Store, 'messages'>, options: { learn?: boolean } = {}) {
  async function get(userId: number, id: number) {
    const msg = Number.isSafeInteger(id) && id > 0 ? await store.messages.get(userId, id) : undefined;
    // The same answer for "not yours" and "does not exist": ids do not leak across users.
    if (!msg) throw notFound(`No message ${id}`);
    return msg;
  }
  return {
    /**
     * Moves messages to a mailbox; returns how many moved. With `learn`, a
     * move into Junk teaches the spam filter spam and a move out of it ham
     * (not into Trash), queued in the same transaction.
     */
    async move(userId: number, ids: number[], to: MailboxName): Promise<number> {
      for (const id of ids) if (!Number.isSafeInteger(id) || id <= 0) throw invalid(`Bad message id ${id}`);
      const moved = await store.messages.move(userId, ids, to, options.learn ? 'auto' : undefined);
      if (moved === 0 && ids.length > 0) {
        // Nothing moved: every message is already there, or none is this user's.
        for (const id of ids) if (!(await store.messages.get(userId, id))) throw notFound(`No message ${id}`);
      }
      return moved;
    },
    mailboxes: (userId: number) => store.messages.mailboxes(userId),
    list: (userId: number, mailbox?: MailboxName, page?: { limit?: number; offset?: number }) =>
      store.messages.list(userId, { ...(mailbox ? { mailbox } : {}), ...page }),
    /**
     * One page of a mailbox, newest first, key-paged by UID (`beforeUid`
     * from the previous page's last message), optionally only messages whose
     * subject or From: contains `text`. Returns one more than `limit` so the
     * caller knows whether an older page exists.
     */
    page: (userId: number, mailbox: MailboxName, options: { beforeUid?: number; text?: string; limit: number }) =>
      store.messages.list(userId, {
        mailbox,
        limit: options.limit + 1,
        ...(options.beforeUid !== undefined ? { beforeUid: options.beforeUid } : { newestFirst: true }),
        ...(options.text ? { text: options.text.slice(0, 200) } : {}),
      }),
    /** Adds or removes one flag (as IMAP STORE +FLAGS/-FLAGS does). */
    async setFlag(userId: number, id: number, flag: string, on: boolean): Promise<void> {
      const msg = await get(userId, id);
      const rest = msg.flags.filter((f) => f.toLowerCase() !== flag.toLowerCase());
      await store.messages.setFlags(userId, id, on ? [...rest, flag] : rest);
    },
    /** Delete as a mail client does: into Trash; from Trash, gone for good. Returns where it went. */
    async delete(userId: number, id: number): Promise<'Trash' | 'removed'> {
      const msg = await get(userId, id);
      if (msg.mailbox === 'Trash') {
        await store.messages.remove(userId, [id]);
        return 'removed';
      }
      await store.messages.move(userId, [id], 'Trash');
      return 'Trash';
    },
    get,
  };
}

export type Mail = ReturnType<typeof createMail>;
