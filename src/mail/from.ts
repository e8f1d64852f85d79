/**
 * The author identity of a message: the single mailbox of its single From:
 * field (RFC 5322 3.6.2), parsed strictly and normalised by parseAddress.
 *
 * This one value is what the policy matches against the address book AND
 * whose domain DMARC alignment is checked for (mail/authenticate.ts). A
 * message gets no identity at all (`problem` instead) when there is any
 * doubt about who the author is: no From: field or several, several
 * mailboxes, a group, a control character, an obsolete route, unbalanced
 * brackets or quotes, or an address parseAddress refuses. Such a message is
 * never "allowed" (core/policy.ts, reason `ambiguous-from`), as RFC 7489
 * section 6.6.1 permits.
 *
 * Deliberately stricter than RFC 5322's obsolete syntax: a lenient parser
 * (nodemailer's addressparser, which mailauth uses) reads input such as
 * `eve@evil.test friend@friends.test` or `eve<DEL>@evil.test, g: friend@x;`
 * in ways no human reader would; here such input has no identity.
 */
import { parseAddress } from '../core/address.ts';
import type { Header } from './headers.ts';

export type FromIdentity =
  /** `address` is parseAddress's normal form; `domain` its domain part. */
  | { address: string; domain: string; problem: null }
  | { address: null; domain: null; problem: string };

const none = (problem: string): FromIdentity => ({ address: null, domain: null, problem });

/** C0 controls except TAB, DEL and C1 controls: never in a From: field we trust. */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;
/** RFC 5322 atext plus non-ASCII (RFC 6532). */
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]/u;
/** Longest field value looked at: far above any real From: (RFC 5322 line limit 998). */
const MAX_VALUE = 4096;

/** The identity of a message's header, see the module comment. */
export function fromIdentity(headers: Header[]): FromIdentity {
  const fields = headers.filter((h) => h.name === 'from');
  if (fields.length === 0) return none('no From: field');
  if (fields.length > 1) return none(`${fields.length} From: fields`);
  return parseFromValue(fields[0]!.value);
}

/**
 * The Sender: identity (RFC 5322 3.6.2), parsed as strictly as From:: a
 * mailing list or forwarder names itself there (docs/protocol.md 7.6).
 * Exactly one Sender: field with exactly one mailbox, else a problem.
 */
export function senderIdentity(headers: Header[]): FromIdentity {
  const fields = headers.filter((h) => h.name === 'sender');
  if (fields.length === 0) return none('no Sender: field');
  if (fields.length > 1) return none(`${fields.length} Sender: fields`);
  const parsed = parseFromValue(fields[0]!.value);
  return parsed.problem === null ? parsed : none(parsed.problem.replaceAll('From:', 'Sender:'));
}

/** Parses one From: field value (unfolded) that must hold exactly one mailbox. */
export function parseFromValue(value: string): FromIdentity {
  if (value.length > MAX_VALUE) return none('From: field too long');
  if (CONTROL.test(value)) return none('control character in From:');
  const s = new Scanner(value);
  try {
    s.cfws();
    let addrSpec: string;
    // A phrase (display name) needs an angle-addr after it; a bare addr-spec has none.
    const phraseStart = s.pos;
    const words = s.phrase();
    s.cfws();
    if (s.peek() === '<') {
      s.pos++;
      s.cfws();
      if (s.peek() === '@') throw new Error('obsolete route in From:');
      addrSpec = s.addrSpec();
      s.cfws();
      s.expect('>');
    } else {
      // No angle bracket: the whole thing must be one addr-spec.
      if (words > 1) throw new Error('display name without an angle-addr');
      s.pos = phraseStart;
      addrSpec = s.addrSpec();
    }
    s.cfws();
    if (s.pos < value.length) {
      const c = value[s.pos];
      throw new Error(c === ',' || c === ';' ? 'several mailboxes in From:' : c === ':' ? 'group in From:' : `unexpected ${JSON.stringify(c)} in From:`);
    }
    const parsed = parseAddress(addrSpec);
    if (parsed.domain.startsWith('[')) return none('address literal in From:');
    return { address: parsed.address, domain: parsed.domain, problem: null };
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    return none(text.startsWith('Bad address syntax') ? `From: address: ${text}` : text);
  }
}

class Scanner {
  pos = 0;
  constructor(private readonly s: string) {}

  peek(): string | undefined {
    return this.s[this.pos];
  }

  expect(c: string): void {
    if (this.s[this.pos] !== c) throw new Error(`expected ${JSON.stringify(c)} in From:`);
    this.pos++;
  }

  /** Skips whitespace and (nested) comments. */
  cfws(): void {
    for (;;) {
      const c = this.s[this.pos];
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') this.pos++;
      else if (c === '(') this.comment();
      else return;
    }
  }

  private comment(): void {
    let depth = 0;
    while (this.pos < this.s.length) {
      const c = this.s[this.pos++];
      if (c === '\\') this.pos++;
      else if (c === '(') depth++;
      else if (c === ')' && --depth === 0) return;
    }
    throw new Error('unterminated comment in From:');
  }

  /** A quoted string, returned with its quotes and escapes as written. */
  quoted(): string {
    const start = this.pos;
    this.pos++;
    while (this.pos < this.s.length) {
      const c = this.s[this.pos++];
      if (c === '\\') this.pos++;
      else if (c === '"') return this.s.slice(start, this.pos);
    }
    throw new Error('unterminated quoted string in From:');
  }

  private atom(dots: boolean): string {
    const start = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s[this.pos]!;
      // Surrogate pairs: test the whole code point.
      const cp = String.fromCodePoint(this.s.codePointAt(this.pos)!);
      if (ATEXT.test(cp) || (dots && c === '.')) this.pos += cp.length;
      else break;
    }
    return this.s.slice(start, this.pos);
  }

  /** Display-name words (atoms, quoted strings, obs-phrase dots); returns how many. */
  phrase(): number {
    let n = 0;
    for (;;) {
      this.cfws();
      const c = this.peek();
      if (c === '"') this.quoted();
      else if (c !== undefined && (c === '.' || ATEXT.test(String.fromCodePoint(this.s.codePointAt(this.pos)!)))) this.atom(true);
      else return n;
      n++;
    }
  }

  /** local-part "@" domain, no CFWS inside (obsolete CFWS between atoms is refused). */
  addrSpec(): string {
    const local = this.peek() === '"' ? this.quoted() : this.atom(true);
    if (local === '') throw new Error('missing local part in From:');
    this.expect('@');
    let domain: string;
    if (this.peek() === '[') {
      const end = this.s.indexOf(']', this.pos);
      if (end < 0) throw new Error('unterminated domain literal in From:');
      domain = this.s.slice(this.pos, end + 1);
      this.pos = end + 1;
    } else {
      domain = this.atom(true);
    }
    if (domain === '') throw new Error('missing domain in From:');
    return `${local}@${domain}`;
  }
}
