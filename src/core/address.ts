/**
 * Mail addresses and domains: syntax (RFC 5321 Mailbox, with RFC 6531
 * SMTPUTF8 local parts and IDN domains) and the normal form every other
 * layer compares.
 *
 * Normal form, and why:
 * - The domain is lower-case ASCII (IDNs as A-labels via WHATWG
 *   `domainToASCII`), so `Bücher.DE` and `xn--bcher-kva.de` are one key.
 *   A-labels, not U-labels, because they are what DNS (SPF, DKIM, DMARC,
 *   MX) is asked for, so the key compared by the policy is the name that
 *   was authenticated. One trailing dot (the DNS root, `x@blocked.test.`)
 *   is dropped: it names the same domain, and a key that kept it would
 *   miss the address book's entry for `blocked.test`. Every layer gets its
 *   domains from `parseAddress` or `normaliseDomain`, never by hand.
 * - The local part is NFC-normalised and lower-cased. RFC 5321 lets a host
 *   treat local parts case-sensitively, but in practice no deployed mail
 *   system hands `Alice@` and `alice@` to different people, and an allowlist
 *   that failed to match a contact written with different case would silently
 *   screen a friend. This server's own accounts are case-insensitive for the
 *   same reason. The cost is that two remote mailboxes differing only in case
 *   would share one allow/block decision, which we accept.
 * - A quoted local part whose content is a valid dot-atom is written without
 *   quotes (`"alice"@x` and `alice@x` are the same mailbox, RFC 5321 4.1.2),
 *   and unneeded backslash escapes are dropped; otherwise the quoted form is
 *   kept. Equal mailboxes therefore have equal keys.
 *
 * Pure: `node:url`'s domainToASCII is a string function, not I/O.
 */
import { domainToASCII } from 'node:url';
import { getDomain } from 'tldts';
import { ReplyError } from './errors.ts';

export interface ParsedAddress {
  /** Normalised local part (see module comment). */
  local: string;
  /** Lower-case ASCII domain, or an address literal such as `[192.0.2.1]`. */
  domain: string;
  /** `local@domain`: the key used everywhere (store, index, policy). */
  address: string;
}

const MAX_LOCAL_OCTETS = 64; // RFC 5321 4.5.3.1.1
const MAX_ADDRESS_OCTETS = 254; // RFC 5321 path limit 256 minus the angle brackets
const MAX_DOMAIN_OCTETS = 253; // longest DNS name in text form without the root dot
const MAX_LABEL_OCTETS = 63;

const encoder = new TextEncoder();
const octets = (s: string): number => encoder.encode(s).length;

function bad(input: string, why: string): ReplyError {
  // JSON.stringify shows control characters safely instead of echoing them to a client.
  return new ReplyError(501, '5.1.3', `Bad address syntax: ${why} in ${JSON.stringify(input)}`);
}

/** C0 controls, DEL and C1 controls: never allowed anywhere in an address. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** A UTF-16 surrogate without its partner cannot be encoded as UTF-8. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** RFC 5322 atext plus any non-ASCII character (RFC 6531 UTF8-non-ascii). */
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+$/u;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
/** Host names with "_" exist in DNS and in real senders' MAIL FROM (Postfix accepts them); see ParseOptions. */
const LDH_UNDERSCORE_LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;

export interface ParseOptions {
  /**
   * Allow "_" in domain labels. Only for a received reverse-path: it is
   * evidence and a bounce address, never a key this server routes by, and
   * refusing it loses the message (src/protocols/smtp/sender-syntax.ts).
   */
  underscore?: boolean;
  /**
   * Allow a local part over RFC 5321's 64 octets (the whole path's limit still
   * applies). Only for a received reverse-path: VERP bounce addresses of real
   * mailing lists exceed it and Postfix accepts them.
   */
  longLocalPart?: boolean;
}

function isDotAtom(s: string): boolean {
  return s.length > 0 && s.split('.').every((atom) => ATEXT.test(atom));
}

