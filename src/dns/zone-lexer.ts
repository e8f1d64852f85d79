/**
 * Splits RFC 1035 master-file text into entries (one per record or
 * directive), resolving the lexical rules so the parser sees only tokens:
 * `;` comments, parentheses that continue an entry over several lines,
 * quoted strings, and backslash escapes (`\X` is X, `\DDD` is the byte DDD).
 *
 * Known limit: an escaped dot in a name (`a\.b`) comes out as a plain dot.
 */

export interface ZoneToken {
  text: string;
  /** Written in quotes (a TXT character-string, never a name, TTL or type). */
  quoted: boolean;
  line: number;
}

export interface ZoneEntry {
  /** Line of the entry's first token. */
  line: number;
  /** The physical line began with a blank: the owner is the previous entry's. */
  blankOwner: boolean;
  tokens: ZoneToken[];
}

export class ZoneFileError extends Error {
  readonly line: number;

  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = 'ZoneFileError';
    this.line = line;
  }
}

export function lexZone(text: string): ZoneEntry[] {
  const entries: ZoneEntry[] = [];
  let line = 1;
  let depth = 0;
  let openedOn = 0;
  let entry: ZoneEntry = { line: 1, blankOwner: false, tokens: [] };
  let atLineStart = true;
  let i = 0;

  const finishEntry = (): void => {
    if (entry.tokens.length > 0) entries.push(entry);
    entry = { line, blankOwner: false, tokens: [] };
  };
  const pushToken = (token: ZoneToken): void => {
    if (entry.tokens.length === 0) entry.line = token.line;
    entry.tokens.push(token);
  };

  while (i < text.length) {
    const c = text[i] as string;
    if (atLineStart && depth === 0) entry.blankOwner = c === ' ' || c === '\t';
    atLineStart = false;

    if (c === '\n') {
      line++;
      i++;
      atLineStart = true;
      if (depth === 0) finishEntry();
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === ';') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '(') {
      if (depth === 0) openedOn = line;
      depth++;
      i++;
    } else if (c === ')') {
      if (depth === 0) throw new ZoneFileError(line, "unexpected ')' without a matching '('");
      depth--;
      i++;
    } else if (c === '"') {
      const start = line;
      const read = readUntil(text, i + 1, (ch) => ch === '"', line);
      if (text[read.end] !== '"') throw new ZoneFileError(start, 'unterminated quoted string');
      pushToken({ text: read.text, quoted: true, line: start });
      i = read.end + 1;
    } else {
      const read = readUntil(text, i, (ch) => /[\s;()"]/.test(ch), line);
      pushToken({ text: read.text, quoted: false, line });
      i = read.end;
    }
  }
  if (depth > 0) throw new ZoneFileError(openedOn, "'(' is never closed");
  finishEntry();
  return entries;
}

/**
 * Reads characters from `start` until `stop` matches an unescaped character
 * (or a newline inside a quoted string, or the end), decoding escapes.
 * Bytes are collected so that `\DDD` sequences forming UTF-8 decode as such.
 */
function readUntil(text: string, start: number, stop: (ch: string) => boolean, line: number): { text: string; end: number } {
  const bytes: number[] = [];
  let i = start;
  while (i < text.length) {
    const c = text[i] as string;
    if (stop(c) || c === '\n') break;
    if (c === '\\') {
      const digits = /^\d{3}/.exec(text.slice(i + 1, i + 4));
      if (digits) {
        const value = Number(digits[0]);
        if (value > 255) throw new ZoneFileError(line, `escape \\${digits[0]} is not a byte value`);
        bytes.push(value);
        i += 4;
        continue;
      }
      const next = text[i + 1];
      if (next === undefined || next === '\n') throw new ZoneFileError(line, 'backslash at end of line');
      bytes.push(...Buffer.from(next, 'utf8'));
      i += 2;
      continue;
    }
    const cp = text.codePointAt(i) as number;
    const ch = String.fromCodePoint(cp);
    bytes.push(...Buffer.from(ch, 'utf8'));
    i += ch.length;
  }
  return { text: Buffer.from(bytes).toString('utf8'), end: i };
}
