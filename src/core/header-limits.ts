/**
 * Limits on a message's header section, checked while the message streams
 * in and before any parser sees it. Every entry (SMTP DATA on both
 * listeners, `POST /api/send`, `twoway send`, TWM-fetched bodies, and
 * ingest itself) runs the same checker, so no header parser downstream
 * (mailauth's, ours, libmime's) is ever handed more than these bounds.
 *
 * Why at all: mailauth unfolds header lines with repeated array concat and
 * splice, quadratic in the number of lines; 100,000 folded lines (400 KB,
 * well under the message size limit) held the event loop for about 25 s
 * (docs/reliability.md, "Limits"). The checker itself is one linear scan that
 * stops at the end of the header section (or at the first violation), so
 * the body costs nothing.
 */
import { ReplyError } from './errors.ts';

export interface HeaderLimits {
  /** Octets of the header section, the empty line that ends it included. */
  maxBytes: number;
  /** Physical lines of one field: its first line and its continuation lines. */
  maxLinesPerField: number;
  /** Header fields in the section. */
  maxFields: number;
  /**
   * DKIM-Signature fields: mailauth hashes the body once per distinct
   * (canonicalisation, algorithm, l=) triple, so each signature can cost a
   * pass over the whole body.
   */
  maxDkimSignatures: number;
}

export const DEFAULT_HEADER_LIMITS: HeaderLimits = Object.freeze({
  maxBytes: 64 * 1024,
  maxLinesPerField: 100,
  maxFields: 1000,
  maxDkimSignatures: 10,
});

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const DKIM_NAME = 'dkim-signature';
/** Field-name octets kept per line: enough to recognise DKIM-Signature. */
const NAME_KEEP = DKIM_NAME.length + 1;

/**
 * Feed it the message as it arrives (`push`), then ask `finish()`. It keeps
 * no message bytes but the first few octets of the current line, so memory
 * is constant whatever the input.
 */
export class HeaderLimitChecker {
  private bytes = 0;
  private fields = 0;
  private dkim = 0;
  private fieldLines = 0;
  /** Octets of the current line so far (without its LF). */
  private lineLength = 0;
  /** The current line's first octet (-1 before it). */
  private first = -1;
  /** The field name's octets so far, lower-cased, blanks left out (at most NAME_KEEP). */
  private name = '';
  private nameEnded = false;
  private ended = false;
  private error: ReplyError | null = null;

  constructor(private readonly limits: HeaderLimits) {}

  /** True once the header section has ended or a limit was exceeded: the rest need not be pushed. */
  get done(): boolean {
    return this.ended || this.error !== null;
  }

  get violation(): ReplyError | null {
    return this.error;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (!this.done && pos < chunk.length) {
      const lf = chunk.indexOf(LF, pos);
      const end = lf < 0 ? chunk.length : lf;
      this.take(chunk, pos, end);
      this.bytes += end - pos + (lf < 0 ? 0 : 1);
      if (this.bytes > this.limits.maxBytes) {
        this.error = new ReplyError(552, '5.3.4', `Message header too large: more than ${this.limits.maxBytes} bytes`, { status: 413 });
        return;
      }
      if (lf < 0) return;
      this.endLine();
      pos = lf + 1;
    }
  }

  /** The violation, if any; a message that ends inside its header is judged on what it has. */
  finish(): ReplyError | null {
    if (!this.done && this.lineLength > 0) this.endLine();
    return this.error;
  }

  private take(chunk: Buffer, from: number, to: number): void {
    if (from < to && this.first < 0) this.first = chunk[from]!;
    // mailauth names a field by what precedes its colon, trimmed, so blanks around the name are skipped here too.
    for (let i = from; i < to && !this.nameEnded; i++) {
      const c = chunk[i]!;
      if (c === COLON || this.name.length >= NAME_KEEP) this.nameEnded = true;
      else if (c !== SP && c !== HTAB && c !== CR) this.name += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
    }
    this.lineLength += to - from;
  }

  private endLine(): void {
    const { first, name } = this;
    const length = this.lineLength;
    this.lineLength = 0;
    this.first = -1;
    this.name = '';
    this.nameEnded = false;
    if (length === 0 || (length === 1 && first === CR)) {
      this.ended = true;
      return;
    }
    if ((first === SP || first === HTAB) && this.fields > 0) {
      if (++this.fieldLines > this.limits.maxLinesPerField) {
        this.error = structure(`a header field folded over more than ${this.limits.maxLinesPerField} lines`);
      }
      return;
    }
    this.fieldLines = 1;
    if (++this.fields > this.limits.maxFields) {
      this.error = structure(`more than ${this.limits.maxFields} header fields`);
      return;
    }
    if (name === DKIM_NAME && ++this.dkim > this.limits.maxDkimSignatures) {
      this.error = structure(`more than ${this.limits.maxDkimSignatures} DKIM-Signature fields`);
    }
  }
}

function structure(what: string): ReplyError {
  return new ReplyError(554, '5.6.0', `Message header refused: ${what}`, { status: 422 });
}

/** The same check on a message already in memory (API, CLI, TWM bodies, ingest); throws the refusal. */
export function checkHeaderLimits(raw: Buffer, limits: HeaderLimits): void {
  const checker = new HeaderLimitChecker(limits);
  checker.push(raw);
  const error = checker.finish();
  if (error) throw error;
}
