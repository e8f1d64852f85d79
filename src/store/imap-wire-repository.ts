/**
 * The stored IMAP wire text of ENVELOPE, BODYSTRUCTURE and BODY (migration
 * 0019, core/imap-wire.ts) for FETCH: one query per batch of ids that reads
 * only these columns, so the first FETCH of a folder copies strings.
 *
 * Rows without the text (stored before migration 0019, or a text with NUL)
 * are rendered from their structure here and, when they can be, written
 * back: each old message pays the rendering once, on its first FETCH.
 */
import { imapWireText, type ImapWireText } from '../core/imap-wire.ts';
import type { MessageStructure } from '../core/mime-structure.ts';
import { chunks, unique, type Db } from './db-util.ts';
import { wireColumns } from './message-batch.ts';

const IDS_PER_QUERY = 500;

/** `body` is read only `withBody` (FETCH BODY, rare); otherwise ''. */
export async function readWireText(
  s: Db,
  userId: number,
  ids: number[],
  withBody: boolean,
  structures: (userId: number, ids: number[]) => Promise<Map<number, MessageStructure>>,
): Promise<Map<number, ImapWireText>> {
  const out = new Map<number, ImapWireText>();
  const missing: number[] = [];
  for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
    const rows = await s.db
      .selectFrom('messages')
      .select(['id', 'imap_envelope', 'imap_bodystructure'])
      .$if(withBody, (q) => q.select('imap_body'))
      .where('user_id', '=', userId)
      .where('id', 'in', part)
      .execute();
    for (const r of rows) {
      const body = withBody ? (r as { imap_body?: string | null }).imap_body : '';
      if (r.imap_envelope === null || r.imap_bodystructure === null || body === null || body === undefined) missing.push(r.id);
      else out.set(r.id, { envelope: r.imap_envelope, bodyStructure: r.imap_bodystructure, body });
    }
  }
  if (missing.length > 0) {
    for (const [id, structure] of await structures(userId, missing)) {
      const w = imapWireText(structure);
      out.set(id, w);
      const columns = wireColumns(w);
      // A text PostgreSQL cannot hold stays null (rendered at each FETCH); the others are kept.
      if (columns.imap_envelope !== null || columns.imap_bodystructure !== null || columns.imap_body !== null) {
        await s.db.updateTable('messages').set(columns).where('id', '=', id).where('user_id', '=', userId).execute();
      }
    }
  }
  return out;
}
