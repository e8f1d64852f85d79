/**
 * The vCard profile: what a card in a user's address book means to the
 * policy. Cards are stored exactly as clients wrote them; this module only
 * reads them into index entries. The text level is parse.ts; writing cards is
 * write.ts; the X-TWOWAY-EXPECT rewrite is expected.ts.
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
 * | `X-TWOWAY-EXPECT`           | `expect`    | an expected sender (docs/protocol.md 10.2): the value is a domain as for X-TWOWAY-DOMAIN; parameters `PURPOSE` (required), `UNTIL` (required, UTC `YYYYMMDDThhmmssZ`), `USES` (optional, 0-9999; absent = unlimited until UNTIL), `FROM` (optional: one declared sending domain, indexed as a second `expect` entry with `declaredFor`), `MARKER` (optional, `REQUIRED` or `OPTIONAL`, the default); the domains must not be public suffixes; the entry carries them in `expect` |
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
import { getDomain } from 'tldts';
import { normaliseDomain, parseAddress } from '../address.ts';
import { ReplyError } from '../errors.ts';
import { normaliseListId } from '../screener-keys.ts';
import type { ContactEntry, ExpectTerms } from '../types.ts';
import { excerpt, frame, parameters, parseUtcTimestamp, textValue, validate, versionOf, VCardError, type ContentLine, type VCardWarning } from './parse.ts';

export interface ParsedContactCard {
  uid: string | null;
  fn: string | null;
  version: '3.0' | '4.0';
  /** Deduplicated, in card order. */
  entries: ContactEntry[];
  /** Values that were ignored (e.g. an EMAIL that is not a mail address). */
  warnings: VCardWarning[];
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
        // The declared sending domain is looked up like the property's own domain.
        if (terms.from !== null && terms.from !== domain) found.push({ kind: 'expect', value: terms.from, expect: terms, declaredFor: domain });
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
    const x = e.expect;
    const terms = x ? `\u0000${x.purpose}\u0000${x.until.getTime()}\u0000${x.uses}\u0000${x.from}\u0000${x.requireMarker}\u0000${e.declaredFor}` : '';
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

export const PURPOSE_TOKEN = /^[A-Za-z][A-Za-z0-9-]{0,62}$/;

/** X-TWOWAY-EXPECT (docs/protocol.md 10.2). @throws VCardError naming the line */
export function expectProperty(prop: ContentLine): { domain: string; terms: ExpectTerms } {
  const bad = (problem: string): never => {
    throw new VCardError(prop.line, `X-TWOWAY-EXPECT: ${problem}`);
  };
  const once = new Map<string, string>();
  for (const p of parameters(prop)) {
    if (!EXPECT_PARAMS.has(p.name)) continue; // other params are ignored
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
  const marker = once.get('marker');
  if (marker !== undefined && !/^(required|optional)$/i.test(marker)) bad(`MARKER ${excerpt(marker)} is not REQUIRED or OPTIONAL`);
  const domain = registrable(profileDomain(prop, 'X-TWOWAY-EXPECT'), 'the domain', bad);
  const fromText = once.get('from');
  let from: string | null = null;
  if (fromText !== undefined) {
    // One domain, nothing else: a site must not make the entry admit a list of senders.
    if (!/^[A-Za-z0-9.-]{1,253}$/.test(fromText)) bad(`FROM ${excerpt(fromText)} is not one domain name`);
    try {
      from = normaliseDomain(fromText);
    } catch (err) {
      bad(`FROM: ${err instanceof ReplyError ? err.text : String(err)}`);
    }
    from = registrable(from!, 'FROM', bad);
  }
  const terms: ExpectTerms = { purpose: purpose!.toLowerCase(), until: until!, uses, from, requireMarker: marker?.toLowerCase() === 'required' };
  return { domain, terms };
}

const EXPECT_PARAMS = new Set(['purpose', 'until', 'uses', 'from', 'marker']);

/**
 * An expected domain must be a registrable domain or under one (Public
 * Suffix List, private suffixes included): an entry for `co.uk` or
 * `github.io` would admit mail from anyone who registers a name there.
 */
function registrable(domain: string, what: string, bad: (problem: string) => never): string {
  const base = getDomain(domain, { allowPrivateDomains: true });
  if (base === null) bad(`${what} ${excerpt(domain)} is a public suffix or has no registrable domain`);
  return domain;
}