/**
 * Parses a bare RFC 5321 Mailbox (no angle brackets, no display name, no
 * surrounding spaces: callers strip the SMTP path syntax first).
 * @throws ReplyError 501 5.1.3 with a client-safe explanation.
 */
export function parseAddress(input: string, options: ParseOptions = {}): ParsedAddress {
  return parsePlainAscii(input, options) ?? parseAnyAddress(input, options);
}

/**
 * An unquoted ASCII dot-atom at an ASCII LDH domain without a trailing dot: what nearly every
 * address is. Everything parseAnyAddress would check or change is then a lower-casing and four
 * length limits, which this reads off directly; anything else (quotes, non-ASCII, `_`, a root
 * dot, an address literal, any error) is left to parseAnyAddress (null), so both give the same
 * answer for every input (address.test.ts compares them). The accept path parses each sender and
 * recipient two or three times (MAIL FROM, RCPT TO, end of DATA), and the Unicode scanners and
 * NFC normalisation were most of that cost.
 */
const PLAIN_ASCII =
  /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

function parsePlainAscii(input: string, options: ParseOptions): ParsedAddress | null {
  // ASCII only: a character is an octet, so lengths are octet counts.
  if (input.length > MAX_ADDRESS_OCTETS || !PLAIN_ASCII.test(input)) return null;
  const at = input.indexOf('@');
  if (at > MAX_LOCAL_OCTETS && !options.longLocalPart) return null;
  const domain = input.slice(at + 1);
  if (domain.length > MAX_DOMAIN_OCTETS) return null;
  for (let start = 0; start < domain.length; ) {
    const dot = domain.indexOf('.', start);
    const end = dot < 0 ? domain.length : dot;
    if (end - start > MAX_LABEL_OCTETS) return null;
    start = end + 1;
  }
  const address = input.toLowerCase();
  return { local: address.slice(0, at), domain: address.slice(at + 1), address };
}

/** parseAddress for any input: the full syntax, SMTPUTF8 and IDN, and every error. Exported for address.test.ts's comparison. */
export function parseAnyAddress(input: string, options: ParseOptions = {}): ParsedAddress {
  // Cheap bound first so pathological input never reaches the scanners.
  if (input.length > 4 * MAX_ADDRESS_OCTETS) throw bad(input.slice(0, 64) + '…', 'too long');
  if (input.length === 0) throw bad(input, 'empty address');
  if (CONTROL.test(input)) throw bad(input, 'control character');
  if (LONE_SURROGATE.test(input)) throw bad(input, 'invalid UTF-16');

  const { local, rest } = splitLocal(input);
  if (!rest.startsWith('@')) throw bad(input, 'missing "@"');
  const domain = normaliseMailDomain(rest.slice(1), input, options.underscore === true);

  if (!options.longLocalPart && octets(local) > MAX_LOCAL_OCTETS) throw bad(input, `local part longer than ${MAX_LOCAL_OCTETS} octets`);
  const address = `${local}@${domain}`;
  if (octets(address) > MAX_ADDRESS_OCTETS) throw bad(input, `address longer than ${MAX_ADDRESS_OCTETS} octets`);
  return { local, domain, address };
}

/** Reads the local part (dot-atom or quoted string) and returns it normalised plus the unread rest. */
function splitLocal(input: string): { local: string; rest: string } {
  if (input.startsWith('"')) return splitQuoted(input);
  const at = input.lastIndexOf('@');
  if (at <= 0) throw bad(input, at === 0 ? 'empty local part' : 'missing "@"');
  const raw = input.slice(0, at);
  if (/\s/u.test(raw)) throw bad(input, 'space in local part (quote it)');
  if (/[<>]/.test(raw)) throw bad(input, 'angle bracket in address');
  if (!isDotAtom(raw)) throw bad(input, 'illegal character or misplaced dot in local part');
  return { local: raw.normalize('NFC').toLowerCase(), rest: input.slice(at) };
}

