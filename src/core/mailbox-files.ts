/**
 * The two on-disk mailbox formats `twoway import` reads, as pure functions
 * (the CLI does the file I/O): mbox (one file, messages separated by
 * `From ` lines, mboxo and mboxrd quoting) and the flags in a Maildir file
 * name (`…:2,FRS`).
 */

export interface MboxMessage {
  /** The message with CRLF line ends, the `From ` line removed and `>From ` unquoted. */
  raw: Buffer;
  /** The date of the `From ` line, when it has one that parses. */
  date: Date | null;
  /** Flags from the `Status:` and `X-Status:` headers mutt and others write. */
  flags: string[];
  /** 1-based line of the `From ` separator in the file (for error messages). */
  line: number;
}

const FROM_LINE = /^From \S*\s+(.*)$/;

function fromLineDate(line: string): Date | null {
  const m = FROM_LINE.exec(line);
  if (!m) return null;
  // asctime: `Sat Jan  3 01:05:34 1996`, sometimes with a zone; Date parses both.
  const d = new Date(m[1]!.trim());
  return Number.isNaN(d.getTime()) ? null : d;
}

function statusFlags(header: string): string[] {
  const flags: string[] = [];
  const status = /^Status:[ \t]*(\S*)/im.exec(header)?.[1] ?? '';
  const x = /^X-Status:[ \t]*(\S*)/im.exec(header)?.[1] ?? '';
  if (status.includes('R')) flags.push('\\Seen');
  if (x.includes('A')) flags.push('\\Answered');
  if (x.includes('F')) flags.push('\\Flagged');
  if (x.includes('T')) flags.push('\\Draft');
  if (x.includes('D')) flags.push('\\Deleted');
  return flags;
}

/**
 * Splits an mbox incrementally: push() chunks as they are read, end() at the
 * end of the file. Only the current message is held in memory. A file that
 * does not start with a `From ` line is not an mbox (MboxError).
 */
export class MboxSplitter {
  private partial = '';
  private lines: string[] = [];
  private fromLine: string | null = null;
  private fromAt = 0;
  private lineNo = 0;
  private previousBlank = true;

  push(chunk: Buffer): MboxMessage[] {
    // latin1 keeps every octet as one char: 8-bit headers survive the round trip unchanged.
    const text = this.partial + chunk.toString('latin1');
    const parts = text.split('\n');
    this.partial = parts.pop()!;
    const out: MboxMessage[] = [];
    for (const line of parts) this.line(line.endsWith('\r') ? line.slice(0, -1) : line, out);
    return out;
  }

  end(): MboxMessage[] {
    const out: MboxMessage[] = [];
    if (this.partial !== '') this.line(this.partial, out);
    this.partial = '';
    this.flush(out);
    if (this.fromLine === null && this.lineNo > 0 && out.length === 0) throw new MboxError('the file does not start with a "From " line: not an mbox file');
    return out;
  }

  private line(line: string, out: MboxMessage[]): void {
    this.lineNo++;
    if (line.startsWith('From ') && (this.previousBlank || this.fromLine === null)) {
      this.flush(out);
      this.fromLine = line;
      this.fromAt = this.lineNo;
      this.previousBlank = false;
      return;
    }
    if (this.fromLine === null) {
      if (line.trim() === '') return;
      throw new MboxError(`line ${this.lineNo}: the file does not start with a "From " line: not an mbox file`);
    }
    this.previousBlank = line === '';
    // mboxrd quotes every `>*From ` line with one more `>`; mboxo only `From ` (the same for those).
    this.lines.push(/^>+From /.test(line) ? line.slice(1) : line);
  }

  private flush(out: MboxMessage[]): void {
    if (this.fromLine === null) return;
    // The blank line before the next `From ` belongs to the separator, not to the message.
    if (this.lines.length > 0 && this.lines[this.lines.length - 1] === '') this.lines.pop();
    const text = this.lines.join('\r\n') + '\r\n';
    const headerEnd = text.indexOf('\r\n\r\n');
    out.push({
      raw: Buffer.from(text, 'latin1'),
      date: fromLineDate(this.fromLine),
      flags: statusFlags(headerEnd < 0 ? text : text.slice(0, headerEnd)),
      line: this.fromAt,
    });
    this.lines = [];
  }
}

export class MboxError extends Error {}

/** The IMAP flags of a Maildir file name's info part (`:2,` then letters in ASCII order). */
export function maildirFlags(fileName: string): string[] {
  const info = /:2,([A-Za-z]*)$/.exec(fileName)?.[1] ?? '';
  const map: Record<string, string> = { D: '\\Draft', F: '\\Flagged', R: '\\Answered', S: '\\Seen', T: '\\Deleted' };
  return [...info].flatMap((c) => (map[c] ? [map[c]!] : []));
}

/** Why a blob is not a message twoway should store, or null when it looks like one. */
export function notAMessage(raw: Buffer): string | null {
  if (raw.length === 0 || raw.toString('latin1').trim() === '') return 'empty message';
  const firstLine = raw.subarray(0, Math.min(raw.length, 1000)).toString('latin1').split(/\r?\n/, 1)[0]!;
  if (!/^[!-9;-~]+:/.test(firstLine)) return 'no header: the first line is not a header field';
  return null;
}
