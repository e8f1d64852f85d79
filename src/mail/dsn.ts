/**
 * Delivery status notifications (RFC 3464, in an RFC 6522 multipart/report):
 *
 *   1. text/plain: what happened, in words, for the person who sent the mail;
 *   2. message/delivery-status: the same facts for programs (per-message
 *      Reporting-MTA and Arrival-Date, per-recipient Final-Recipient, Action,
 *      Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date, and for a
 *      delay Will-Retry-Until);
 *   3. text/rfc822-headers: the header block of the original, so that the
 *      sender can tell which message it was without us returning the body.
 *
 * The result is wire-ready: CRLF line endings, no line over 998 octets, and
 * `Auto-Submitted: auto-replied` (RFC 3834) so that well-behaved responders
 * never answer it. Loop prevention proper (no DSN for a null sender, the DSN
 * itself sent with a null sender) is the caller's job.
 *
 * The delivery-status part is kept to US-ASCII (RFC 3464 predates RFC 6533's
 * message/global-delivery-status): non-ASCII characters in addresses and
 * replies are written as RFC 6533 `\x{HEX}` escapes.
 */
import { randomBytes } from 'node:crypto';
import { formatReply, statusOf, type Reply } from '../core/reply.ts';
import { formatRfc5322Date } from './date.ts';

export type DsnKind = 'failed' | 'delayed';

export interface DsnRecipient {
  recipient: string;
  /** The remote reply (`550 5.1.1 …`) or a local description (`4.4.1 connection refused …`): Status and Diagnostic-Code. */
  reply: Reply;
  /** An RFC 3463 Status other than the reply's own, e.g. 4.4.7 when the queue gave up. */
  status?: string;
  /** Host name of the remote MTA that gave the reply, when known. */
  remoteMta?: string;
  /** Shown in the human-readable part only, e.g. "gave up after 12 attempts over 5 days". */
  note?: string;
  lastAttemptAt?: Date;
}

export interface DsnInput {
  /** This host's name (Reporting-MTA: dns; …). */
  reportingMta: string;
  kind: DsnKind;
  /** The original envelope sender, who receives the DSN. */
  to: string;
  /** Message-ID of the original, if it had one. */
  originalMessageId: string | null;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** The header block of the original message (LF or CRLF). */
  originalHeaders: string;
  /** The From: address, e.g. MAILER-DAEMON@hostname. */
  postmaster: string;
  /** For `delayed`: when the queue will give up (Will-Retry-Until, and said in words). */
  retryUntil?: Date;
  /** Date: of the DSN; the current time by default. */
  date?: Date;
  /** Message-ID of the DSN; a random one under reportingMta by default. */
  messageId?: string;
}

export const DSN_SUBJECTS: Readonly<Record<DsnKind, string>> = Object.freeze({
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
});

const MAX_LINE = 998;
const TEXT_WIDTH = 76;

