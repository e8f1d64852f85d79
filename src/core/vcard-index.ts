/**
 * The vCard profile: what a card in a user's address book means to the
 * policy. Cards are stored exactly as clients wrote them; this module only
 * reads them into index entries (and writes the cards this server creates).
 *
 * vCard profile (twoway)
 * ----------------------
 * Accepted input: one vCard 3.0 (RFC 2426) or 4.0 (RFC 6350) per text,
 * CRLF or LF line endings, folded lines (a line starting with one space or
 * tab continues the previous one), property groups (`item1.EMAIL`), any
 * property case. Unknown properties are ignored and kept in the stored text.
 *
 * | property                    | index entry | value normalisation |
 * |-----------------------------|-------------|---------------------|
 * | `EMAIL`                     | `address`   | an RFC 5321 mailbox, lower-cased (core/address.ts); a `mailto:` prefix and any `?query` are removed |
 * | `X-TWOWAY-DOMAIN`           | `domain`    | a domain (an optional leading `@` is removed), lower-case ASCII (IDN as A-labels); covers the domain **and all its subdomains** |
 * | `X-TWOWAY-LIST`             | `list`      | a List-Id (RFC 2919): `dev.lists.example.org`, `<dev.lists.example.org>` or `Name <dev.lists.example.org>`, stored lower-case without angle brackets |
 * | `X-TWOWAY-BLOCKED:TRUE`     | (modifier)  | every entry of the card gets action `block`; without it (or with `FALSE`) they are `allow` |
 * | `X-TWOWAY-EXPECT`           | `expect`    | an expected sender (docs/protocol.md 10.2): the value is a domain as for X-TWOWAY-DOMAIN; parameters `PURPOSE` (required), `UNTIL` (required, UTC `YYYYMMDDThhmmssZ`), `USES` (optional, 0-9999; absent = unlimited until UNTIL); the entry carries them in `expect` |
 *
 * One value per property; repeat the property for more. `UID` and `FN` are
 * read for the caller (both optional here; a missing UID is the caller's to
 * assign).
 *
 * Errors: a card that is not a well-formed vCard throws VCardError naming
 * the line: missing BEGIN:VCARD / END:VCARD, a second card or a nested
 * BEGIN, a missing, repeated or unsupported VERSION (2.1 is refused), a line
 * without a ":" or with a bad property name or parameters, more than one UID,
 * more than MAX_PROPERTY_INSTANCES (1,000) instances of one property.
 * Our own X-TWOWAY-* properties are checked strictly too (a bad domain, list
 * id, or a BLOCKED value other than TRUE/FALSE): they exist only to state
 * policy, so a typo must be reported, and a BLOCKED value we cannot read
 * must never be taken as "not blocked". An unusable EMAIL value, by
 * contrast, is common in real address books and can never match a sender:
 * it is skipped and reported in `warnings` rather than failing the card.
 */
import { randomUUID } from 'node:crypto';
import ICAL from 'ical.js';
import { normaliseDomain, parseAddress } from './address.ts';
import { ReplyError } from './errors.ts';
import { normaliseListId } from './screener.ts';
import type { ContactEntry, ExpectTerms } from './types.ts';

/** A malformed vCard. `line` is the 1-based physical line where the problem starts, if there is one. */
export class VCardError extends Error {
  readonly line: number | null;
  readonly problem: string;

  constructor(line: number | null, problem: string) {
    super(line === null ? `Malformed vCard: ${problem}` : `Malformed vCard, line ${line}: ${problem}`);
    this.name = 'VCardError';
    this.line = line;
    this.problem = problem;
  }
}

export interface VCardWarning {
  line: number;
  message: string;
}

export interface ParsedContactCard {
  uid: string | null;
  fn: string | null;
  version: '3.0' | '4.0';
  /** Deduplicated, in card order. */
  entries: ContactEntry[];
  /** Values that were ignored (e.g. an EMAIL that is not a mail address). */
  warnings: VCardWarning[];
}

/**
 * Instances of one property in a card. An address book query compares every
 * instance with every test of its filter (protocols/carddav/filter.ts), so a
 * card with 30,000 EMAIL lines made one REPORT cost seconds; no real contact
 * comes near this, and a KIND:group card with a thousand MEMBERs still fits.
 */
export const MAX_PROPERTY_INSTANCES = 1000;

