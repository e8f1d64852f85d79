/**
 * Texts for recipient results. Two shapes, so a DSN writer can tell them
 * apart by the first token:
 * - the remote server's reply as it was sent, on one line:
 *   `550 5.1.1 <user@x>: no such user`;
 * - a local description of what went wrong, starting with an RFC 3463 code:
 *   `4.4.1 connection refused by mx.b.test[127.0.0.1]:2525`.
 */
import type { SMTPError } from 'nodemailer/lib/smtp-connection';

export interface RcptOutcome {
  status: 'delivered' | 'deferred' | 'failed';
  reply: string;
  /** The reply code when the server answered with one (RCPT, DATA or the final dot). */
  code?: number;
  /** The MX host that answered. */
  remoteMta?: string;
}

/** 5xx is permanent (RFC 5321 4.2.1); 4xx, and anything unexpected, is worth another try. */
export function outcomeOfReply(response: string | undefined, code: number | undefined): RcptOutcome {
  const reply = oneLine(response ?? '');
  const status = code !== undefined && code >= 500 && code <= 599 ? 'failed' : 'deferred';
  return code === undefined ? { status, reply } : { status, reply, code };
}

/**
 * A multi-line reply (`550-5.7.1 first\n550 5.7.1 second`) as one line with the
 * code once (`550 5.7.1 first second`): DSN fields and logs are one line.
 */
export function oneLine(response: string): string {
  const lines = response.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length <= 1) return lines[0] ?? '';
  const prefix = /^(\d{3})[ -](?:(\d\.\d{1,3}\.\d{1,3})(?: |$))?/;
  const first = prefix.exec(lines[0]!);
  if (!first) return lines.join(' ');
  const texts = lines.map((l) => l.replace(prefix, '').trim()).filter((t) => t !== '');
  return [first[1], first[2], ...texts].filter((t) => t !== undefined).join(' ');
}

/** A connection-level failure in words, or the server's reply when it sent one (e.g. a 421 greeting). */
export function describeFailure(err: SMTPError, peer: string): string {
  if (err.responseCode !== undefined && err.response) return oneLine(err.response);
  const code = err.originalCode ?? err.code;
  switch (code) {
    case 'ECONNREFUSED':
      return `4.4.1 connection refused by ${peer}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return `4.4.1 ${peer} is unreachable (${code})`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `4.4.2 connection reset by ${peer}`;
    case 'ETIMEDOUT':
      return timeoutText(err, peer);
    case 'ECONNECTION':
      return `4.4.2 ${peer} closed the connection unexpectedly`;
    default:
      return `4.4.2 lost connection with ${peer}: ${err.message}`;
  }
}

function timeoutText(err: SMTPError, peer: string): string {
  switch (err.timeoutType) {
    case 'CONNECT_TIMEOUT':
      return `4.4.1 connection to ${peer} timed out`;
    case 'GREETING_TIMEOUT':
      return `4.4.2 no greeting from ${peer} in time`;
    case 'UPGRADE_TIMEOUT':
      return `4.4.2 TLS handshake with ${peer} timed out`;
    default:
      return `4.4.2 ${peer} did not answer in time`;
  }
}
