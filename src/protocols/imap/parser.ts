/**
 * The command reader: assembles a command from its line and literals as
 * octets arrive ({n} synchronizing, {n+} non-synchronizing, ~{n} binary,
 * RFC 9051 / 7888 / 3516), under limits on the line and literal sizes, and
 * tokenizes it. No storage, no state beyond the command being read.
 */

export type Token =
  | { t: 'atom'; v: string }
  | { t: 'string'; v: Buffer; literal: boolean; binary: boolean }
  | { t: 'nil' }
  | { t: 'list'; v: Token[] };

export interface RawCommand {
  /** Text pieces with literal octets between them: text, literal, text, ... */
  parts: Array<string | Buffer>;
}

export interface ReaderLimits {
  maxLine: number;
  /** Largest literal for APPEND (APPENDLIMIT). */
  maxLiteral: number;
  /** Largest literal for any other command. */
  maxOtherLiteral: number;
}

export type ReaderEvent =
  | { kind: 'command'; command: RawCommand }
  /** A synchronizing literal is wanted: answer `+` (or refuse with `refuse`). */
  | { kind: 'continue'; size: number; tag: string; command: string }
  /** The line or a literal broke a limit; the rest of the command was discarded. */
  | { kind: 'toobig'; tag: string | null; what: string; fatal?: boolean };

const LITERAL_AT_END = /(~?)\{(\d{1,12})(\+?)\}$/;

/**
 * Feeds octets, yields events. After a `continue` event the caller must call
 * `accept()` (the client was sent `+`) or `refuse()` (it was sent a tagged
 * NO; the client then does not send the literal).
 */
export class CommandReader {
  private buf: Buffer = Buffer.alloc(0);
  private parts: Array<string | Buffer> = [];
  private lineSoFar = 0;
  /** Octets of the literals of the command being read: a MULTIAPPEND's messages together stay under the APPEND limit. */
  private literalTotal = 0;
  private literalLeft = -1;
  private literalChunks: Buffer[] = [];
  private discardLine = false;
  private waiting = false;

  constructor(private readonly limits: ReaderLimits) {}

  /** True while a `continue` is unanswered. */
  get paused(): boolean {
    return this.waiting;
  }

  push(chunk: Buffer): ReaderEvent[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return this.drain();
  }

  accept(): ReaderEvent[] {
    this.waiting = false;
    return this.drain();
  }

  refuse(): ReaderEvent[] {
    this.waiting = false;
    this.literalLeft = -1;
    this.parts = [];
    this.lineSoFar = 0;
    this.literalTotal = 0;
    return this.drain();
  }

  /** Bytes received but not yet taken apart (STARTTLS must find none). */
  get buffered(): number {
    return this.buf.length;
  }

