/**
 * SEARCH criteria (RFC 9051 6.4.4, RFC 7162 MODSEQ, RFC 8474 EMAILID):
 * parsed into a tree, evaluated per message. Strings match as
 * case-insensitive substrings of decoded header values and text parts, in
 * UTF-8 (the only charset accepted; others get NO [BADCHARSET (UTF-8)]).
 */
import { parseHeaderFields, partAt, type HeaderField, type MessageStructure, type MimePart } from '../../core/mime-structure.ts';
import { decodeQuotedPrintable, topHeaders } from './fetch.ts';
import { inRanges, parseImapDate, parseSequenceSet } from './format.ts';
import { textOf, type Token } from './parser.ts';
import { no } from './hooks.ts';

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

interface Ctx {
  maxSeq: number;
  maxUid: number;
  lastResult?: number[];
}

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true],
  DELETED: ['\\Deleted', true],
  DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true],
  SEEN: ['\\Seen', true],
  UNANSWERED: ['\\Answered', false],
  UNDELETED: ['\\Deleted', false],
  UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false],
  UNSEEN: ['\\Seen', false],
};

/** Parses criteria starting at `toks[i]`; returns the list (an implicit AND) and where it stopped. */
export function parseSearch(toks: Token[], ctx: Ctx): Criterion {
  let i = 0;
  const stringArg = (): string => {
    const t = toks[i++];
    const s = textOf(t);
    if (s === null) throw 'SEARCH key needs a string';
    return s;
  };
  const numArg = (): number => {
    const s = stringArg();
    if (!/^\d{1,20}$/.test(s)) throw `Bad number ${s.slice(0, 20)}`;
    return Number(s);
  };
  const dateArg = (): number => {
    const s = stringArg();
    const d = parseImapDate(s);
    if (!d) throw `Bad date ${s.slice(0, 30)}`;
    return d.getTime();
  };
  const one = (depth: number): Criterion => {
    if (depth > 64) throw 'SEARCH nested too deeply';
    const t = toks[i++];
    if (!t) throw 'Missing SEARCH key';
    if (t.t === 'list') {
      const inner = parseSearch(t.v, ctx);
      return inner;
    }
    if (t.t !== 'atom') throw 'Bad SEARCH key';
    const key = t.v.toUpperCase();
    if (FLAG_KEYS[key]) return { k: 'flag', flag: FLAG_KEYS[key][0], set: FLAG_KEYS[key][1] };
    switch (key) {
      case 'ALL':
        return { k: 'all' };
      case 'NEW':
        return { k: 'new' };
      case 'OLD':
        return { k: 'old' };
      case 'RECENT':
        // No session owns "recent" messages here (IMAP4rev2 removed \Recent).
        return { k: 'not', c: { k: 'all' } };
      case 'KEYWORD':
        return { k: 'flag', flag: stringArg(), set: true };
      case 'UNKEYWORD':
        return { k: 'flag', flag: stringArg(), set: false };
      case 'FROM':
      case 'TO':
      case 'CC':
      case 'BCC':
      case 'SUBJECT':
        return { k: 'header', field: key.toLowerCase(), value: stringArg() };
      case 'HEADER': {
        const field = stringArg();
        return { k: 'header', field: field.toLowerCase(), value: stringArg() };
      }
      case 'BODY':
        return { k: 'body', value: stringArg(), headersToo: false };
      case 'TEXT':
        return { k: 'body', value: stringArg(), headersToo: true };
      case 'BEFORE':
      case 'ON':
      case 'SINCE':
        return { k: 'date', which: 'internal', op: key.toLowerCase() as 'on', day: dateArg() };
      case 'SENTBEFORE':
      case 'SENTON':
      case 'SENTSINCE':
        return { k: 'date', which: 'sent', op: key.slice(4).toLowerCase() as 'on', day: dateArg() };
      case 'LARGER':
        return { k: 'size', op: 'larger', n: numArg() };
      case 'SMALLER':
        return { k: 'size', op: 'smaller', n: numArg() };
      case 'UID':
        return { k: 'seq', ranges: seqArg(stringArg(), ctx.maxUid), uid: true };
      case 'NOT':
        return { k: 'not', c: one(depth + 1) };
      case 'OR': {
        const a = one(depth + 1);
        return { k: 'or', a, b: one(depth + 1) };
      }
      case 'MODSEQ': {
        // An optional entry name and type come first (RFC 7162 3.1.5); they are accepted and ignored.
        if (toks[i] && toks[i]!.t !== 'atom') {
          i += 2;
        } else if (toks[i] && toks[i + 1] && /^\d+$/.test(textOf(toks[i + 1]) ?? '') && !/^\d+$/.test(textOf(toks[i]) ?? '')) i += 2;
        return { k: 'modseq', n: numArg() };
      }
      case 'EMAILID':
        return { k: 'emailid', id: stringArg() };
      case '$':
        return { k: 'seq', ranges: (ctx.lastResult ?? []).map((u) => [u, u] as [number, number]), uid: true };
      default:
        if (/^[\d*:,]+$/.test(key)) return { k: 'seq', ranges: seqArg(key, ctx.maxSeq), uid: false };
        throw `Unknown SEARCH key ${key.slice(0, 30)}`;
    }
  };
  const seqArg = (s: string, max: number) => parseSequenceSet(s, max);
  const cs: Criterion[] = [];
  while (i < toks.length) cs.push(one(0));
  if (cs.length === 0) throw 'SEARCH needs criteria';
  return cs.length === 1 ? cs[0]! : { k: 'and', cs };
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

/** `CHARSET x` at the start: only UTF-8 and US-ASCII are accepted. */
export function takeCharset(toks: Token[]): Token[] {
  const first = toks[0];
  if (first && first.t === 'atom' && first.v.toUpperCase() === 'CHARSET') {
    const cs = textOf(toks[1])?.toUpperCase();
    if (cs !== 'UTF-8' && cs !== 'US-ASCII') throw no('BADCHARSET (UTF-8)', 'Only UTF-8 is supported');
    return toks.slice(2);
  }
  return toks;
}
