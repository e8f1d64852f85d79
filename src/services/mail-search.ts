/**
 * The web app's mail search: IMAP's `SEARCH TEXT` (the subject, every
 * header and the text of every part, decoded), evaluated by the same code
 * the IMAP server uses (core/mail-search.ts), over the same stored octets
 * and structures (store.imap, as the IMAP hooks read them). So a word that
 * appears only in a body is found from the browser as from a mail client.
 *
 * A search reads bodies, so its work is bounded per request: at most
 * SCAN_LIMIT messages, newest first, in batches of BATCH (each batch one
 * read of octets and one of structures, the event loop free in between).
 * When the limit is reached before a page is full, the answer says where to
 * continue (`continueBefore`, a UID), and the page offers to search older
 * messages: key paging, as the unfiltered list does.
 */
import { evaluate, type Criterion } from '../core/mail-search.ts';
import type { MailboxName, MessageSummary } from '../core/types.ts';
import type { Store } from '../store/types.ts';

export const BATCH = 200;
export const SCAN_LIMIT = 2000;

export interface SearchPage {
  /** At most `limit` matches, newest first. */
  hits: MessageSummary[];
  /** Where to search on (only UIDs below it), or null when every older message was searched. */
  continueBefore: number | null;
  /** How many messages this request searched. */
  scanned: number;
}

export function createMailSearch(store: Pick<Store, 'messages' | 'imap'>) {
  return {
    /** Messages of `mailbox` whose headers or text contain `text` (case-insensitive, IMAP TEXT), newest first, below `beforeUid`. */
    async text(userId: number, mailbox: MailboxName, text: string, options: { beforeUid?: number | undefined; limit: number }): Promise<SearchPage> {
      const criterion: Criterion = { k: 'body', value: text, headersToo: true };
      const hits: MessageSummary[] = [];
      let before = options.beforeUid;
      let scanned = 0;
      while (scanned < SCAN_LIMIT) {
        const batch = await store.messages.list(userId, { mailbox, limit: Math.min(BATCH, SCAN_LIMIT - scanned), ...(before !== undefined ? { beforeUid: before } : { newestFirst: true }) });
        if (batch.length === 0) return { hits, continueBefore: null, scanned };
        const ids = batch.map((m) => m.id);
        const [raws, structures] = await Promise.all([store.imap.bodies(userId, ids), store.imap.structures(userId, ids)]);
        for (const m of batch) {
          scanned++;
          const raw = raws.get(m.id);
          const structure = structures.get(m.id);
          // Only the message's data counts for TEXT; the rest is what IMAP's SearchMessage carries.
          const meta = { id: m.id, uid: m.uid, seq: 0, flags: m.flags, size: m.size, modseq: 0, internalDate: m.receivedAt };
          if (raw && structure && evaluate(criterion, meta, { raw, structure })) hits.push(m);
          if (hits.length === options.limit) return { hits, continueBefore: m.uid, scanned };
        }
        before = batch[batch.length - 1]!.uid;
        if (batch.length < BATCH) return { hits, continueBefore: null, scanned };
      }
      return { hits, continueBefore: before ?? null, scanned };
    },
  };
}

export type MailSearch = ReturnType<typeof createMailSearch>;
