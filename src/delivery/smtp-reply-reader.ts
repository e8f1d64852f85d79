/**
 * Splits what an SMTP server sends into replies (RFC 5321 4.2): lines of
 * `NNN-text` continued by a last `NNN text` (or a bare `NNN`).
 *
 * Everything a server sends is untrusted, so the reader is bounded: a line
 * longer than `MAX_LINE` octets or a reply of more than `MAX_LINES` lines is
 * a protocol error, as is a line without a reply code. Bare LF ends a line
 * too (some servers send it); the CR is dropped either way.
 */

/** One reply: its code and its lines as they arrived (`250-first`, `250 last`), for smtp-replies.ts. */
export interface SmtpReply {
  readonly code: number;
  readonly lines: readonly string[];
}

/** RFC 5321 allows 512 octets per reply line; real servers send a bit more. */
export const MAX_LINE = 4096;
/** EHLO replies are the longest legitimate ones: a few dozen lines. */
export const MAX_LINES = 128;

export class ReplyProtocolError extends Error {}

const LINE = /^([2-5]\d\d)(?:([ -])(.*))?$/s;

export class ReplyReader {
  /** Bytes of the line not yet ended. */
  #partial: Buffer | undefined;
  /** Lines of the reply not yet ended by its last line. */
  #lines: string[] = [];
  #code = 0;

  /** The replies `chunk` completes, in order. Throws ReplyProtocolError on anything that is not SMTP. */
  push(chunk: Buffer): SmtpReply[] {
    const out: SmtpReply[] = [];
    let data = this.#partial ? Buffer.concat([this.#partial, chunk]) : chunk;
    this.#partial = undefined;
    let start = 0;
    for (;;) {
      const lf = data.indexOf(0x0a, start);
      if (lf < 0) break;
      const end = lf > start && data[lf - 1] === 0x0d ? lf - 1 : lf;
      if (end - start > MAX_LINE) throw new ReplyProtocolError(`reply line longer than ${MAX_LINE} octets`);
      const reply = this.#line(data.toString('utf8', start, end));
      if (reply) out.push(reply);
      start = lf + 1;
    }
    if (start < data.length) {
      data = data.subarray(start);
      if (data.length > MAX_LINE + 1) throw new ReplyProtocolError(`reply line longer than ${MAX_LINE} octets`);
      // A copy: the socket's chunk may be a slice of a larger pooled buffer.
      this.#partial = Buffer.from(data);
    }
    return out;
  }

  /** True while part of a reply has arrived (a line or lines of a multi-line one). */
  get pending(): boolean {
    return this.#partial !== undefined || this.#lines.length > 0;
  }

  #line(line: string): SmtpReply | undefined {
    const m = LINE.exec(line);
    if (!m) throw new ReplyProtocolError(`malformed reply line ${JSON.stringify(line.slice(0, 80))}`);
    const code = Number(m[1]);
    if (this.#lines.length > 0 && code !== this.#code) throw new ReplyProtocolError(`reply code changed from ${this.#code} to ${code} within a reply`);
    this.#code = code;
    this.#lines.push(line);
    if (m[2] === '-') {
      if (this.#lines.length >= MAX_LINES) throw new ReplyProtocolError(`reply of more than ${MAX_LINES} lines`);
      return undefined;
    }
    const reply = { code, lines: this.#lines };
    this.#lines = [];
    return reply;
  }
}
