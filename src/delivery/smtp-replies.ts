/**
 * Where a remote server's replies arrive: the response texts of the SMTP
 * client (smtp-client.ts), and its connection failures, become Reply values
 * here, once. A multi-line reply
 * is put on one line first, then `parseReply` takes its codes apart; a
 * connection failure that no server answered becomes a named local reply
 * (`4.4.1 connection refused by mx.b.test[127.0.0.1]:2525`).
 */
import { parseReply, replies, type Reply } from '../core/reply.ts';

/** A connection-level failure as the SMTP client reports it (smtp-client.ts `SmtpFailure`). */
export interface FailureInfo {
  readonly message: string;
  /** A Node error code (ECONNREFUSED, ECONNRESET, ETIMEDOUT...), or ECONNECTION / EPROTOCOL. */
  readonly code?: string;
  /** Which wait timed out, for ETIMEDOUT. */
  readonly timeoutType?: string;
  /** The server's reply, when the failure is a reply (a 421 greeting). */
  readonly responseCode?: number | undefined;
  readonly response?: string | undefined;
}

export interface RcptOutcome {
  status: 'delivered' | 'deferred' | 'failed';
  reply: Reply;
  /** The reply code when the server answered with one (RCPT, DATA or the final dot). */
  code?: number;
  /** The MX host that answered. */
  remoteMta?: string;
}

/** 5xx is permanent (RFC 5321 4.2.1); 4xx, and anything unexpected, is worth another try. */
export function outcomeOfReply(response: string | undefined, code: number | undefined): RcptOutcome {
  const reply = replyOf(response ?? '');
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

/** The server's reply as it arrived (the 250 after the final dot). */
export function replyOf(response: string): Reply {
  return parseReply(oneLine(response));
}

/** A connection-level failure in words, or the server's reply when it sent one (e.g. a 421 greeting). */
export function describeFailure(err: FailureInfo, peer: string): Reply {
  if (err.responseCode !== undefined && err.response) return replyOf(err.response);
  const code = err.code;
  switch (code) {
    case 'ECONNREFUSED':
      return replies.connectionRefused(peer);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return replies.unreachable(peer, code);
    case 'ECONNRESET':
    case 'EPIPE':
      return replies.connectionReset(peer);
    case 'ETIMEDOUT':
      return timeoutText(err, peer);
    case 'ECONNECTION':
      return replies.connectionClosed(peer);
    default:
      return replies.lostConnection(peer, err.message);
  }
}

function timeoutText(err: FailureInfo, peer: string): Reply {
  switch (err.timeoutType) {
    case 'CONNECT_TIMEOUT':
      return replies.connectTimeout(peer);
    case 'GREETING_TIMEOUT':
      return replies.noGreeting(peer);
    case 'UPGRADE_TIMEOUT':
      return replies.tlsTimeout(peer);
    default:
      return replies.noAnswer(peer);
  }
}
