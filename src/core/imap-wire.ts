/**
 * The IMAP wire text of a message's ENVELOPE, BODYSTRUCTURE and BODY (RFC
 * 9051 7.5.2), rendered from its parsed structure (mime-structure.ts).
 *
 * Here in core, not in the IMAP protocol code, because the store renders
 * them once, when a message is stored, and keeps the text: the first FETCH
 * of these items then copies stored strings instead of parsing the stored
 * structure and rendering it (about half of that FETCH's time, profiled in
 * docs/imap.md "Performance"). A stored message never changes, so the text
 * never goes stale. Strings are latin1: one char per octet.
 */
import type { Envelope, EnvelopeAddress, MessageStructure, MimePart } from './mime-structure.ts';

export interface ImapWireText {
  envelope: string;
  /** BODYSTRUCTURE, with the extension data. */
  bodyStructure: string;
  /** BODY: BODYSTRUCTURE without the extension data. */
  body: string;
}

/** A string value: quoted when it can be, else a literal. `s` is latin1 (octets). */
export function imapString(s: string | null): string {
  if (s === null) return 'NIL';
  if (s.length < 1024 && !/[\r\n\0"\\\x80-\xff]/.test(s)) return `"${s}"`;
  if (s.length < 1024 && !/[\r\n\0\x80-\xff]/.test(s)) return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return `{${Buffer.byteLength(s, 'latin1')}}\r\n${s}`;
}

function addresses(list: EnvelopeAddress[] | null): string {
  if (!list || list.length === 0) return 'NIL';
  let out = '(';
  for (const a of list) out += `(${imapString(a.name)} ${imapString(a.adl)} ${imapString(a.mailbox)} ${imapString(a.host)})`;
  return `${out})`;
}

export function envelopeWire(e: Envelope): string {
  return (
    `(${imapString(e.date)} ${imapString(e.subject)} ${addresses(e.from)} ${addresses(e.sender)} ${addresses(e.replyTo)} ` +
    `${addresses(e.to)} ${addresses(e.cc)} ${addresses(e.bcc)} ${imapString(e.inReplyTo)} ${imapString(e.messageId)})`
  );
}

function params(p: Array<[string, string]>): string {
  if (p.length === 0) return 'NIL';
  return `(${p.map(([k, v]) => `${imapString(k)} ${imapString(v)}`).join(' ')})`;
}

function extensionTail(part: MimePart): string {
  const disposition = part.disposition ? `(${imapString(part.disposition.type)} ${params(part.disposition.params)})` : 'NIL';
  const language = part.language && part.language.length > 0 ? `(${part.language.map(imapString).join(' ')})` : 'NIL';
  return ` ${disposition} ${language} ${imapString(part.location)}`;
}

/** BODYSTRUCTURE (`extended`) or BODY of a part. */
export function bodyStructureWire(part: MimePart, extended: boolean): string {
  if (part.parts) {
    let out = '(';
    for (const child of part.parts) out += bodyStructureWire(child, extended);
    out += ` ${imapString(part.subtype)}`;
    if (extended) out += ` ${params(part.params)}${extensionTail(part)}`;
    return `${out})`;
  }
  let out =
    `(${imapString(part.type)} ${imapString(part.subtype)} ${params(part.params)} ${imapString(part.id)} ` +
    `${imapString(part.description)} ${imapString(part.encoding)} ${part.size}`;
  if (part.message) out += ` ${envelopeWire(part.message.envelope)} ${bodyStructureWire(part.message.body, extended)} ${part.lines}`;
  else if (part.type === 'text') out += ` ${part.lines}`;
  if (extended) out += ` ${imapString(part.md5)}${extensionTail(part)}`;
  return `${out})`;
}

export function imapWireText(s: MessageStructure): ImapWireText {
  return { envelope: envelopeWire(s.envelope), bodyStructure: bodyStructureWire(s.body, true), body: bodyStructureWire(s.body, false) };
}