function splitQuoted(input: string): { local: string; rest: string } {
  let content = '';
  for (let i = 1; i < input.length; i++) {
    const c = input[i] as string;
    if (c === '\\') {
      const next = input[i + 1];
      if (next === undefined) break;
      content += next;
      i++;
    } else if (c === '"') {
      if (content.length === 0) throw bad(input, 'empty quoted local part');
      const norm = content.normalize('NFC').toLowerCase();
      // Drop the quotes when they are unnecessary, so equal mailboxes have equal keys.
      const local = isDotAtom(norm) ? norm : `"${norm.replace(/(["\\])/g, '\\$1')}"`;
      return { local, rest: input.slice(i + 1) };
    } else {
      content += c;
    }
  }
  throw bad(input, 'unterminated quoted local part');
}

function normaliseMailDomain(raw: string, input: string, underscore: boolean): string {
  if (raw.startsWith('[')) return normaliseAddressLiteral(raw, input);
  const result = checkDomain(raw, underscore);
  if ('problem' in result) throw bad(input, result.problem);
  return result.domain;
}

/** `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 4.1.3), returned lower-cased. */
function normaliseAddressLiteral(raw: string, input: string): string {
  if (!raw.endsWith(']')) throw bad(input, 'unterminated address literal');
  const inner = raw.slice(1, -1).toLowerCase();
  if (isIPv4(inner)) return `[${inner}]`;
  if (inner.startsWith('ipv6:') && isIPv6(inner.slice(5))) return `[${inner}]`;
  throw bad(input, 'invalid address literal');
}

