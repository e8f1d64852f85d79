/**
 * Splits a .vcf file (any number of vCards, as address-book exports write
 * them) into one text per card, keeping each card's text exactly and the
 * line where it starts, so an import can report "card 3 (line 41): …".
 * Text outside BEGIN:VCARD … END:VCARD is reported, not silently dropped.
 */
export interface CardText {
  /** 1-based line of the BEGIN:VCARD. */
  line: number;
  text: string;
}

export interface SplitResult {
  cards: CardText[];
  /** Problems outside any card: stray lines, a card left open at the end. */
  problems: Array<{ line: number; problem: string }>;
}

export function splitVCards(file: string): SplitResult {
  const lines = file.split(/\r?\n/);
  const cards: CardText[] = [];
  const problems: SplitResult['problems'] = [];
  let start = -1;
  for (let i = 0; i < lines.length; i++) {
    const upper = lines[i]!.trim().toUpperCase();
    if (upper === 'BEGIN:VCARD') {
      if (start >= 0) problems.push({ line: start + 1, problem: 'card has no END:VCARD before the next BEGIN:VCARD' });
      start = i;
    } else if (upper === 'END:VCARD' && start >= 0) {
      cards.push({ line: start + 1, text: lines.slice(start, i + 1).join('\r\n') + '\r\n' });
      start = -1;
    } else if (start < 0 && upper !== '') {
      problems.push({ line: i + 1, problem: 'text outside a BEGIN:VCARD … END:VCARD block' });
    }
  }
  if (start >= 0) problems.push({ line: start + 1, problem: 'card has no END:VCARD' });
  return { cards, problems };
}
