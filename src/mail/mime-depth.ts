/**
 * How deeply a message's MIME structure nests (multipart parts and embedded
 * message/rfc822), found by a single scan of the lines without decoding any
 * part. Ingest refuses messages nested deeper than a limit, as Postfix does
 * with `mime_nesting_limit` (100): no legitimate message comes near it, and
 * every client that renders the message later would recurse that deep.
 *
 * The scan follows the boundaries it has seen declared, tolerating what
 * real mail gets wrong (missing close delimiters, a part closed by an outer
 * boundary). It stops as soon as the depth exceeds `stopAbove`.
 */

/** Deepest MIME nesting accepted (multipart levels and embedded messages), as Postfix's default. */
export const MAX_MIME_NESTING = 100;

interface Level {
  /** The multipart's boundary (trailing blanks removed), or null for an embedded message/rfc822. */
  boundary: string | null;
}

const BOUNDARY = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))/i;
const CONTENT_TYPE = /^content-type\s*:/i;

/**
 * The nesting depth: 0 for a single-part message, 1 for a multipart of leaves, … (at most stopAbove + 1).
 *
 * Linear in the message: lines are found with indexOf (never split into an
 * array), a folded header field is joined once when it ends, the body is
 * searched only for lines starting with "--", and each such line is looked up
 * by its text in a map of the open boundaries. (The first version split the
 * message into lines and re-sliced a folded Content-Type after each of its
 * lines: 40,000 folded lines in a part header, 280 KB inside the body where
 * the header limits do not reach, took 57 s.)
 */
export function mimeNestingDepth(raw: Buffer, stopAbove: number): number {
  const steps = depthSteps(raw, stopAbove);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Time between two yields to the event loop in `mimeNestingDepthSliced`. */
const SLICE_MS = 10;

/**
 * The same, yielding to the event loop about every SLICE_MS: a 25 MB message
 * of millions of tiny parts is linear work but seconds of it, and other
 * sessions and listeners must not wait for it.
 */
export async function mimeNestingDepthSliced(raw: Buffer, stopAbove: number): Promise<number> {
  const steps = depthSteps(raw, stopAbove);
  let slice = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - slice >= SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      slice = performance.now();
    }
  }
}

/** Lines read between two chances to yield. */
const STEP_LINES = 2048;

function depthSteps(raw: Buffer, stopAbove: number): Generator<void, number> {
  return new DepthScan(raw, stopAbove).steps();
}

/** One scan of a message: the levels open at `pos`, and the deepest seen so far. */
class DepthScan {
  private lines = 0;
  private readonly n: number;
  private readonly stack: Level[] = [];
  /** Open boundaries: the stack indices that have each, innermost last. */
  private readonly open = new Map<string, number[]>();
  private max = 0;
  /** Start of the next line; n + 1 once past the last (split semantics: "a\n" has the lines "a" and ""). */
  private pos = 0;

  constructor(
    private readonly raw: Buffer,
    private readonly stopAbove: number,
  ) {
    this.n = raw.length;
  }

  /** The walk over the body: each line starting with "--" that names an open boundary opens or closes a part. */
  *steps(): Generator<void, number> {
    const { raw, n, stopAbove } = this;
    yield* this.enterPart();
    while (this.pos <= n && this.max <= stopAbove) {
      if (++this.lines % STEP_LINES === 0) yield;
      // The next line that starts with "--": the one at pos, or the one after the next "\n--".
      let start = this.pos;
      if (raw[this.pos] !== 0x2d || raw[this.pos + 1] !== 0x2d) {
        const at = raw.indexOf('\n--', this.pos, 'latin1');
        if (at < 0) break;
        start = at + 1;
      }
      const { end, next } = this.line(start);
      this.pos = next;
      if (this.open.size === 0) continue;
      const rest = this.text(start + 2, end).trimEnd();
      // "--b" opens a new part of b's multipart, "--b--" closes it; the innermost match wins.
      const part = this.innermost(rest);
      const close = rest.endsWith('--') ? this.innermost(rest.slice(0, -2).trimEnd()) : -1;
      if (close > part) {
        this.truncate(close); // the close delimiter ends this multipart and anything left open inside it
      } else if (part >= 0) {
        this.truncate(part + 1); // a new part of multipart `part`
        yield* this.enterPart();
      }
    }
    return this.max;
  }