function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(?:0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(s: string): boolean {
  // An embedded IPv4 tail stands for two 16-bit groups (RFC 4291 2.2): swap it
  // for "0:0" and validate what remains as plain hex groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (lastColon < 0 || !isIPv4(tail)) return false;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const hexGroups = (h: string): string[] => (h === '' ? [] : h.split(':'));
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap(hexGroups);
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? groups.length <= 7 : groups.length === 8;
}

/** Why a DNS name is unacceptable, or its normal form. */
function checkDomain(input: string, underscore = false): { domain: string } | { problem: string } {
  // The root's dot names the same domain (see the module comment); only one.
  if (input.endsWith('.') && input.length > 1 && !input.endsWith('..')) input = input.slice(0, -1);
  if (input.length === 0) return { problem: 'empty domain' };
  // ASCII is restricted to LDH and dots before domainToASCII sees it, so none
  // of the WHATWG URL leniencies (percent-decoding, "/", ":") can apply.
  if ((underscore ? /[^\u00a0-\u{10ffff}A-Za-z0-9._-]/u : /[^\u00a0-\u{10ffff}A-Za-z0-9.-]/u).test(input)) return { problem: 'illegal character in domain' };
  if (LONE_SURROGATE.test(input)) return { problem: 'invalid UTF-16' };
  const ascii = /^[\x00-\x7f]*$/.test(input) ? input.toLowerCase() : domainToASCII(input);
  if (ascii === '') return { problem: 'invalid internationalised domain' };
  if (ascii.length > MAX_DOMAIN_OCTETS) return { problem: `domain longer than ${MAX_DOMAIN_OCTETS} octets` };
  for (const label of ascii.split('.')) {
    if (label.length === 0) return { problem: 'empty domain label' };
    if (label.length > MAX_LABEL_OCTETS) return { problem: `domain label longer than ${MAX_LABEL_OCTETS} octets` };
    if (!(underscore ? LDH_UNDERSCORE_LABEL : LDH_LABEL).test(label)) return { problem: `domain label "${label}" is not letters, digits and inner hyphens` };
  }
  return { domain: ascii };
}

/**
 * Normalises a DNS domain name (not an address literal): IDN to A-labels,
 * lower case, each label LDH and 1..63 octets, at most 253 octets, one
 * trailing dot dropped. A single label (`localhost`) is accepted: RFC 5321 allows it
 * and test setups use it.
 * @throws ReplyError 501 5.1.3 (`Bad domain syntax: …`).
 */
export function normaliseDomain(input: string): string {
  const result = checkDomain(input);
  if ('problem' in result) {
    throw new ReplyError(501, '5.1.3', `Bad domain syntax: ${result.problem} in ${JSON.stringify(input.slice(0, 300))}`);
  }
  return result.domain;
}

/** parseAddress's normal form of `input`, or null when it does not parse. */
export function normalisedAddress(input: string): string | null {
  try {
    return parseAddress(input).address;
  } catch {
    return null;
  }
}

/**
 * An address in normal form without the `+tag` of its local part (RFC 5233 subaddressing):
 * `bob+lists@x.test` is `bob@x.test`; an address without a tag (or with `+` first, where
 * there is no base to strip it from) is itself. The tag starts at the first `+`.
 */
export function subaddressBase(address: string): string {
  const at = address.lastIndexOf('@');
  const plus = address.indexOf('+');
  return plus > 0 && plus < at ? address.slice(0, plus) + address.slice(at) : address;
}

/**
 * The key of the account that may send from `address` (any form): its normal form's
 * subaddressBase, or null when it does not parse. An account owns the addresses whose key is
 * its own address (services/outbound.ts owns()); the store keeps this key beside each sent
 * message's envelope sender (`sender_key`, migration 0028), which keeps the sender as the
 * client gave it, so that a user's sent mail is one indexed lookup whatever its case or tag.
 */
export function senderKey(address: string): string | null {
  const normal = normalisedAddress(address);
  return normal === null ? null : subaddressBase(normal);
}

/** Domain part of an address in normal form (the part after the last `@`, lower-cased). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) throw new TypeError(`Not an address: ${JSON.stringify(address)}`);
  return address.slice(at + 1).toLowerCase();
}

/**
 * True when `child` is `parent` itself or lies below it (`a.b.example.org` is
 * a subdomain of `example.org`). A domain counts as covering itself because
 * every caller (domain allow entries, List-Id coverage) means "this domain and
 * everything under it". Comparison is on labels, so `badexample.org` is not
 * under `example.org`. Inputs are compared case-insensitively, trailing dots ignored.
 */
export function isSubdomainOf(child: string, parent: string): boolean {
  const c = child.toLowerCase().replace(/\.$/, '');
  const p = parent.toLowerCase().replace(/\.$/, '');
  if (c === '' || p === '') return false;
  return c === p || c.endsWith(`.${p}`);
}

/**
 * The "organisational domain" as DMARC uses the term (RFC 7489 3.2): the
 * public suffix plus one label, from the Public Suffix List (the `tldts`
 * package, both its ICANN and its private section, so `github.io` and
 * `eu.org` customers are separate organisations). A name that is itself a
 * public suffix (`evil.sch.uk` under the `*.sch.uk` rule), a single label,
 * an IP address or an address literal is its own organisation. Names under
 * a TLD the list does not know (`.test`) fall to its default rule `*`:
 * the last two labels.
 */
export function organizationalDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (d.startsWith('[')) return d; // address literal
  return getDomain(d, { allowPrivateDomains: true, extractHostname: false, validateHostname: false }) ?? d;
}

export type SenderSpec = { kind: 'address'; address: string } | { kind: 'domain'; domain: string };

/**
 * A sender as an operator writes it (CLI `contacts allow USER SENDER`):
 * `alice@example.org` is one address; `@example.org` or `example.org` (no
 * `@`) is the whole domain including subdomains.
 * @throws ReplyError 501 5.1.3 for bad syntax.
 */
export function parseSenderSpec(spec: string): SenderSpec {
  if (spec.startsWith('@')) return { kind: 'domain', domain: normaliseDomain(spec.slice(1)) };
  if (!spec.includes('@')) return { kind: 'domain', domain: normaliseDomain(spec) };
  return { kind: 'address', address: parseAddress(spec).address };
}
