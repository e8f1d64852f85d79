/**
 * A message as the DATA phase sends it (RFC 5321 4.5.2, 2.3.8): every line
 * ending CRLF (a bare CR or LF becomes CRLF: SMTP has no other line end), a
 * line starting with '.' gets one more '.', and `CRLF.CRLF` ends it.
 *
 * One pass over the octets; a message that needs no change (the usual case:
 * the queue holds CRLF text) is written as it is, followed by the terminator,
 * without a copy.
 */
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_END = Buffer.from('.\r\n');
const CRLF_DOT_END = Buffer.from('\r\n.\r\n');

/** The chunks to write, in order: the message (perhaps in pieces) and the terminator. */
export function dataChunks(raw: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  let lineStart = true;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte === CR) {
      if (raw[i + 1] === LF) {
        i++;
      } else {
        // Bare CR: end the line here.
        out.push(raw.subarray(from, i), CRLF);
        from = i + 1;
      }
      lineStart = true;
    } else if (byte === LF) {
      // Bare LF (a CRLF's LF was skipped above).
      out.push(raw.subarray(from, i), CRLF);
      from = i + 1;
      lineStart = true;
    } else {
      if (byte === DOT && lineStart) {
        // The '.' is written twice: once here, once with the rest of the line.
        out.push(raw.subarray(from, i + 1));
        from = i;
      }
      lineStart = false;
    }
  }
  out.push(raw.subarray(from));
  out.push(raw.length > 0 && lineStart ? DOT_END : CRLF_DOT_END);
  return out.filter((b) => b.length > 0);
}

/** The whole DATA block in one buffer (tests, and small messages). */
export function dataBlock(raw: Buffer): Buffer {
  return Buffer.concat(dataChunks(raw));
}
