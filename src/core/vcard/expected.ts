/**
 * Expected senders (docs/protocol.md 10.2, 10.3): whether an X-TWOWAY-EXPECT
 * entry is live, the server's rewrite of a card's X-TWOWAY-EXPECT properties
 * (expired and used-up ones removed, one use consumed), and the card the
 * server writes for a new expected sender.
 */
import { normaliseDomain } from '../address.ts';
import type { ExpectTerms } from '../types.ts';
import { expectProperty, parseContactCard, PURPOSE_TOKEN } from './index-entries.ts';
import { contentLine, NAME, valueColon } from './parse.ts';
import { escapeText, foldLine, formatUtcTimestamp } from './write.ts';

/** An expected-sender entry is live: not expired, uses left. */
export function expectLive(terms: ExpectTerms, now: Date): boolean {
  return terms.until.getTime() > now.getTime() && (terms.uses === null || terms.uses > 0);
}

/** Properties that alone do not justify keeping a card the server rewrote (docs/protocol.md 10.3). */
const CARD_SHELL = new Set(['version', 'uid', 'fn', 'n', 'prodid', 'rev', 'kind', 'note', 'categories', 'x-twoway-blocked']);

/**
 * The server's rewrite of a card's X-TWOWAY-EXPECT properties
 * (docs/protocol.md 10.3): removes every property that is expired at `now`
 * or used up (USES=0) and, when `consume` names one entry's terms, consumes
 * one use of the first property with exactly those terms (USES=n becomes
 * n-1; at 0 the property is removed; a property without USES is unchanged).
 * Only affected content lines change; the others are kept as written.
 *
 * Returns `text: null` when the card is left with nothing but its shell
 * (delete it), `changed: false` when there was nothing to do, and
 * `consumed: false` when `consume` matched no live property.
 * @throws VCardError if the card does not parse.
 */
export function rewriteExpectCard(
  text: string,
  options: { now: Date; consume?: { domain: string; terms: ExpectTerms } },
): { text: string | null; changed: boolean; consumed: boolean } {
  parseContactCard(text); // refuse to rewrite what we cannot read
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const physical = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  // Group physical lines into logical ones.
  const logical: Array<{ line: number; lines: string[] }> = [];
  physical.forEach((raw, i) => {
    const last = logical[logical.length - 1];
    if ((raw.startsWith(' ') || raw.startsWith('\t')) && last) last.lines.push(raw);
    else logical.push({ line: i + 1, lines: [raw] });
  });
  let consumed = options.consume === undefined;
  let changed = false;
  const kept: string[][] = [];
  const names: string[] = [];
  for (const l of logical) {
    const joined = l.lines.map((x, i) => (i === 0 ? x : x.slice(1))).join('');
    if (joined === '') {
      kept.push(l.lines);
      continue;
    }
    const prop = joined.includes(':') && NAME.test(joined) ? contentLine({ line: l.line, text: joined }) : null;
    if (prop?.name !== 'x-twoway-expect') {
      kept.push(l.lines);
      if (prop && prop.name !== 'begin' && prop.name !== 'end') names.push(prop.name);
      continue;
    }
    const { domain, terms } = expectProperty(prop);
    if (!expectLive(terms, options.now)) {
      changed = true;
      continue;
    }
    const c = options.consume;
    if (!consumed && c && c.domain === domain && sameTerms(c.terms, terms)) {
      consumed = true;
      if (terms.uses !== null) {
        changed = true;
        if (terms.uses - 1 <= 0) continue;
        const colon = valueColon(joined);
        const head = joined.slice(0, colon).replace(/(;USES=)"?\d{1,4}"?/i, `$1${terms.uses - 1}`);
        kept.push(foldLine(head + joined.slice(colon)).split('\r\n'));
        names.push(prop.name);
        continue;
      }
    }
    kept.push(l.lines);
    names.push(prop.name);
  }
  // `consumed`: a use was taken (or the entry has unlimited uses); false when `consume` named no live entry.
  if (!changed) return { text, changed: false, consumed };
  if (names.every((n) => CARD_SHELL.has(n))) return { text: null, changed: true, consumed };
  return { text: kept.map((ls) => ls.join(eol)).join(eol), changed: true, consumed };
}

function sameTerms(a: ExpectTerms, b: ExpectTerms): boolean {
  return a.purpose === b.purpose && a.until.getTime() === b.until.getTime() && a.uses === b.uses && a.from === b.from && a.requireMarker === b.requireMarker;
}

export interface ExpectCardInput {
  uid: string;
  domain: string;
  purpose: string;
  until: Date;
  /** Uses allowed; null or undefined: unlimited until `until`. */
  uses?: number | null;
  /** A sending domain the site declared (FROM parameter). */
  from?: string | null;
  /** Only a message with the TWM-Purpose marker matches (MARKER=REQUIRED). */
  requireMarker?: boolean;
}

/**
 * Writes an expected-sender card (docs/protocol.md 10.2 example): vCard 4.0,
 * `FN:<domain> (expected)`, one X-TWOWAY-EXPECT property.
 * @throws ReplyError 501 for a bad domain; RangeError for a bad purpose, uses or UID.
 */
export function buildExpectCard(input: ExpectCardInput): string {
  if (input.uid.trim() === '') throw new RangeError('A vCard UID must not be empty');
  const domain = normaliseDomain(input.domain.trim().replace(/^@/, ''));
  if (!PURPOSE_TOKEN.test(input.purpose)) throw new RangeError(`Bad purpose ${JSON.stringify(input.purpose)}`);
  const uses = input.uses ?? null;
  if (uses !== null && (!Number.isInteger(uses) || uses < 0 || uses > 9999)) {
    throw new RangeError(`USES must be an integer from 0 to 9999, got ${uses}`);
  }
  if (Number.isNaN(input.until.getTime())) throw new RangeError('Invalid expiry date');
  const from = input.from ? normaliseDomain(input.from.trim()) : null;
  const params = [
    `PURPOSE=${input.purpose.toLowerCase()}`,
    `UNTIL=${formatUtcTimestamp(input.until)}`,
    ...(uses === null ? [] : [`USES=${uses}`]),
    ...(from === null ? [] : [`FROM=${from}`]),
    ...(input.requireMarker ? ['MARKER=REQUIRED'] : []),
  ];
  const lines = [
    'BEGIN:VCARD',
    'VERSION:4.0',
    `UID:${escapeText(input.uid)}`,
    `FN:${escapeText(`${domain} (expected)`)}`,
    `X-TWOWAY-EXPECT;${params.join(';')}:${domain}`,
    'END:VCARD',
  ];
  return lines.map(foldLine).join('\r\n') + '\r\n';
}
