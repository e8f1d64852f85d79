/**
 * FETCH items: their syntax (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162
 * MODSEQ, RFC 8474 EMAILID/THREADID) and the octets of a BODY[section]
 * taken from a stored message with the part offsets computed at ingest.
 */
import { headerEnd, partAt, type MessageStructure, type MimePart } from '../../core/mime-structure.ts';
import type { Token } from './parser.ts';
import { decodeQuotedPrintable } from '../../core/mail-search.ts';

export type FetchItem =
  | { kind: 'FLAGS' | 'INTERNALDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY' | 'UID' | 'MODSEQ' | 'EMAILID' | 'THREADID' }
  | { kind: 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT' }
  | { kind: 'section'; binary: boolean; peek: boolean; section: Section; partial: [number, number] | null; label: string }
  | { kind: 'BINARY.SIZE'; section: Section; label: string };

export interface Section {
  path: number[];
  /** '' (the whole part), HEADER, TEXT, MIME, HEADER.FIELDS, HEADER.FIELDS.NOT */
  text: '' | 'HEADER' | 'TEXT' | 'MIME' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT';
  fields: string[];
}

const MAX_SECTION_DEPTH = 32;

const SIMPLE = new Set(['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'UID', 'MODSEQ', 'EMAILID', 'THREADID', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT']);

function parseSection(spec: string, allowText: boolean): Section {
  const m = /^((?:\d+\.)*\d+)?(?:\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?(?:\s*\(([^()]*)\))?$/i.exec(spec.trim());
  if (!m) throw `Bad section "${spec.slice(0, 60)}"`;
  const path = m[1] ? m[1].split('.').map(Number) : [];
  if (path.length > MAX_SECTION_DEPTH) throw 'Section path too deep';
  if (path.some((n) => n < 1 || n > 0xffff_ffff)) throw 'Section part numbers start at 1';
  const text = (m[2]?.toUpperCase() ?? '') as Section['text'];
  if (m[1] && m[2] && !/^\d/.test(spec.trim())) throw `Bad section "${spec.slice(0, 60)}"`;
  if (text === 'MIME' && path.length === 0) throw 'MIME needs a part number';
  if (!allowText && text !== '') throw 'BINARY takes part numbers only';
  const fields = m[3] !== undefined ? m[3].trim().split(/\s+/).filter((f) => f !== '') : [];
  if ((text === 'HEADER.FIELDS' || text === 'HEADER.FIELDS.NOT') !== (m[3] !== undefined)) throw 'HEADER.FIELDS takes a list of field names';
  if ((text === 'HEADER.FIELDS' || text === 'HEADER.FIELDS.NOT') && fields.length === 0) throw 'HEADER.FIELDS takes at least one field name';
  return { path, text, fields };
}

/**
 * Items already parsed, by their text: a client repeats the same few (mbsync
 * sends `BODY.PEEK[]` once per message) and the regular expressions were a
 * measurable share of such a command. The items are shared, never changed
 * (a FETCH changes its own list of them only). Client text, so bounded.
 */
const parsed = new Map<string, FetchItem>();
const MAX_PARSED = 256;

function parseItem(atom: string): FetchItem {
  let item = parsed.get(atom);
  if (!item) {
    item = parseItemText(atom);
    if (parsed.size >= MAX_PARSED) parsed.clear();
    parsed.set(atom, item);
  }
  return item;
}

function parseItemText(atom: string): FetchItem {
  const upper = atom.toUpperCase();
  if (SIMPLE.has(upper)) return { kind: upper as 'FLAGS' };
  const m = /^(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)\[(.*)\](?:<(\d{1,10})\.(\d{1,10})>)?$/is.exec(atom);
  if (!m) throw `Unknown FETCH item ${atom.slice(0, 40)}`;
  const name = m[1]!.toUpperCase();
  const binary = name.startsWith('BINARY');
  const section = parseSection(m[2]!, !binary);
  const sectionLabel = m[2]!.replace(/\s+/g, ' ').toUpperCase();
  if (name === 'BINARY.SIZE') {
    if (m[3] !== undefined) throw 'BINARY.SIZE takes no partial range';
    return { kind: 'BINARY.SIZE', section, label: `BINARY.SIZE[${sectionLabel}]` };
  }
  const partial: [number, number] | null = m[3] !== undefined ? [Number(m[3]), Number(m[4])] : null;
  if (partial && (partial[0] > 0xffff_ffff || partial[1] > 0xffff_ffff || partial[1] === 0)) throw 'Bad partial range';
  return {
    kind: 'section',
    binary,
    peek: name.endsWith('.PEEK'),
    section,
    partial,
    label: `${binary ? 'BINARY' : 'BODY'}[${sectionLabel}]`,
  };
}

/** The item list of FETCH (an atom, a macro, or a parenthesized list). */
export function parseFetchItems(tok: Token | undefined): FetchItem[] {
  if (!tok) throw 'FETCH needs items';
  if (tok.t === 'atom') {
    const u = tok.v.toUpperCase();
    if (u === 'ALL') return ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'].map((k) => ({ kind: k as 'FLAGS' }));
    if (u === 'FAST') return ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'].map((k) => ({ kind: k as 'FLAGS' }));
    if (u === 'FULL') return ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'].map((k) => ({ kind: k as 'FLAGS' }));
    return [parseItem(tok.v)];
  }
  if (tok.t === 'list') {
    if (tok.v.length === 0) throw 'Empty FETCH item list';
    return tok.v.map((t) => {
      if (t.t !== 'atom') throw 'Bad FETCH item';
      return parseItem(t.v);
    });
  }
  throw 'Bad FETCH items';
}

function headerFields(block: Buffer, names: string[], not: boolean): Buffer {
  const want = new Set(names.map((n) => n.toLowerCase()));
  const text = block.toString('latin1');
  const lines = text.split(/(?<=\n)/);
  let out = '';
  let keep = false;
  for (const line of lines) {
    if (line === '\r\n' || line === '\n') break;
    if (line[0] === ' ' || line[0] === '\t') {
      if (keep) out += line;
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
    keep = colon > 0 && want.has(name) !== not;
    if (keep) out += line;
  }
  return Buffer.from(`${out}\r\n`, 'latin1');
}

/** The octets of a section, or null when the message has no such part (answered as empty). */
export function sectionOf(raw: Buffer, structure: MessageStructure, s: Section): Buffer | null {
  if (s.path.length === 0) {
    const hb = headerEnd(raw, 0, raw.length);
    switch (s.text) {
      case '':
        return raw;
      case 'HEADER':
        return raw.subarray(0, hb.bodyStart);
      case 'TEXT':
        return raw.subarray(hb.bodyStart);
      case 'HEADER.FIELDS':
      case 'HEADER.FIELDS.NOT':
        return headerFields(raw.subarray(0, hb.bodyStart), s.fields, s.text === 'HEADER.FIELDS.NOT');
      default:
        return null;
    }
  }
  const part = partAt(structure.body, s.path);
  if (!part) return null;
  if (s.text === '') {
    // The top level's only part of a non-multipart message is its body.
    return raw.subarray(part.bodyStart, part.end);
  }
  if (s.text === 'MIME') return raw.subarray(part.headerStart, part.bodyStart);
  const inner: MimePart | undefined = part.message?.body;
  if (!inner) return null;
  if (s.text === 'HEADER') return raw.subarray(inner.headerStart, inner.bodyStart);
  if (s.text === 'TEXT') return raw.subarray(inner.bodyStart, inner.end);
  return headerFields(raw.subarray(inner.headerStart, inner.bodyStart), s.fields, s.text === 'HEADER.FIELDS.NOT');
}

/** BINARY: the part's content with its transfer encoding undone; 'unknown-cte' for encodings we cannot undo. */
export function binaryOf(raw: Buffer, structure: MessageStructure, s: Section): Buffer | null | 'unknown-cte' {
  if (s.path.length === 0) return raw;
  const part = partAt(structure.body, s.path);
  if (!part) return null;
  const body = raw.subarray(part.bodyStart, part.end);
  if (part.parts || part.message) return body;
  const enc = part.encoding.toLowerCase();
  if (enc === '7bit' || enc === '8bit' || enc === 'binary') return body;
  if (enc === 'base64') return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  if (enc === 'quoted-printable') return decodeQuotedPrintable(body);
  return 'unknown-cte';
}

