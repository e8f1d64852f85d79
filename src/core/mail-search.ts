/**
 * Searching a message as IMAP SEARCH does (RFC 9051 6.4.4, RFC 7162 MODSEQ,
 * RFC 8474 EMAILID), shared by the IMAP server (protocols/imap/search.ts
 * parses the command into these criteria) and the web app's search
 * (services/mail-search.ts): one implementation, so a word in a body is
 * found alike from a mail client and from the browser. Strings match as
 * case-insensitive substrings of decoded header values and text parts, in
 * UTF-8. Pure: the caller brings the message's octets and structure.
 */
import { headerEnd, parseHeaderFields, partAt, type HeaderField, type MessageStructure, type MimePart } from './mime-structure.ts';

export interface SearchMessage {
  id: number;
  uid: number;
  seq: number;
  flags: string[];
  size: number;
  modseq: number;
  internalDate: Date;
}

export interface SearchData {
  raw: Buffer;
  structure: MessageStructure;
}

export type Criterion =
  | { k: 'all' }
  | { k: 'flag'; flag: string; set: boolean }
  | { k: 'new' }
  | { k: 'old' }
  | { k: 'header'; field: string; value: string }
  | { k: 'body'; value: string; headersToo: boolean }
  | { k: 'date'; which: 'internal' | 'sent'; op: 'before' | 'on' | 'since'; day: number }
  | { k: 'size'; op: 'larger' | 'smaller'; n: number }
  | { k: 'seq'; ranges: Array<[number, number]>; uid: boolean }
  | { k: 'modseq'; n: number }
  | { k: 'emailid'; id: string }
  | { k: 'not'; c: Criterion }
  | { k: 'or'; a: Criterion; b: Criterion }
  | { k: 'and'; cs: Criterion[] };

export function decodeQuotedPrintable(body: Buffer): Buffer {
  const s = body.toString('latin1').replace(/[ \t]+(\r?\n)/g, '$1').replace(/=\r?\n/g, '');
  const out = Buffer.alloc(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      out[n++] = parseInt(s.slice(i + 1, i + 3), 16);
      i += 2;
    } else out[n++] = s.charCodeAt(i) & 0xff;
  }
  return out.subarray(0, n);
}

/** Every field of the top-level header, unfolded (SEARCH). */
export function topHeaders(raw: Buffer) {
  const hb = headerEnd(raw, 0, raw.length);
  return parseHeaderFields(raw.toString('latin1', 0, hb.headerEnd));
}

export function inRanges(n: number, ranges: Array<[number, number]>): boolean {
  for (const [a, b] of ranges) if (n >= a && n <= b) return true;
  return false;
}

/** Whether evaluating needs the message octets. */
export function needsData(c: Criterion): boolean {
  switch (c.k) {
    case 'header':
    case 'body':
      return true;
    case 'date':
      return c.which === 'sent';
    case 'not':
      return needsData(c.c);
    case 'or':
      return needsData(c.a) || needsData(c.b);
    case 'and':
      return c.cs.some(needsData);
    default:
      return false;
  }
}

const fold = (s: string) => s.normalize('NFC').toLowerCase();

/** RFC 2047 encoded words decoded (charsets TextDecoder knows); a latin1 header string in, text out. */
export function decodeHeader(value: string): string {
  const bytes = Buffer.from(value, 'latin1');
  let text = bytes.toString('utf8');
  // Unencoded 8-bit that is not UTF-8 stays as latin1.
  if (text.includes('\ufffd')) text = value;
  return text.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=(\s+(?==\?))?/g, (_, charset: string, enc: string, data: string) => {
    try {
      const buf = enc.toUpperCase() === 'B' ? Buffer.from(data, 'base64') : decodeQuotedPrintable(Buffer.from(data.replace(/_/g, ' '), 'latin1'));
      return new TextDecoder(charset.replace(/\*.*$/, '').toLowerCase()).decode(buf);
    } catch {
      return data;
    }
  });
}

