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

interface Level {
  /** The multipart's boundary, or null for an embedded message/rfc822. */
  boundary: string | null;
}

const BOUNDARY = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))/i;

/** The nesting depth: 0 for a single-part message, 1 for a multipart of leaves, … (at most stopAbove + 1). */
export function mimeNestingDepth(raw: Buffer, stopAbove: number): number {
  // latin1 maps bytes to characters one to one: boundaries are ASCII, and no decoding can fail.
  const lines = raw.toString('latin1').split(/\r?\n/);
  const stack: Level[] = [];
  let max = 0;
  let i = 0;

  /** Reads the header block starting at line i and opens the levels it declares. */
  const enterPart = (): void => {
    for (;;) {
      let contentType = '';
      let current = '';
      for (; i < lines.length; i++) {
        const line = lines[i]!;
        if (line === '') {
          i++;
          break;
        }
        if ((line[0] === ' ' || line[0] === '\t') && current) current += line;
        else current = line;
        if (/^content-type\s*:/i.test(current)) contentType = current.slice(current.indexOf(':') + 1);
      }
      const type = contentType.trim().toLowerCase();
      if (type.startsWith('multipart/')) {
        const m = BOUNDARY.exec(contentType);
        const boundary = m ? (m[1] ?? m[2] ?? '') : '';
        if (boundary === '') return;
        stack.push({ boundary });
      } else if (type.startsWith('message/rfc822') || type.startsWith('message/global')) {
        stack.push({ boundary: null });
        max = Math.max(max, stack.length);
        if (stack.length > stopAbove) return;
        continue; // the embedded message's own header block follows at once
      } else return;
      max = Math.max(max, stack.length);
      return;
    }
  };

  enterPart();
  while (i < lines.length && max <= stopAbove) {
    const line = lines[i++]!;
    if (!line.startsWith('--')) continue;
    for (let k = stack.length - 1; k >= 0; k--) {
      const b = stack[k]!.boundary;
      if (b === null || !line.startsWith(b, 2)) continue;
      const rest = line.slice(2 + b.length).trimEnd();
      if (rest === '--') {
        stack.length = k; // the close delimiter ends this multipart and anything left open inside it
      } else if (rest === '') {
        stack.length = k + 1; // a new part of multipart k
        enterPart();
      } else continue;
      break;
    }
  }
  return max;
}
