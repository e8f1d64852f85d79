/**
 * The MIME structure of a message as IMAP reports it (RFC 9051 7.5.2
 * ENVELOPE and BODYSTRUCTURE), computed once when a message is stored and
 * kept as JSON next to it, so that FETCH never parses a message again. Pure:
 * raw octets in, a tree of parts with byte offsets out.
 *
 * Header values are kept as latin1 strings (one char per octet), so 8-bit
 * and encoded-word headers go back on the wire byte for byte; nothing here
 * decodes charsets.
 */

export interface EnvelopeAddress {
  name: string | null;
  adl: string | null;
  /** null mailbox with null host marks the end of a group; host null marks its start. */
  mailbox: string | null;
  host: string | null;
}

export interface Envelope {
  date: string | null;
  subject: string | null;
  from: EnvelopeAddress[] | null;
  sender: EnvelopeAddress[] | null;
  replyTo: EnvelopeAddress[] | null;
  to: EnvelopeAddress[] | null;
  cc: EnvelopeAddress[] | null;
  bcc: EnvelopeAddress[] | null;
  inReplyTo: string | null;
  messageId: string | null;
}

export interface MimePart {
  type: string;
  subtype: string;
  params: Array<[string, string]>;
  id: string | null;
  description: string | null;
  encoding: string;
  /** Octets of the body (after the header block). */
  size: number;
  /** Lines of the body (text/* and message/rfc822). */
  lines: number;
  md5: string | null;
  disposition: { type: string; params: Array<[string, string]> } | null;
  language: string[] | null;
  location: string | null;
  /** Offsets in the raw message: the part's header block starts, its body starts, its body ends. */
  headerStart: number;
  bodyStart: number;
  end: number;
  parts?: MimePart[];
  /** message/rfc822 (and global): the enclosed message. */
  message?: { envelope: Envelope; body: MimePart };
}

export interface MessageStructure {
  envelope: Envelope;
  body: MimePart;
}

/** Nesting beyond this is treated as an opaque leaf (a hostile message cannot recurse without end). */
const MAX_DEPTH = 40;

export interface HeaderField {
  name: string;
  /** Unfolded value, latin1 string. */
  value: string;
}

/** Where a header block ends: the offset of the body (after the empty line), and of the empty line. */
export function headerEnd(raw: Buffer, from: number, to: number): { headerEnd: number; bodyStart: number } {
  let i = from;
  // An empty part (two boundaries in a row): nothing may be read past its end.
  if (i >= to) return { headerEnd: to, bodyStart: to };
  // A part with no header at all starts with an empty line.
  if (raw[i] === 0x0a) return { headerEnd: i, bodyStart: i + 1 };
  if (raw[i] === 0x0d && raw[i + 1] === 0x0a && i + 1 < to) return { headerEnd: i, bodyStart: i + 2 };
  while (i < to) {
    const nl = raw.indexOf(0x0a, i);
    if (nl < 0 || nl >= to) return { headerEnd: to, bodyStart: to };
    const next = nl + 1;
    if (raw[next] === 0x0a && next < to) return { headerEnd: next, bodyStart: next + 1 };
    if (raw[next] === 0x0d && raw[next + 1] === 0x0a && next + 1 < to) return { headerEnd: next, bodyStart: next + 2 };
    i = next;
  }
  return { headerEnd: to, bodyStart: to };
}

export function parseHeaderFields(block: string): HeaderField[] {
  const out: HeaderField[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '') continue;
    if ((line[0] === ' ' || line[0] === '\t') && out.length > 0) {
      out[out.length - 1]!.value += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push({ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).replace(/^[ \t]+/, '') });
  }
  for (const f of out) f.value = f.value.trim();
  return out;
}

function headerOf(fields: HeaderField[], name: string): string | null {
  const lower = name.toLowerCase();
  const f = fields.find((x) => x.name.toLowerCase() === lower);
  return f ? f.value : null;
}

/** Splits a structured value on `sep` outside quotes, comments and angle brackets. */
function splitOutside(value: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let comment = 0;
  let angle = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted) {
      cur += c;
      if (c === '\\' && i + 1 < value.length) cur += value[++i];
      else if (c === '"') quoted = false;
      continue;
    }
    if (comment > 0) {
      cur += c;
      if (c === '\\' && i + 1 < value.length) cur += value[++i];
      else if (c === '(') comment++;
      else if (c === ')') comment--;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '(') comment = 1;
    else if (c === '<') angle = true;
    else if (c === '>') angle = false;
    if (c === sep && !angle) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

const stripComments = (s: string) => {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      out += c;
      if (c === '\\' && i + 1 < s.length) out += s[++i];
      else if (c === '"') quoted = false;
    } else if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === '(') depth = 1;
    else {
      if (c === '"') quoted = true;
      out += c;
    }
  }
  return out;
};

const unquote = (s: string) => {
  const t = s.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, '$1');
  return t.replace(/\s+/g, ' ');
};

