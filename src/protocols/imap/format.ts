/**
 * Response syntax: strings (quoted or literal; ENVELOPE and BODYSTRUCTURE
 * are rendered in core/imap-wire.ts, stored with the message),
 * sequence sets, modified UTF-7 mailbox names (RFC 3501 5.1.3).
 * A response is built as a list of chunks (strings are latin1: one char per
 * octet; Buffers go as they are) and written in one piece.
 */
import { imapString } from '../../core/imap-wire.ts';

export { inRanges } from '../../core/mail-search.ts';

export type Chunk = string | Buffer;

/** A string value: quoted when it can be, else a literal. `s` is latin1 (octets). */
export function str(s: string | null, out: Chunk[]): void {
  out.push(imapString(s));
}

/** A UTF-8 JS string (a mailbox name with UTF8=ACCEPT, an ID value) as octets. */
export function utf8(s: string | null, out: Chunk[]): void {
  if (s !== null && s.length < 256 && !/[\r\n\0"\\]/.test(s)) {
    // UTF-8 in a quoted string: only sent to clients that enabled UTF8=ACCEPT (RFC 6855 3).
    out.push(`"${Buffer.from(s, 'utf8').toString('latin1')}"`);
    return;
  }
  str(s === null ? null : Buffer.from(s, 'utf8').toString('latin1'), out);
}

export function literal(b: Buffer, out: Chunk[], binary = false): void {
  out.push(`${binary ? '~' : ''}{${b.length}}\r\n`, b);
}

/** Compresses sorted numbers into `1:3,5,7:9`. */
export function sequenceSet(nums: number[]): string {
  const sorted = [...nums].sort((a, b) => a - b);
  const out: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]! <= sorted[j]! + 1) j++;
    out.push(sorted[i] === sorted[j] ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** Parses a sequence set against `max` (the value of `*`). Throws a string on bad syntax. */
export function parseSequenceSet(text: string, max: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  if (text === '') throw 'Empty sequence set';
  for (const piece of text.split(',')) {
    const m = /^(\d+|\*)(?::(\d+|\*))?$/.exec(piece);
    if (!m) throw `Bad sequence set "${text.slice(0, 40)}"`;
    const val = (s: string) => {
      if (s === '*') return max;
      const n = Number(s);
      if (n < 1 || n > 0xffff_ffff) throw `Number out of range in sequence set: ${s.slice(0, 20)}`;
      return n;
    };
    const a = val(m[1]!);
    const b = m[2] !== undefined ? val(m[2]) : a;
    ranges.push(a <= b ? [a, b] : [b, a]);
  }
  return ranges;
}

/** RFC 3501 5.1.3 modified UTF-7. */
export function encodeMailboxName(name: string): string {
  let out = '';
  let pending = '';
  const flush = () => {
    if (pending === '') return;
    const bytes = Buffer.alloc(pending.length * 2);
    for (let i = 0; i < pending.length; i++) bytes.writeUInt16BE(pending.charCodeAt(i), i * 2);
    out += `&${bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',')}-`;
    pending = '';
  };
  for (const ch of name) {
    for (let k = 0; k < ch.length; k++) {
      const code = ch.charCodeAt(k);
      if (code >= 0x20 && code <= 0x7e) {
        flush();
        out += code === 0x26 ? '&-' : ch[k];
      } else pending += ch[k];
    }
  }
  flush();
  return out;
}

export function decodeMailboxName(name: string): string {
  return name.replace(/&([^-]*)-/g, (_, b64: string) => {
    if (b64 === '') return '&';
    const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
    let s = '';
    for (let i = 0; i + 1 < bytes.length; i += 2) s += String.fromCharCode(bytes.readUInt16BE(i));
    return s;
  });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** INTERNALDATE: `"17-Jul-1996 02:44:25 +0000"` (UTC). */
export function internalDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `"${p(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000"`;
}

/** `1-Feb-1994` (SEARCH dates) or a date-time (APPEND); null when malformed. */
export function parseImapDate(s: string): Date | null {
  const m = /^\s?(\d{1,2})-([A-Za-z]{3})-(\d{4})(?: (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}))?$/.exec(s);
  if (!m) return null;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return null;
  const day = Number(m[1]);
  if (day < 1 || day > 31) return null;
  if (m[4] === undefined) return new Date(Date.UTC(Number(m[3]), month, day));
  const offset = (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
  return new Date(Date.UTC(Number(m[3]), month, day, Number(m[4]), Number(m[5]), Number(m[6])) - offset * 60_000);
}
