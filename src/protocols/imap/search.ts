/**
 * SEARCH criteria (RFC 9051 6.4.4, RFC 7162 MODSEQ, RFC 8474 EMAILID):
 * parsed into a tree here, evaluated per message by core/mail-search.ts
 * (shared with the web app's search). Strings match as
 * case-insensitive substrings of decoded header values and text parts, in
 * UTF-8 (the only charset accepted; others get NO [BADCHARSET (UTF-8)]).
 */
import type { Criterion } from '../../core/mail-search.ts';
import { parseImapDate, parseSequenceSet } from './format.ts';
import { textOf, type Token } from './parser.ts';
import { no } from './hooks.ts';

export { evaluate, needsData, type Criterion, type SearchData, type SearchMessage } from '../../core/mail-search.ts';

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
  const parser = new SearchParser(toks, ctx);
  const cs: Criterion[] = [];
  while (parser.i < toks.length) cs.push(parser.one(0));
  if (cs.length === 0) throw 'SEARCH needs criteria';
  return cs.length === 1 ? cs[0]! : { k: 'and', cs };
}

/** Reads criteria from `toks`, `i` being the next token to read. */
class SearchParser {
  i = 0;

  constructor(
    private readonly toks: Token[],
    private readonly ctx: Ctx,
  ) {}

  /** One criterion (a key with its arguments, or a parenthesized list), nested at most 64 deep. */
  one(depth: number): Criterion {
    if (depth > 64) throw 'SEARCH nested too deeply';
    const t = this.toks[this.i++];
    if (!t) throw 'Missing SEARCH key';
    if (t.t === 'list') {
      const inner = parseSearch(t.v, this.ctx);
      return inner;
    }
    if (t.t !== 'atom') throw 'Bad SEARCH key';
    const key = t.v.toUpperCase();
    if (FLAG_KEYS[key]) return { k: 'flag', flag: FLAG_KEYS[key][0], set: FLAG_KEYS[key][1] };
    return this.keyed(key, depth);
  }

  /** The criterion of a search key other than a flag, its arguments read from the tokens after it. */
  private keyed(key: string, depth: number): Criterion {
    const { ctx } = this;
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
        return { k: 'flag', flag: this.stringArg(), set: true };
      case 'UNKEYWORD':
        return { k: 'flag', flag: this.stringArg(), set: false };
      case 'FROM':
      case 'TO':
      case 'CC':
      case 'BCC':
      case 'SUBJECT':
        return { k: 'header', field: key.toLowerCase(), value: this.stringArg() };
      case 'HEADER': {
        const field = this.stringArg();
        return { k: 'header', field: field.toLowerCase(), value: this.stringArg() };
      }
      case 'BODY':
        return { k: 'body', value: this.stringArg(), headersToo: false };
      case 'TEXT':
        return { k: 'body', value: this.stringArg(), headersToo: true };
      case 'BEFORE':
      case 'ON':
      case 'SINCE':
        return { k: 'date', which: 'internal', op: key.toLowerCase() as 'on', day: this.dateArg() };
      case 'SENTBEFORE':
      case 'SENTON':
      case 'SENTSINCE':
        return { k: 'date', which: 'sent', op: key.slice(4).toLowerCase() as 'on', day: this.dateArg() };
      case 'LARGER':
        return { k: 'size', op: 'larger', n: this.numArg() };
      case 'SMALLER':
        return { k: 'size', op: 'smaller', n: this.numArg() };
      case 'UID':
        return { k: 'seq', ranges: parseSequenceSet(this.stringArg(), ctx.maxUid), uid: true };
      case 'NOT':
        return { k: 'not', c: this.one(depth + 1) };
      case 'OR': {
        const a = this.one(depth + 1);
        return { k: 'or', a, b: this.one(depth + 1) };
      }
      case 'MODSEQ':
        return this.modseq();
      case 'EMAILID':
        return { k: 'emailid', id: this.stringArg() };
      case '$':
        return { k: 'seq', ranges: (ctx.lastResult ?? []).map((u) => [u, u] as [number, number]), uid: true };
      default:
        if (/^[\d*:,]+$/.test(key)) return { k: 'seq', ranges: parseSequenceSet(key, ctx.maxSeq), uid: false };
        throw `Unknown SEARCH key ${key.slice(0, 30)}`;
    }
  }

  private modseq(): Criterion {
    const { toks } = this;
    // An optional entry name and type come first (RFC 7162 3.1.5); they are accepted and ignored.
    if (toks[this.i] && toks[this.i]!.t !== 'atom') {
      this.i += 2;
    } else if (toks[this.i] && toks[this.i + 1] && /^\d+$/.test(textOf(toks[this.i + 1]) ?? '') && !/^\d+$/.test(textOf(toks[this.i]) ?? '')) this.i += 2;
    return { k: 'modseq', n: this.numArg() };
  }

  private stringArg(): string {
    const t = this.toks[this.i++];
    const s = textOf(t);
    if (s === null) throw 'SEARCH key needs a string';
    return s;
  }

  private numArg(): number {
    const s = this.stringArg();
    if (!/^\d{1,20}$/.test(s)) throw `Bad number ${s.slice(0, 20)}`;
    return Number(s);
  }

  private dateArg(): number {
    const s = this.stringArg();
    const d = parseImapDate(s);
    if (!d) throw `Bad date ${s.slice(0, 30)}`;
    return d.getTime();
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