function parseMailbox(text: string): EnvelopeAddress | null {
  const lt = text.lastIndexOf('<');
  let name: string | null = null;
  let spec: string;
  if (lt >= 0) {
    const display = unquote(stripComments(text.slice(0, lt))).trim();
    name = display === '' ? null : display;
    spec = text.slice(lt + 1).replace(/>.*$/, '');
  } else {
    const comment = /\(([^)]*)\)/.exec(text);
    spec = stripComments(text);
    if (comment && comment[1]!.trim() !== '') name = comment[1]!.trim();
  }
  // A source route (@a,@b:user@host) becomes the adl.
  let adl: string | null = null;
  const route = /^\s*(@[^:]*):(.*)$/.exec(spec);
  if (route) {
    adl = route[1]!.trim();
    spec = route[2]!;
  }
  spec = spec.trim();
  if (spec === '' && name === null) return null;
  const at = spec.lastIndexOf('@');
  const mailbox = at >= 0 ? spec.slice(0, at) : spec;
  const host = at >= 0 ? spec.slice(at + 1) : '';
  // An empty local part (`<>`) is MISSING_MAILBOX as in Dovecot and UW-IMAP: NIL with a host would read as a group marker.
  const local = mailbox.trim() === '' ? 'MISSING_MAILBOX' : mailbox.trim();
  return { name, adl, mailbox: local, host: host.trim() === '' ? 'MISSING_DOMAIN' : host.trim() };
}

/** An address-list header as ENVELOPE lists it (groups as start and end markers). */
export function parseAddressList(value: string | null): EnvelopeAddress[] | null {
  if (value === null || value.trim() === '') return null;
  const out: EnvelopeAddress[] = [];
  let rest = value;
  // Groups: `name: a, b;` -- taken apart before splitting on commas.
  for (;;) {
    const parts = splitOutside(rest, ':');
    if (parts.length < 2) break;
    const before = parts[0]!;
    // A colon inside <...> is a route, not a group; splitOutside already skipped those.
    const commaIdx = splitOutside(before, ',');
    const groupName = commaIdx.pop()!;
    for (const m of commaIdx) {
      const a = parseMailbox(m);
      if (a) out.push(a);
    }
    const after = parts.slice(1).join(':');
    const semi = splitOutside(after, ';');
    out.push({ name: null, adl: null, mailbox: unquote(stripComments(groupName)).trim(), host: null });
    for (const m of splitOutside(semi[0]!, ',')) {
      const a = parseMailbox(m);
      if (a) out.push(a);
    }
    out.push({ name: null, adl: null, mailbox: null, host: null });
    rest = semi.slice(1).join(';').replace(/^\s*,/, '');
  }
  for (const m of splitOutside(rest, ',')) {
    const a = parseMailbox(m);
    if (a) out.push(a);
  }
  return out.length > 0 ? out : null;
}

/** Every field of an address header joined (`To:` twice is one list, as Dovecot reads it), or null. */
function addressFields(fields: HeaderField[], name: string): string | null {
  const all = fields.filter((f) => f.name.toLowerCase() === name).map((f) => f.value);
  return all.length === 0 ? null : all.join(', ');
}

export function envelopeOf(fields: HeaderField[]): Envelope {
  const from = parseAddressList(headerOf(fields, 'from'));
  return {
    date: headerOf(fields, 'date'),
    subject: headerOf(fields, 'subject'),
    from,
    sender: parseAddressList(headerOf(fields, 'sender')) ?? from,
    replyTo: parseAddressList(headerOf(fields, 'reply-to')) ?? from,
    to: parseAddressList(addressFields(fields, 'to')),
    cc: parseAddressList(addressFields(fields, 'cc')),
    bcc: parseAddressList(addressFields(fields, 'bcc')),
    inReplyTo: headerOf(fields, 'in-reply-to'),
    messageId: headerOf(fields, 'message-id'),
  };
}

/** `type/subtype; a=b; c="d"` into its value and parameters (RFC 2231 continuations are left as they are). */
export function parseParams(value: string): { value: string; params: Array<[string, string]> } {
  const parts = splitOutside(stripComments(value), ';');
  const params: Array<[string, string]> = [];
  for (const p of parts.slice(1)) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    const k = p.slice(0, eq).trim();
    if (k === '') continue;
    params.push([k, unquote(p.slice(eq + 1))]);
  }
  return { value: parts[0]!.trim(), params };
}

/** Line ends in the body: a last line without one (before a boundary's CRLF) is not counted, as in Dovecot and Cyrus. */
function countLines(raw: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (raw[i] === 0x0a) n++;
  return n;
}

