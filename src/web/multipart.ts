/**
 * A small multipart/form-data reader (RFC 7578) for the one upload form of
 * the web app (the .vcf import). The body arrives whole and bounded by the
 * route's body limit; the reader makes one pass over it with Buffer.indexOf
 * (linear), reads at most MAX_PARTS parts, and returns the text fields and
 * the files as UTF-8 text. Anything it cannot read is a MultipartError (400).
 */

export const MAX_PARTS = 8;
const MAX_HEADER_BYTES = 2048;

export class MultipartError extends Error {
  readonly statusCode = 400;
}

export interface MultipartForm {
  fields: Record<string, string>;
  files: Array<{ field: string; filename: string; text: string; bytes: number }>;
}

/** The boundary parameter of a multipart/form-data Content-Type. */
export function boundaryOf(contentType: string | undefined): string {
  const m = /^multipart\/form-data\s*;(?:.*;)?\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? '');
  if (!m) throw new MultipartError('Not a multipart/form-data body with a boundary');
  return (m[1] ?? m[2])!;
}

function dispositionParam(header: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}="((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(header) ?? new RegExp(`;\\s*${name}=([^;\\s]+)`, 'i').exec(header);
  return m ? m[1]!.replace(/\\(.)/g, '$1') : undefined;
}

export function parseMultipart(body: Buffer, boundary: string): MultipartForm {
  const delimiter = Buffer.from(`--${boundary}`);
  const out: MultipartForm = { fields: Object.create(null) as Record<string, string>, files: [] };
  let at = body.indexOf(delimiter);
  if (at < 0) throw new MultipartError('The body has no part');
  let parts = 0;
  for (;;) {
    at += delimiter.length;
    // `--` after a delimiter closes the body.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return out;
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) throw new MultipartError('A part delimiter is not followed by CRLF');
    at += 2;
    if (++parts > MAX_PARTS) throw new MultipartError(`More than ${MAX_PARTS} parts`);
    const headerEnd = body.indexOf('\r\n\r\n', at);
    if (headerEnd < 0 || headerEnd - at > MAX_HEADER_BYTES) throw new MultipartError('A part has no end of headers, or headers too large');
    const headers = body.subarray(at, headerEnd).toString('utf8').split('\r\n');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) throw new MultipartError('The body ends inside a part');
    const content = body.subarray(headerEnd + 4, next);
    const disposition = headers.find((h) => /^content-disposition\s*:/i.test(h));
    const name = disposition && /:\s*form-data\s*(;|$)/i.test(disposition) ? dispositionParam(disposition, 'name') : undefined;
    if (name === undefined) throw new MultipartError('A part has no Content-Disposition: form-data with a name');
    const filename = dispositionParam(disposition!, 'filename');
    if (filename !== undefined) out.files.push({ field: name, filename, text: content.toString('utf8'), bytes: content.length });
    else if (!(name in out.fields)) out.fields[name] = content.toString('utf8');
    at = next + 2;
  }
}
