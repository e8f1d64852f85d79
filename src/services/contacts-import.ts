/** Importing a .vcf export into the default address book (`twoway contacts import`, the API). */
import { parseContactCard } from '../core/vcard/index-entries.ts';
import { VCardError } from '../core/vcard/parse.ts';
import { newUid } from '../core/vcard/write.ts';
import { splitVCards } from '../core/vcard-split.ts';
import type { Store } from '../store/types.ts';

/** The book `twoway contacts` and the API write to; CardDAV clients may create others. */
export const DEFAULT_BOOK = 'default';

export interface ImportSummary {
  imported: number;
  merged: number;
  rejected: Array<{ line: number; reason: string }>;
}

/**
 * Imports a .vcf export: every card is stored as written. A card whose UID
 * is already in the book replaces it (merged); a malformed card is
 * rejected with the reason and where it starts; nothing half-parsed is
 * stored. The caller reports the change.
 */
export async function importCards(
  store: Pick<Store, 'contacts'>,
  userId: number,
  file: string,
  onProgress?: (done: number, total: number) => void,
): Promise<ImportSummary> {
  const { cards, problems } = splitVCards(file);
  const summary: ImportSummary = { imported: 0, merged: 0, rejected: problems.map((p) => ({ line: p.line, reason: p.problem })) };
  for (const [i, card] of cards.entries()) {
    let parsed: ReturnType<typeof parseContactCard>;
    try {
      parsed = parseContactCard(card.text);
    } catch (err) {
      // VCardError lines count from the card's first line; report them in the file's numbering.
      const line = err instanceof VCardError && err.line !== null ? card.line + err.line - 1 : card.line;
      summary.rejected.push({ line, reason: err instanceof VCardError ? err.problem : String(err) });
      onProgress?.(i + 1, cards.length);
      continue;
    }
    const uid = parsed.uid ?? newUid();
    const existed = parsed.uid !== null && (await store.contacts.get(userId, DEFAULT_BOOK, uid)) !== undefined;
    await store.contacts.put(userId, { book: DEFAULT_BOOK, uid, vcard: card.text, entries: parsed.entries });
    if (existed) summary.merged++;
    else summary.imported++;
    onProgress?.(i + 1, cards.length);
  }
  summary.rejected.sort((a, b) => a.line - b.line);
  return summary;
}
