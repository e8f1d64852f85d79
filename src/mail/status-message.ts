/**
 * Two-Way Mail status messages (docs/protocol.md 7.5): plain text, from this
 * server to the local user who sent the message, never to anyone else (so
 * never backscatter). One per message and round of failures, and one at
 * expiry. Wire-ready: CRLF, UTF-8, lines well under 998 octets.
 */
import { randomBytes } from 'node:crypto';
import { formatRfc5322Date } from './date.ts';

export interface StatusLine {
  recipient: string;
  /** The user-visible status (core/twm-status.ts). */
  status: string;
  reason?: string | null;
}

export interface StatusMessageInput {
  hostname: string;
  /** The local sender. */
  to: string;
  kind: 'failed' | 'expired';
  originalSubject: string | null;
  originalMessageId: string | null;
  recipients: StatusLine[];
  date?: Date;
}

/** Subjects and reasons come from mail and peers: keep them on one line and printable. */
const oneLine = (s: string, max: number) => s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, max);

export function buildStatusMessage(input: StatusMessageInput): Buffer {
  const date = input.date ?? new Date();
  const subject = oneLine(input.originalSubject ?? '(no subject)', 200);
  const intro =
    input.kind === 'failed'
      ? 'Your message could not be delivered to these recipients:'
      : 'Your message was not delivered to these recipients before it expired:';
  const lines = input.recipients.map((r) => `  ${r.recipient}: ${r.status}${r.reason ? ` (${oneLine(r.reason, 300)})` : ''}`);
  const body = [
    intro,
    '',
    ...lines,
    '',
    `Original subject: ${subject}`,
    ...(input.originalMessageId ? [`Original Message-ID: ${oneLine(input.originalMessageId, 300)}`] : []),
    '',
    'This message was sent by Two-Way Mail on your own server; nobody else received it.',
    '',
  ];
  const headers = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.hostname}>`,
    `To: <${input.to}>`,
    `Subject: =?UTF-8?B?${Buffer.from(`Delivery status: ${subject}`, 'utf8').toString('base64')}?=`,
    `Date: ${formatRfc5322Date(date)}`,
    `Message-ID: <${randomBytes(12).toString('hex')}@${input.hostname}>`,
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
  ];
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body.join('\r\n')}`, 'utf8');
}