/** One unfolded content line and where it started. */
interface ContentLine {
  line: number;
  text: string;
  /** Lower-case property name without its group. */
  name: string;
  /** The value exactly as written (after unfolding), i.e. still escaped. */
  rawValue: string;
}

const NAME = /^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)/;
const excerpt = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** Splits into logical lines, undoing folding, keeping the physical line number of each start. */
function unfold(text: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r\n|\n|\r/)
    .forEach((raw, i) => {
      if (raw === '') return; // blank lines carry nothing; tolerated (trailing ones are common)
      const first = raw[0];
      if (first === ' ' || first === '\t') {
        const prev = out[out.length - 1];
        if (!prev) throw new VCardError(i + 1, 'continuation line (starting with a space) before any property');
        prev.text += raw.slice(1);
        return;
      }
      out.push({ line: i + 1, text: raw });
    });
  return out;
}

/** Index of the ":" that separates name and parameters from the value (colons in quoted parameter values don't count). */
function valueColon(text: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === ':' && !quoted) return i;
  }
  return -1;
}

function contentLine(l: { line: number; text: string }): ContentLine {
  const colon = valueColon(l.text);
  if (colon < 0) throw new VCardError(l.line, `line without a ":" between name and value: ${excerpt(l.text)}`);
  const m = NAME.exec(l.text);
  const after = m ? l.text[m[0].length] : undefined;
  if (!m || (after !== ':' && after !== ';')) {
    throw new VCardError(l.line, `invalid property name: ${excerpt(l.text)}`);
  }
  return { line: l.line, text: l.text, name: (m[1] as string).toLowerCase(), rawValue: l.text.slice(colon + 1) };
}

/** Checks the framing (exactly one BEGIN/END:VCARD pair, nothing nested or after) and returns the properties inside. */
function frame(text: string): { beginLine: number; props: ContentLine[] } {
  const lines = unfold(text);
  const first = lines[0];
  if (!first) throw new VCardError(null, 'empty input, expected BEGIN:VCARD');
  if (!/^BEGIN:VCARD[ \t]*$/i.test(first.text)) {
    throw new VCardError(first.line, `expected BEGIN:VCARD, found ${excerpt(first.text)}`);
  }
  const props: ContentLine[] = [];
  const counts = new Map<string, number>();
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i] as { line: number; text: string };
    if (/^END:VCARD[ \t]*$/i.test(l.text)) {
      const extra = lines[i + 1];
      if (extra) throw new VCardError(extra.line, 'content after END:VCARD (one vCard per resource)');
      return { beginLine: first.line, props };
    }
    const prop = contentLine(l);
    if (prop.name === 'begin' || prop.name === 'end') {
      throw new VCardError(l.line, `unexpected ${excerpt(l.text)} (nested or mismatched components are not supported)`);
    }
    const n = (counts.get(prop.name) ?? 0) + 1;
    if (n > MAX_PROPERTY_INSTANCES) {
      throw new VCardError(l.line, `more than ${MAX_PROPERTY_INSTANCES} ${prop.name.toUpperCase()} properties in one card`);
    }
    counts.set(prop.name, n);
    props.push(prop);
  }
  const last = lines[lines.length - 1] as { line: number };
  throw new VCardError(last.line, 'missing END:VCARD at the end of the card');
}

function versionOf(props: ContentLine[], beginLine: number): '3.0' | '4.0' {
  const versions = props.filter((p) => p.name === 'version');
  const v = versions[0];
  if (!v) throw new VCardError(beginLine, 'missing VERSION property (3.0 or 4.0)');
  const second = versions[1];
  if (second) throw new VCardError(second.line, 'more than one VERSION property');
  const value = v.rawValue.trim();
  if (value !== '3.0' && value !== '4.0') {
    throw new VCardError(v.line, `unsupported VERSION ${excerpt(value)} (3.0 and 4.0 are accepted)`);
  }
  return value;
}

/**
 * Runs one property line through ical.js, which checks its parameters
 * (quoting, RFC 6868 escapes) and value syntax for the card's version.
 * @throws VCardError with the line number when ical.js rejects it.
 */
function validate(prop: ContentLine, version: '3.0' | '4.0'): void {
  const designSet = version === '4.0' ? ICAL.design.vcard : ICAL.design.vcard3;
  try {
    ICAL.parse.property(prop.text, designSet);
  } catch (err) {
    throw new VCardError(prop.line, err instanceof Error ? err.message : String(err));
  }
}