export function buildDsn(input: DsnInput): Buffer {
  const date = input.date ?? new Date();
  const human = humanText(input, date);
  const status = deliveryStatus(input);
  const headers = originalHeaderLines(input.originalHeaders);
  const boundary = pickBoundary([human, status, headers.join('\n')]);
  const humanAscii = isAscii(human);

  const lines: string[] = [
    `From: Mail Delivery System <${oneLine(input.postmaster)}>`,
    `To: <${oneLine(input.to)}>`,
    `Subject: ${DSN_SUBJECTS[input.kind]}`,
    `Date: ${formatRfc5322Date(date)}`,
    `Message-ID: ${oneLine(input.messageId ?? `<${date.getTime().toString(36)}.${randomBytes(8).toString('hex')}@${oneLine(input.reportingMta)}>`)}`,
    'MIME-Version: 1.0',
    'Auto-Submitted: auto-replied',
    'Content-Type: multipart/report; report-type=delivery-status;',
    ` boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    // Base64 only when needed, so that the common (ASCII) notice stays readable as it is stored.
    `Content-Transfer-Encoding: ${humanAscii ? '7bit' : 'base64'}`,
    '',
    ...(humanAscii ? human.split('\n') : base64Lines(human)),
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    ...status.split('\n'),
    '',
  ];
  if (headers.length > 0) {
    lines.push(
      `--${boundary}`,
      'Content-Description: Undelivered Message Headers',
      'Content-Type: text/rfc822-headers',
      // RFC 6532 headers may carry UTF-8; say so rather than pretend to be 7bit.
      `Content-Transfer-Encoding: ${headers.every(isAscii) ? '7bit' : '8bit'}`,
      '',
      ...headers,
      '',
    );
  }
  lines.push(`--${boundary}--`, '');
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** A duration in the largest unit that fits: "5 days", "4 hours", "1.5 days", "3 minutes". */
export function describeDuration(ms: number): string {
  const units: Array<[string, number]> = [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
  ];
  for (const [unit, size] of units) {
    if (ms >= size) {
      const value = Math.round((ms / size) * 10) / 10;
      return `${value} ${unit}${value === 1 ? '' : 's'}`;
    }
  }
  const seconds = Math.max(0, Math.round(ms / 1000));
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}


function humanText(input: DsnInput, date: Date): string {
  const host = oneLine(input.reportingMta);
  const out: string[] = [`This is the mail system at host ${host}.`, ''];
  const which = input.originalMessageId
    ? `Your message ${oneLine(input.originalMessageId)}, received on ${formatRfc5322Date(input.arrivalDate)},`
    : `Your message received on ${formatRfc5322Date(input.arrivalDate)}`;
  if (input.kind === 'failed') {
    out.push(
      ...wrap(`${which} could not be delivered to the recipients listed below. This is a permanent failure: the mail system has stopped trying, and the message was not delivered to them.`),
    );
  } else {
    out.push('THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE.', '');
    const waited = describeDuration(date.getTime() - input.arrivalDate.getTime());
    const until = input.retryUntil ? ` until ${formatRfc5322Date(input.retryUntil)}` : '';
    out.push(
      ...wrap(`${which} has not yet been delivered to the recipients listed below after ${waited}. Delivery is still being attempted: the mail system will keep trying${until}, and will send you another notice only if it gives up.`),
    );
  }
  out.push('');
  for (const r of input.recipients) {
    out.push(`  <${oneLine(r.recipient)}>`);
    if (r.note) out.push(...wrap(oneLine(r.note), '      '));
    const said = r.remoteMta ? `${oneLine(r.remoteMta)} said: ` : 'Reply: ';
    out.push(...wrap(said + oneLine(formatReply(r.reply)), '      '), '');
  }
  out.push(...wrap('The headers of your message are attached. For help, forward this notice to your postmaster.'));
  return out.join('\n');
}

function deliveryStatus(input: DsnInput): string {
  const fields: string[] = [];
  const perMessage = [field('Reporting-MTA', `dns; ${ascii(input.reportingMta)}`), field('Arrival-Date', formatRfc5322Date(input.arrivalDate))];
  const perRecipient = input.recipients.map((r) => {
    const fallback = input.kind === 'failed' ? '5.0.0' : '4.0.0';
    const status = r.status ?? statusOf(r.reply, fallback);
    const lines = [
      field('Final-Recipient', `rfc822; ${ascii(r.recipient)}`),
      field('Action', input.kind),
      // A status is a class digit and two numbers (RFC 3463); anything else a caller passed is replaced by the class default.
      field('Status', /^[245]\.\d{1,3}\.\d{1,3}$/.test(status) ? status : fallback),
    ];
    if (r.remoteMta) lines.push(field('Remote-MTA', `dns; ${ascii(r.remoteMta)}`));
    // RFC 3464 2.3.6: "smtp" only for an actual SMTP reply (one with a basic code); a local description gets our own X- type, as Postfix does.
    const type = r.reply.code !== null ? 'smtp' : 'X-Twoway';
    lines.push(field('Diagnostic-Code', `${type}; ${ascii(formatReply(r.reply))}`));
    if (r.lastAttemptAt) lines.push(field('Last-Attempt-Date', formatRfc5322Date(r.lastAttemptAt)));
    if (input.kind === 'delayed' && input.retryUntil) lines.push(field('Will-Retry-Until', formatRfc5322Date(input.retryUntil)));
    return lines.join('\n');
  });
  fields.push(perMessage.join('\n'), ...perRecipient);
  // Groups are separated by one empty line (RFC 3464 2.1).
  return fields.join('\n\n');
}

/** A "Name: value" field folded at spaces to about 78 columns, never over 998. */
function field(name: string, value: string): string {
  const words = value.split(' ').filter((w) => w !== '');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const word of words) {
    for (const piece of hardSplit(word, MAX_LINE - 1)) {
      // Fold before a word that would pass 78 columns, unless the line holds nothing to fold after yet.
      if (line !== '' && line !== `${name}:` && line.length + 1 + piece.length > 78) {
        lines.push(line);
        line = '';
      }
      line += ` ${piece}`;
    }
  }
  lines.push(line);
  return lines.join('\n');
}

/** The original header block as lines: CRLF-normalised, stopped at the first empty line, long lines folded. */
function originalHeaderLines(block: string): string[] {
  const lines: string[] = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === '') break;
    // 997: a continuation gains a leading space and must still fit in 998.
    const [first, ...rest] = hardSplit(line, MAX_LINE - 1);
    // A continuation line starts with a space, so a reader unfolds it back into the same field.
    lines.push(first ?? '', ...rest.map((part) => ` ${part}`));
  }
  return lines;
}

/** Wraps text at spaces to TEXT_WIDTH columns (words longer than a line are split at 998). */
function wrap(text: string, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ').filter((w) => w !== '')) {
    for (const piece of hardSplit(word, MAX_LINE - indent.length - 1)) {
      if (line !== '' && indent.length + line.length + 1 + piece.length > TEXT_WIDTH) {
        lines.push(indent + line);
        line = '';
      }
      line = line === '' ? piece : `${line} ${piece}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

/** Splits a string into pieces of at most `max` UTF-8 octets, never inside a character. */
function hardSplit(text: string, max: number): string[] {
  if (Buffer.byteLength(text) <= max) return [text];
  const pieces: string[] = [];
  let piece = '';
  let size = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (size + n > max) {
      pieces.push(piece);
      piece = '';
      size = 0;
    }
    piece += ch;
    size += n;
  }
  if (piece !== '') pieces.push(piece);
  return pieces;
}

/** Control characters (CR, LF, …) become spaces: nothing the caller passes can start a new header or part. */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

/** US-ASCII for the delivery-status part: RFC 6533 `\x{HEX}` for anything beyond. */
function ascii(text: string): string {
  return oneLine(text).replace(/[^\u0020-\u007e]/gu, (ch) => `\\x{${ch.codePointAt(0)!.toString(16).toUpperCase()}}`);
}

function isAscii(text: string): boolean {
  return /^[\u0000-\u007f]*$/.test(text);
}

function base64Lines(text: string): string[] {
  return Buffer.from(text.replace(/\n/g, '\r\n'), 'utf8').toString('base64').match(/.{1,76}/g) ?? [];
}

/** A boundary that occurs in none of the parts (RFC 2046 5.1.1); '=_' never occurs in base64 or the fixed texts. */
function pickBoundary(parts: string[]): string {
  for (;;) {
    const boundary = `=_twoway_${randomBytes(12).toString('hex')}`;
    if (!parts.some((p) => p.includes(boundary))) return boundary;
  }
}
