/**
 * Writing the cards this server creates (vCard 4.0 in this profile): CRLF
 * line endings, RFC 6350 text escaping, lines folded at 75 octets.
 */
import { randomUUID } from 'node:crypto';
import { normaliseDomain, parseAddress } from '../address.ts';
import { ReplyError } from '../errors.ts';
import { normaliseListId } from '../screener-keys.ts';

/** Formats a Date as an RFC 6350 UTC timestamp (seconds precision, truncated). */
export function formatUtcTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

export interface ContactCardInput {
  uid: string;
  /** Display name; defaults to the first email, @domain, list id, or the UID. */
  fn?: string;
  emails?: string[];
  domains?: string[];
  lists?: string[];
  blocked?: boolean;
}

/** A new card UID: a random UUID (plain, not `urn:uuid:`, so it also serves as a resource name). */
export function newUid(): string {
  return randomUUID();
}

/**
 * Writes a vCard 4.0 card in this profile: CRLF line endings, text values
 * escaped, lines folded at 75 octets. Values are normalised first, so the card
 * parses back to exactly the given entries.
 * @throws ReplyError 501 for an invalid address, domain or list id; RangeError for an empty UID.
 */
export function buildContactCard(input: ContactCardInput): string {
  if (input.uid.trim() === '') throw new RangeError('A vCard UID must not be empty');
  const emails = (input.emails ?? []).map((e) => parseAddress(e).address);
  const domains = (input.domains ?? []).map((d) => normaliseDomain(d.replace(/^@/, '')));
  const lists = (input.lists ?? []).map((l) => {
    const id = normaliseListId(l);
    if (!id) throw new ReplyError(501, '5.5.4', `Bad List-Id syntax: ${JSON.stringify(l)}`);
    return id;
  });
  const fn =
    input.fn?.trim() || emails[0] || (domains[0] && `@${domains[0]}`) || lists[0] || input.uid;

  const lines = [
    'BEGIN:VCARD',
    'VERSION:4.0',
    `UID:${escapeText(input.uid)}`,
    `FN:${escapeText(fn)}`,
    ...emails.map((e) => `EMAIL:${escapeText(e)}`),
    // Domains and list ids cannot contain characters that need escaping.
    ...domains.map((d) => `X-TWOWAY-DOMAIN:${d}`),
    ...lists.map((l) => `X-TWOWAY-LIST:${l}`),
    ...(input.blocked ? ['X-TWOWAY-BLOCKED:TRUE'] : []),
    'END:VCARD',
  ];
  return lines.map(foldLine).join('\r\n') + '\r\n';
}

/**
 * RFC 6350 3.4 text escaping: backslash, comma and line breaks always; `;`
 * only inside a component of a compound value (`compound: true`), because the
 * vCard 4 ABNF (TEXT-CHAR) allows a bare `;` and no `\;` in other text
 * values, and ical.js-based clients (Thunderbird) would show the backslash.
 * Other control characters cannot be represented in a vCard and are removed.
 */
export function escapeText(value: string, options: { compound?: boolean } = {}): string {
  const special = options.compound ? /[\\,;]/g : /[\\,]/g;
  return value
    .replace(special, (c) => `\\${c}`)
    .replace(/\r\n|\r|\n/g, '\\n')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '');
}

const FOLD_OCTETS = 75;
const encoder = new TextEncoder();

/**
 * Folds a content line so no physical line exceeds 75 octets (RFC 6350
 * 3.2); continuation lines start with a space. Never splits a UTF-8
 * sequence (iterates by code point).
 */
export function foldLine(line: string): string {
  const parts: string[] = [];
  let current = '';
  let used = 0;
  for (const ch of line) {
    const size = encoder.encode(ch).length;
    if (used + size > FOLD_OCTETS) {
      parts.push(current);
      current = ' ';
      used = 1;
    }
    current += ch;
    used += size;
  }
  parts.push(current);
  return parts.join('\r\n');
}

/**
 * The card with its X-TWOWAY-BLOCKED property set (`X-TWOWAY-BLOCKED:TRUE`
 * before END:VCARD) or removed: every other content line is kept byte for
 * byte, folded continuation lines included, so a client's card keeps its
 * own properties when a user blocks it in the web app.
 */
export function setBlocked(text: string, blocked: boolean): string {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const physical = text.split(/\r\n|\n|\r/);
  const out: string[] = [];
  let dropping = false;
  for (const line of physical) {
    if (dropping && (line.startsWith(' ') || line.startsWith('\t'))) continue;
    dropping = /^(?:[A-Za-z0-9-]+\.)?X-TWOWAY-BLOCKED[;:]/i.test(line);
    if (dropping) continue;
    if (blocked && /^END:VCARD$/i.test(line.trim())) out.push('X-TWOWAY-BLOCKED:TRUE');
    out.push(line);
  }
  return out.join(eol);
}