/**
 * The value of a single-valued text property (UID, FN, EMAIL), unescaped in
 * one left-to-right pass. Not ical.js's value: it leaves `\;` escaped outside
 * compound values (RFC 6350 does not define it there), but vCard 3.0 requires
 * escaping `;` in all text and many vCard 4 writers keep doing it.
 */
function textValue(prop: ContentLine, version: '3.0' | '4.0'): string {
  validate(prop, version);
  return unescapeText(prop.rawValue);
}

/** Inverse of escapeText; an unknown escape keeps its backslash. */
export function unescapeText(value: string): string {
  return value.replace(/\\([\\,;nN])/g, (_, c: string) => (c === 'n' || c === 'N' ? '\n' : c));
}

/** Parses one card into the policy's index entries. @throws VCardError */
export function parseContactCard(text: string): ParsedContactCard {
  const { beginLine, props } = frame(text);
  const version = versionOf(props, beginLine);

  let uid: string | null = null;
  let fn: string | null = null;
  let blocked = false;
  const found: Array<Omit<ContactEntry, 'action'>> = [];
  const warnings: VCardWarning[] = [];
  let uidLine: number | null = null;
  let expectLine: number | null = null;
  let blockedLine: number | null = null;

  for (const prop of props) {
    switch (prop.name) {
      case 'uid': {
        if (uidLine !== null) throw new VCardError(prop.line, `more than one UID (first on line ${uidLine})`);
        uidLine = prop.line;
        uid = textValue(prop, version).trim() || null;
        break;
      }
      case 'fn':
        fn ??= textValue(prop, version).trim() || null;
        break;
      case 'email': {
        const address = emailAddress(textValue(prop, version));
        if (address) found.push({ kind: 'address', value: address });
        else warnings.push({ line: prop.line, message: `EMAIL ${excerpt(prop.rawValue)} is not a mail address; ignored` });
        break;
      }
      case 'x-twoway-domain':
        found.push({ kind: 'domain', value: profileDomain(prop) });
        break;
      case 'x-twoway-list': {
        const list = normaliseListId(prop.rawValue);
        if (!list) throw new VCardError(prop.line, `X-TWOWAY-LIST ${excerpt(prop.rawValue)} is not a List-Id such as dev.lists.example.org`);
        found.push({ kind: 'list', value: list });
        break;
      }
      case 'x-twoway-expect': {
        validate(prop, version);
        const { domain, terms } = expectProperty(prop);
        expectLine ??= prop.line;
        found.push({ kind: 'expect', value: domain, expect: terms });
        break;
      }
      case 'x-twoway-blocked': {
        blockedLine ??= prop.line;
        const flag = prop.rawValue.trim().toUpperCase();
        if (flag !== 'TRUE' && flag !== 'FALSE') {
          throw new VCardError(prop.line, `X-TWOWAY-BLOCKED must be TRUE or FALSE, found ${excerpt(prop.rawValue)}`);
        }
        blocked ||= flag === 'TRUE';
        break;
      }
      default:
        // Still run every property through ical.js, so malformed parameters
        // anywhere in the card are reported now rather than by a client later.
        validate(prop, version);
    }
  }

  if (blocked && expectLine !== null) {
    throw new VCardError(expectLine, `X-TWOWAY-EXPECT on a card with X-TWOWAY-BLOCKED:TRUE (line ${blockedLine})`);
  }
  const action: ContactEntry['action'] = blocked ? 'block' : 'allow';
  const seen = new Set<string>();
  const entries: ContactEntry[] = [];
  for (const e of found) {
    const terms = e.expect ? `\u0000${e.expect.purpose}\u0000${e.expect.until.getTime()}\u0000${e.expect.uses}` : '';
    const key = `${e.kind}\u0000${e.value}${terms}`;
    if (seen.has(key)) continue;
    seen.add(key);
    entries.push({ ...e, action });
  }
  return { uid, fn, version, entries, warnings };
}

/** The address in an EMAIL value, or null if there is none. */
function emailAddress(value: string): string | null {
  let v = value.trim();
  if (/^mailto:/i.test(v)) {
    v = v.slice('mailto:'.length).split('?')[0] ?? '';
    try {
      v = decodeURIComponent(v);
    } catch {
      return null;
    }
  }
  try {
    return parseAddress(v).address;
  } catch {
    return null;
  }
}