function charsetOf(part: MimePart): string {
  return part.params.find(([k]) => k.toLowerCase() === 'charset')?.[1] ?? 'utf-8';
}

function textParts(part: MimePart, out: MimePart[], depth = 0): void {
  if (depth > 40) return;
  if (part.parts) for (const p of part.parts) textParts(p, out, depth + 1);
  else if (part.message) textParts(part.message.body, out, depth + 1);
  else if (part.type === 'text') out.push(part);
}

function decodedText(raw: Buffer, part: MimePart): string {
  let body = raw.subarray(part.bodyStart, part.end);
  const enc = part.encoding.toLowerCase();
  if (enc === 'base64') body = Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  else if (enc === 'quoted-printable') body = decodeQuotedPrintable(body);
  try {
    return new TextDecoder(charsetOf(part).toLowerCase()).decode(body);
  } catch {
    return body.toString('latin1');
  }
}

/**
 * The header fields of every message/rfc822 part (a forwarded message): TEXT
 * matches them too, as Dovecot does (the differential test, docs/imap.md).
 */
function embeddedHeaders(raw: Buffer, part: MimePart, out: HeaderField[], depth = 0): void {
  if (depth > 40) return;
  if (part.parts) for (const p of part.parts) embeddedHeaders(raw, p, out, depth + 1);
  else if (part.message) {
    const inner = part.message.body;
    out.push(...parseHeaderFields(raw.toString('latin1', inner.headerStart, inner.bodyStart)));
    embeddedHeaders(raw, inner, out, depth + 1);
  }
}

const dayOf = (ms: number) => Math.floor(ms / 86_400_000) * 86_400_000;

export function evaluate(c: Criterion, m: SearchMessage, data: SearchData | undefined): boolean {
  switch (c.k) {
    case 'all':
      return true;
    case 'flag': {
      const has = m.flags.some((f) => f.toLowerCase() === c.flag.toLowerCase());
      return has === c.set;
    }
    case 'new':
      return false;
    case 'old':
      return true;
    case 'header': {
      if (!data) return false;
      const fields = topHeaders(data.raw).filter((f) => f.name.toLowerCase() === c.field);
      if (c.value === '') return fields.length > 0;
      const want = fold(c.value);
      return fields.some((f) => fold(decodeHeader(f.value)).includes(want));
    }
    case 'body': {
      if (!data) return false;
      const want = fold(c.value);
      if (c.headersToo) {
        const fields = topHeaders(data.raw);
        embeddedHeaders(data.raw, data.structure.body, fields);
        if (fields.some((f) => fold(decodeHeader(f.value)).includes(want))) return true;
      }
      const parts: MimePart[] = [];
      textParts(data.structure.body, parts);
      if (parts.length === 0 && partAt(data.structure.body, [1])) parts.push(data.structure.body);
      return parts.some((p) => fold(decodedText(data.raw, p)).includes(want));
    }
    case 'date': {
      let t: number;
      if (c.which === 'internal') t = m.internalDate.getTime();
      else {
        const d = data ? topHeaders(data.raw).find((f) => f.name.toLowerCase() === 'date')?.value : undefined;
        const parsed = d ? Date.parse(d.replace(/\([^)]*\)/g, '').trim()) : NaN;
        t = Number.isNaN(parsed) ? m.internalDate.getTime() : parsed;
      }
      const day = dayOf(t);
      return c.op === 'before' ? day < c.day : c.op === 'on' ? day === c.day : day >= c.day;
    }
    case 'size':
      return c.op === 'larger' ? m.size > c.n : m.size < c.n;
    case 'seq':
      return inRanges(c.uid ? m.uid : m.seq, c.ranges);
    case 'modseq':
      return m.modseq >= c.n;
    case 'emailid':
      return c.id === `M${m.id}`;
    case 'not':
      return !evaluate(c.c, m, data);
    case 'or':
      return evaluate(c.a, m, data) || evaluate(c.b, m, data);
    case 'and':
      return c.cs.every((x) => evaluate(x, m, data));
  }
}
