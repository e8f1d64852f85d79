/**
 * Reads the facts the policy and the Screener need from a message's header
 * block, without parsing the MIME body: ingest runs this for every message,
 * so it only looks at the bytes before the first empty line.
 */
import { createRequire } from 'node:module';
import { fromIdentity } from './from.ts';

// libmime (with iconv-lite's and encoding-japanese's tables) is loaded on the
// first encoded word, not at import: CLI commands that never decode one start faster.
let libmime: typeof import('libmime').default | undefined;
const loadLibmime = () => (libmime ??= createRequire(import.meta.url)('libmime') as typeof import('libmime').default);

export interface Header {
  /** Lower-case field name. */
  name: string;
  /** Unfolded value, leading whitespace removed. */
  value: string;
}

/** Splits raw into header block and body at the first empty line (CRLF or LF). */
export function headerBlockEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + 4;
  if (lf >= 0) return lf + 2;
  return raw.length;
}

export function parseHeaders(raw: Buffer): Header[] {
  const block = raw.subarray(0, headerBlockEnd(raw)).toString('utf8');
  const headers: Header[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '') continue;
    const last = headers[headers.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      last.value += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    // A line without a colon is not a header; RFC 5322 has no place for it, skip it.
    if (colon <= 0) continue;
    headers.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  return headers;
}

export interface MessageFacts {
  /**
   * The author identity (mail/from.ts): the one mailbox of the one From:
   * field, in parseAddress's normal form; null when there is none or any
   * doubt, and `fromProblem` says why.
   */
  from: string | null;
  /** Why `from` is null (no, several or unparsable From:), else null. */
  fromProblem: string | null;
  subject: string | null;
  messageId: string | null;
  listId: string | null;
  /** Auto-Submitted is present and not "no" (RFC 3834). */
  autoSubmitted: boolean;
  receivedCount: number;
  /**
   * The message carries the ownership-confirmation marker: exactly one
   * `TWM-Purpose` field, whose value is `ownership-confirmation`
   * (case-insensitive, comments and whitespace ignored; docs/protocol.md
   * 9.2). Several fields, or another value, count as unmarked.
   */
  ownershipConfirmation: boolean;
}

/**
 * C0 controls (but TAB) and DEL. Header values are stored and shown as text:
 * PostgreSQL refuses NUL in text columns (found by test/fuzz-mime.test.ts,
 * FUZZ_SEED=1728766529 case 329: a 451 4.3.0 for a Subject with a NUL), and
 * escape sequences would reach terminals through `twoway mail list`.
 */
const CONTROL = /[\u0000-\u0008\u000A-\u001F\u007F]/;
const CONTROLS = new RegExp(CONTROL.source, 'g');

function withoutControls(value: string): string {
  return value.replace(CONTROLS, '');
}

function nullableText(value: string | null): string | null {
  return value === null ? null : withoutControls(value);
}

/** Registered TWM-Purpose values (docs/protocol.md 11.3). */
export const OWNERSHIP_CONFIRMATION = 'ownership-confirmation';

export function messageFacts(headers: Header[]): MessageFacts {
  const first = (name: string) => headers.find((h) => h.name === name)?.value ?? null;
  const identity = fromIdentity(headers);
  const subject = first('subject');
  const listId = first('list-id');
  const autoSubmitted = first('auto-submitted');
  const precedence = first('precedence');
  return {
    from: identity.address,
    fromProblem: identity.problem,
    subject: subject === null ? null : withoutControls(decodeWords(subject)).slice(0, 998),
    messageId: nullableText(first('message-id')),
    listId: nullableText(listId),
    autoSubmitted:
      (autoSubmitted !== null && autoSubmitted.toLowerCase() !== 'no') ||
      (precedence !== null && /^(bulk|junk|auto_reply)$/i.test(precedence) && listId === null),
    receivedCount: headers.filter((h) => h.name === 'received').length,
    ownershipConfirmation: purposeOf(headers) === OWNERSHIP_CONFIRMATION,
  };
}

/** The single TWM-Purpose token, lower-cased, or null (absent, repeated or malformed). */
function purposeOf(headers: Header[]): string | null {
  const fields = headers.filter((h) => h.name === 'twm-purpose');
  if (fields.length !== 1) return null;
  // CFWS: drop (non-nested) comments and whitespace around the token.
  const token = fields[0]!.value.replace(/\([^()]*\)/g, ' ').trim();
  return /^[A-Za-z][A-Za-z0-9-]{0,62}$/.test(token) ? token.toLowerCase() : null;
}

/** RFC 2047 encoded words decoded (libmime); a malformed one stays as written. */
export function decodeWords(value: string): string {
  try {
    return loadLibmime().decodeWords(value);
  } catch {
    // A malformed encoded-word is shown as written rather than failing the message.
    return value;
  }
}