function profileDomain(prop: ContentLine, property = 'X-TWOWAY-DOMAIN'): string {
  const raw = prop.rawValue.trim().replace(/^@/, '');
  try {
    return normaliseDomain(raw);
  } catch (err) {
    const why = err instanceof ReplyError ? err.text : String(err);
    throw new VCardError(prop.line, `${property}: ${why}`);
  }
}

/** The parameters of a content line, names lower-cased, values without surrounding quotes. */
function parameters(prop: ContentLine): Array<{ name: string; value: string }> {
  const head = prop.text.slice(0, valueColon(prop.text));
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const c of head) {
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts.slice(1).map((p) => {
    const eq = p.indexOf('=');
    const name = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : p.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    return { name, value };
  });
}

const PURPOSE_TOKEN = /^[A-Za-z][A-Za-z0-9-]{0,62}$/;
const UNTIL_TS = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** Parses an RFC 6350 UTC timestamp `YYYYMMDDThhmmssZ`; null when invalid (including impossible dates). */
export function parseUtcTimestamp(value: string): Date | null {
  const m = utcParts(value);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m;
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (
    date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d ||
    date.getUTCHours() !== h || date.getUTCMinutes() !== mi || date.getUTCSeconds() !== s
  ) {
    return null;
  }
  return date;
}

function utcParts(value: string): [number, number, number, number, number, number] | null {
  const m = UNTIL_TS.exec(value);
  if (!m) return null;
  return [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
}

/** Formats a Date as an RFC 6350 UTC timestamp (seconds precision, truncated). */
export function formatUtcTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** X-TWOWAY-EXPECT (docs/protocol.md 10.2). @throws VCardError naming the line */
function expectProperty(prop: ContentLine): { domain: string; terms: ExpectTerms } {
  const bad = (problem: string): never => {
    throw new VCardError(prop.line, `X-TWOWAY-EXPECT: ${problem}`);
  };
  const once = new Map<string, string>();
  for (const p of parameters(prop)) {
    if (p.name !== 'purpose' && p.name !== 'until' && p.name !== 'uses') continue; // other params are ignored
    if (once.has(p.name)) bad(`more than one ${p.name.toUpperCase()} parameter`);
    once.set(p.name, p.value);
  }
  const purpose = once.get('purpose');
  if (purpose === undefined) bad('missing PURPOSE parameter (e.g. PURPOSE=ownership-confirmation)');
  if (!PURPOSE_TOKEN.test(purpose!)) bad(`PURPOSE ${excerpt(purpose!)} is not a purpose token`);
  const untilText = once.get('until');
  if (untilText === undefined) bad('missing UNTIL parameter (a UTC timestamp such as 20261202T100000Z)');
  const until = parseUtcTimestamp(untilText!);
  if (!until) bad(`UNTIL ${excerpt(untilText!)} is not a UTC timestamp such as 20261202T100000Z`);
  const usesText = once.get('uses');
  let uses: number | null = null;
  if (usesText !== undefined) {
    if (!/^\d{1,4}$/.test(usesText)) bad(`USES ${excerpt(usesText)} is not a number from 0 to 9999`);
    uses = Number(usesText);
  }
  return { domain: profileDomain(prop, 'X-TWOWAY-EXPECT'), terms: { purpose: purpose!.toLowerCase(), until: until!, uses } };
}

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
 * (delete it), and `changed: false` when there was nothing to do.
 * @throws VCardError if the card does not parse.
 */
export function rewriteExpectCard(
  text: string,
  options: { now: Date; consume?: { domain: string; terms: ExpectTerms } },
): { text: string | null; changed: boolean } {
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
    if (!prop || prop.name !== 'x-twoway-expect') {
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
  if (!changed) return { text, changed: false };
  if (names.every((n) => CARD_SHELL.has(n))) return { text: null, changed: true };
  return { text: kept.map((ls) => ls.join(eol)).join(eol), changed: true };
}

function sameTerms(a: ExpectTerms, b: ExpectTerms): boolean {
  return a.purpose === b.purpose && a.until.getTime() === b.until.getTime() && a.uses === b.uses;
}

// ---------------------------------------------------------------- writing

export interface ExpectCardInput {
  uid: string;
  domain: string;
  purpose: string;
  until: Date;
  /** Uses allowed; null or undefined: unlimited until `until`. */
  uses?: number | null;
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
  const params = [`PURPOSE=${input.purpose.toLowerCase()}`, `UNTIL=${formatUtcTimestamp(input.until)}`, ...(uses === null ? [] : [`USES=${uses}`])];
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