  private drain(): ReaderEvent[] {
    const events: ReaderEvent[] = [];
    while (!this.waiting && this.buf.length > 0) {
      if (this.literalLeft >= 0) {
        this.takeLiteral();
        continue;
      }
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) {
        this.checkUnfinishedLine(events);
        break;
      }
      let line = this.buf.toString('latin1', 0, nl);
      this.buf = this.buf.subarray(nl + 1);
      if (this.discardLine) {
        this.discardLine = false;
        continue;
      }
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (this.takeLine(line, events)) return events;
    }
    return events;
  }

  /** Moves buffered octets into the literal being read; a complete literal becomes the next part. */
  private takeLiteral(): void {
    const n = Math.min(this.literalLeft, this.buf.length);
    this.literalChunks.push(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    this.literalLeft -= n;
    if (this.literalLeft === 0) {
      this.parts.push(Buffer.concat(this.literalChunks));
      this.literalChunks = [];
      this.literalLeft = -1;
    }
  }

  /** No line end buffered yet: a line already over the limit is dropped, and the rest of it up to its end. */
  private checkUnfinishedLine(events: ReaderEvent[]): void {
    if (this.lineSoFar + this.buf.length > this.limits.maxLine) {
      events.push({ kind: 'toobig', tag: this.tagOf(this.buf.toString('latin1', 0, 64)), what: 'Command line too long' });
      this.buf = Buffer.alloc(0);
      this.resetCommand();
      this.discardLine = true;
    }
  }

  /** Forgets the command being read (its parts, line length and literal total). */
  private resetCommand(): void {
    this.parts = [];
    this.lineSoFar = 0;
    this.literalTotal = 0;
  }

  /** A complete line (CR LF removed): it ends the command, or announces a literal. True when reading must stop for good. */
  private takeLine(line: string, events: ReaderEvent[]): boolean {
    this.lineSoFar += line.length;
    if (this.lineSoFar > this.limits.maxLine) {
      events.push({ kind: 'toobig', tag: this.tagOf(String(this.parts[0] ?? line)), what: 'Command line too long' });
      this.resetCommand();
      return false;
    }
    const m = LITERAL_AT_END.exec(line);
    if (!m) {
      this.parts.push(line);
      events.push({ kind: 'command', command: { parts: this.parts } });
      this.resetCommand();
      return false;
    }
    return this.takeLiteralMarker(line, m, events);
  }

  /** A line ending in a literal marker `{n}`: checks the size against the limits and starts reading it. True when reading must stop for good. */
  private takeLiteralMarker(line: string, m: RegExpExecArray, events: ReaderEvent[]): boolean {
    const size = Number(m[2]);
    const nonSync = m[3] === '+';
    const first = String(this.parts[0] ?? line);
    const tag = this.tagOf(first) ?? '*';
    const isAppend = /^\S+\s+(UID\s+)?APPEND\s/i.test(first);
    const limit = isAppend ? this.limits.maxLiteral : this.limits.maxOtherLiteral;
    this.parts.push(line);
    if (size > limit || this.literalTotal + size > limit) {
      this.resetCommand();
      // The client sends a non-synchronizing literal anyway (RFC 7888 4): there is no way back
      // to a command boundary short of reading it all, so the connection ends instead.
      const what = size > limit ? `Literal of ${size} octets is over the limit of ${limit}` : `The literals of one command are over the limit of ${limit} octets together`;
      events.push({ kind: 'toobig', tag, what, fatal: nonSync });
      if (nonSync) {
        this.buf = Buffer.alloc(0);
        this.waiting = true;
        return true;
      }
      return false;
    }
    this.literalLeft = size;
    this.literalTotal += size;
    if (size === 0) {
      this.parts.push(Buffer.alloc(0));
      this.literalLeft = -1;
    }
    if (!nonSync) {
      this.waiting = true;
      events.push({ kind: 'continue', size, tag, command: first.split(/\s+/)[1] ?? '' });
    }
    return false;
  }

  private tagOf(line: string): string | null {
    const m = /^([^\s(){%*"\\\]+]+)\s/.exec(line);
    return m ? m[1]! : null;
  }
}

const ATOM_SPECIALS = new Set(['(', ')', '{', ' ', '"', '\\', ']', '%', '*']);

/** Tokenizes an assembled command. Throws a string (the BAD text) on malformed syntax. */
export function tokenize(cmd: RawCommand): Token[] {
  const root: Token[] = [];
  const stack: Token[][] = [root];
  for (let p = 0; p < cmd.parts.length; p++) {
    const part = cmd.parts[p]!;
    if (typeof part !== 'string') continue; // consumed with the marker before it
    let s = part;
    const lit = LITERAL_AT_END.exec(s);
    let literal: Buffer | null = null;
    let binary = false;
    if (lit && p + 1 < cmd.parts.length && typeof cmd.parts[p + 1] !== 'string') {
      literal = cmd.parts[p + 1] as Buffer;
      binary = lit[1] === '~';
      s = s.slice(0, lit.index);
    }
    tokenizeText(s, stack);
    if (literal) stack[stack.length - 1]!.push({ t: 'string', v: literal, literal: true, binary });
  }
  if (stack.length !== 1) throw 'Unbalanced parenthesis';
  for (const t of root) checkChars(t);
  return root;
}

/** The tokens of one text piece, added to the innermost open list (`stack`, which parentheses open and close). */
function tokenizeText(s: string, stack: Token[][]): void {
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ') {
      i++;
      continue;
    }
    if (c === '(') {
      const list: Token = { t: 'list', v: [] };
      stack[stack.length - 1]!.push(list);
      stack.push(list.v);
      if (stack.length > 64) throw 'Lists nested too deeply';
      i++;
      continue;
    }
    if (c === ')') {
      if (stack.length === 1) throw 'Unbalanced parenthesis';
      stack.pop();
      i++;
      continue;
    }
    if (c === '"') i = readQuoted(s, i, stack[stack.length - 1]!);
    else i = readAtom(s, i, stack[stack.length - 1]!);
  }
}

/** The quoted string opening at `s[i]`, added to `into`; returns the index after its closing quote. */
function readQuoted(s: string, i: number, into: Token[]): number {
  let out = '';
  i++;
  let closed = false;
  while (i < s.length) {
    const d = s[i]!;
    if (d === '\\') {
      const e = s[i + 1];
      if (e !== '"' && e !== '\\') throw 'Bad escape in quoted string';
      out += e;
      i += 2;
      continue;
    }
    if (d === '"') {
      closed = true;
      i++;
      break;
    }
    out += d;
    i++;
  }
  if (!closed) throw 'Unterminated quoted string';
  into.push({ t: 'string', v: Buffer.from(out, 'latin1'), literal: false, binary: false });
  return i;
}

/** The atom (or NIL) starting at `s[i]`, added to `into`; returns the index after it. */
function readAtom(s: string, i: number, into: Token[]): number {
  // `[...]` inside an atom (BODY[HEADER.FIELDS (A B)]) is kept whole, with its `<...>`.
  const start = i;
  let depth = 0;
  while (i < s.length) {
    const d = s[i]!;
    if (d === '[') depth++;
    else if (d === ']') {
      if (depth === 0) break;
      depth--;
    } else if (depth === 0 && (ATOM_SPECIALS.has(d) && d !== '%' && d !== '*' && d !== '\\')) break;
    i++;
  }
  if (depth > 0) throw 'Unbalanced brackets';
  if (i === start) {
    // A lone special (a stray `]` or `{`).
    throw `Unexpected character ${JSON.stringify(s[i])}`;
  }
  const atom = s.slice(start, i);
  into.push(atom.toUpperCase() === 'NIL' ? { t: 'nil' } : { t: 'atom', v: atom });
  return i;
}

function checkChars(t: Token): void {
  if (t.t === 'atom' && /[\x00-\x1f\x7f]/.test(t.v)) throw 'Control characters in an atom';
  if (t.t === 'string' && !t.literal && t.v.includes(0)) throw 'NUL in a quoted string';
  if (t.t === 'list') t.v.forEach(checkChars);
}

/** The text of a string-like token (atom, quoted, literal), as UTF-8. */
export function textOf(t: Token | undefined): string | null {
  if (!t) return null;
  if (t.t === 'atom') return t.v;
  if (t.t === 'string') return t.v.toString('utf8');
  return null;
}