function parsePart(raw: Buffer, start: number, end: number, defaultType: [string, string], depth: number): MimePart {
  const { headerEnd: hEnd, bodyStart } = headerEnd(raw, start, end);
  const fields = parseHeaderFields(raw.toString('latin1', start, hEnd));
  const ct = headerOf(fields, 'content-type');
  let type = defaultType[0];
  let subtype = defaultType[1];
  let params: Array<[string, string]> = [];
  if (ct !== null) {
    const parsed = parseParams(ct);
    const m = /^([^/\s]+)\s*\/\s*([^\s]+)$/.exec(parsed.value);
    if (m) {
      type = m[1]!.toLowerCase();
      subtype = m[2]!.toLowerCase();
      params = parsed.params;
    } else {
      // An unparsable Content-Type means text/plain (RFC 2045 5.2).
      type = 'text';
      subtype = 'plain';
    }
  }
  if (type === 'text' && !params.some(([k]) => k.toLowerCase() === 'charset')) params.push(['charset', 'us-ascii']);
  const disp = headerOf(fields, 'content-disposition');
  const parsedDisp = disp ? parseParams(disp) : null;
  const lang = headerOf(fields, 'content-language');
  const part: MimePart = {
    type,
    subtype,
    params,
    id: headerOf(fields, 'content-id'),
    description: headerOf(fields, 'content-description'),
    encoding: (headerOf(fields, 'content-transfer-encoding') ?? '7BIT').trim() || '7BIT',
    size: end - bodyStart,
    lines: 0,
    md5: headerOf(fields, 'content-md5'),
    disposition: parsedDisp && parsedDisp.value !== '' ? { type: parsedDisp.value, params: parsedDisp.params } : null,
    language: lang ? lang.split(',').map((s) => s.trim()).filter((s) => s !== '') : null,
    location: headerOf(fields, 'content-location'),
    headerStart: start,
    bodyStart,
    end,
  };
  const boundary = params.find(([k]) => k.toLowerCase() === 'boundary')?.[1];
  if (type === 'multipart' && boundary && depth < MAX_DEPTH) {
    part.parts = splitMultipart(raw, bodyStart, end, boundary).map(([s, e]) =>
      parsePart(raw, s, e, subtype === 'digest' ? ['message', 'rfc822'] : ['text', 'plain'], depth + 1),
    );
    if (part.parts.length === 0) part.parts = [parsePart(raw, bodyStart, bodyStart, ['text', 'plain'], depth + 1)];
  } else if (type === 'multipart') {
    // No boundary (or too deep): one empty text part, as other servers report it.
    part.parts = [parsePart(raw, bodyStart, bodyStart, ['text', 'plain'], depth + 1)];
  } else if (type === 'message' && (subtype === 'rfc822' || subtype === 'global') && depth < MAX_DEPTH) {
    const inner = parsePart(raw, bodyStart, end, ['text', 'plain'], depth + 1);
    const innerFields = parseHeaderFields(raw.toString('latin1', bodyStart, headerEnd(raw, bodyStart, end).headerEnd));
    part.message = { envelope: envelopeOf(innerFields), body: inner };
    part.lines = countLines(raw, bodyStart, end);
  } else if (type === 'text') {
    part.lines = countLines(raw, bodyStart, end);
  }
  return part;
}

/** The [start, end) of each body part between boundary lines. */
function splitMultipart(raw: Buffer, from: number, to: number, boundary: string): Array<[number, number]> {
  const delim = Buffer.from(`--${boundary}`, 'latin1');
  const out: Array<[number, number]> = [];
  let partStart = -1;
  let i = from;
  while (i < to) {
    const idx = raw.indexOf(delim, i);
    if (idx < 0 || idx >= to) break;
    const atLineStart = idx === from || raw[idx - 1] === 0x0a;
    const after = idx + delim.length;
    if (!atLineStart) {
      i = after;
      continue;
    }
    const closing = raw[after] === 0x2d && raw[after + 1] === 0x2d;
    // The CRLF before the delimiter belongs to the delimiter.
    let partEnd = idx;
    if (partEnd > from && raw[partEnd - 1] === 0x0a) partEnd--;
    if (partEnd > from && raw[partEnd - 1] === 0x0d) partEnd--;
    if (partStart >= 0) out.push([partStart, Math.max(partStart, partEnd)]);
    if (closing) return out;
    const nl = raw.indexOf(0x0a, after);
    partStart = nl < 0 || nl >= to ? to : nl + 1;
    i = partStart;
  }
  // No closing delimiter: the last part runs to the end.
  if (partStart >= 0) out.push([partStart, to]);
  return out;
}

export function parseStructure(raw: Buffer): MessageStructure {
  const { headerEnd: hEnd } = headerEnd(raw, 0, raw.length);
  const fields = parseHeaderFields(raw.toString('latin1', 0, hEnd));
  return { envelope: envelopeOf(fields), body: parsePart(raw, 0, raw.length, ['text', 'plain'], 0) };
}

/** The part at a section path (1-based numbers); undefined when there is none. */
export function partAt(root: MimePart, path: number[]): MimePart | undefined {
  let cur: MimePart = root;
  for (const [i, n] of path.entries()) {
    // Part N of a message/rfc822 part is the encapsulated message's part N; but the root is the
    // message itself, so its part 1, when it is message/rfc822, is the whole encapsulated message.
    if (cur.message && i > 0) cur = cur.message.body;
    if (cur.parts) {
      const next = cur.parts[n - 1];
      if (!next) return undefined;
      cur = next;
    } else if (n === 1) {
    } else return undefined;
  }
  return cur;
}