  // Searched as bytes (no copy of the whole message); the few lines looked at are read as latin1,
  // which maps bytes to characters one to one: boundaries are ASCII, and no decoding can fail.
  private text(start: number, end: number): string {
    return this.raw.toString('latin1', start, end);
  }

  /** The line at pos: its end (without CR LF) and where the next one starts. */
  private line(start: number): { end: number; next: number } {
    const { raw, n } = this;
    const lf = raw.indexOf(0x0a, start);
    if (lf < 0) return { end: n, next: n + 1 };
    return { end: lf > start && raw[lf - 1] === 0x0d ? lf - 1 : lf, next: lf + 1 };
  }

  private push(level: Level): void {
    const { stack, open } = this;
    stack.push(level);
    if (level.boundary === null) return;
    const list = open.get(level.boundary);
    if (list) list.push(stack.length - 1);
    else open.set(level.boundary, [stack.length - 1]);
  }

  private truncate(length: number): void {
    const { stack, open } = this;
    while (stack.length > length) {
      const b = stack.pop()!.boundary;
      if (b === null) continue;
      const list = open.get(b)!;
      list.pop();
      if (list.length === 0) open.delete(b);
    }
  }

  private innermost(key: string): number {
    const list = this.open.get(key);
    return list ? list[list.length - 1]! : -1;
  }

  /** The Content-Type value of the header field from fieldStart to fieldEnd, folded lines joined; null for another field. */
  private contentTypeOfField(fieldStart: number, fieldEnd: number): string | null {
    // Only a field whose first line names Content-Type is joined (once, when it ends).
    if (fieldStart < 0 || !/^content-type/i.test(this.text(fieldStart, Math.min(fieldStart + 12, fieldEnd)))) return null;
    const field = this.text(fieldStart, fieldEnd).replace(/\r?\n/g, '');
    return CONTENT_TYPE.test(field) ? field.slice(field.indexOf(':') + 1) : null;
  }

  /** Reads the header block at pos and returns its (last) Content-Type value, folded lines joined. */
  private *contentTypeOfHeader(): Generator<void, string> {
    const { raw, n } = this;
    let contentType = '';
    let fieldStart = -1;
    let fieldEnd = -1;
    while (this.pos <= n) {
      if (++this.lines % STEP_LINES === 0) yield;
      const start = this.pos;
      const { end, next } = this.line(start);
      this.pos = next;
      if (end === start) break; // the empty line ends the header
      const c = raw[start];
      if ((c === 32 || c === 9) && fieldStart >= 0) {
        fieldEnd = end;
        continue;
      }
      contentType = this.contentTypeOfField(fieldStart, fieldEnd) ?? contentType;
      fieldStart = start;
      fieldEnd = end;
    }
    return this.contentTypeOfField(fieldStart, fieldEnd) ?? contentType;
  }

  /** Reads the header block at pos and opens the levels it declares. */
  private *enterPart(): Generator<void, void> {
    for (;;) {
      const contentType = yield* this.contentTypeOfHeader();
      const type = contentType.trim().toLowerCase();
      if (type.startsWith('multipart/')) {
        const m = BOUNDARY.exec(contentType);
        const boundary = (m ? (m[1] ?? m[2] ?? '') : '').trimEnd();
        if (boundary === '') return;
        this.push({ boundary });
      } else if (type.startsWith('message/rfc822') || type.startsWith('message/global')) {
        this.push({ boundary: null });
        this.max = Math.max(this.max, this.stack.length);
        if (this.stack.length > this.stopAbove) return;
        continue; // the embedded message's own header block follows at once
      } else return;
      this.max = Math.max(this.max, this.stack.length);
      return;
    }
  }
}
