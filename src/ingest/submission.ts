/**
 * The submission side (RFC 6409): implements the SMTP wire hooks for the
 * authenticated listener on top of the accounts and the outbound service.
 */
import { randomBytes } from 'node:crypto';
import { DomainError, ReplyError } from '../core/errors.ts';
import { replies } from '../core/reply.ts';
import { receivedHeader } from '../mail/received.ts';
import type { SmtpHooks, SmtpListenerOptions, SmtpSessionInfo } from '../protocols/smtp/server.ts';
import type { Accounts } from '../services/accounts.ts';
import type { Outbound } from '../services/outbound.ts';

export interface SubmissionOptions {
  hostname: string;
  accounts: Accounts;
  outbound: Outbound;
  onError?: (err: unknown, session: SmtpSessionInfo | null) => void;
}

export function createSubmissionHooks(options: SubmissionOptions): { hooks: SmtpHooks; auth: NonNullable<SmtpListenerOptions['auth']> } {
  const { accounts, outbound } = options;

  async function userOf(session: SmtpSessionInfo) {
    if (!session.user) throw ReplyError.of(replies.authRequired());
    return accounts.get(session.user);
  }

  return {
    auth: {
      async authenticate(username, password, session) {
        try {
          const { user, appPassword } = await accounts.authenticate(username, password, session.remoteAddress);
          // A contacts-only app password is for CardDAV: it never sends (docs/reliability.md, "The app-password model").
          if (appPassword && appPassword.scope !== 'all') throw new ReplyError(535, '5.7.8', 'This app password is for contacts (CardDAV) only, not for sending');
          return user.address;
        } catch (err) {
          if (err instanceof DomainError && err.kind === 'unauthorized') throw ReplyError.of(replies.authFailed());
          throw err; // 454 4.7.0 while the client is locked out
        }
      },
    },
    hooks: {
      async onSender(address, session) {
        outbound.checkSender(await userOf(session), address);
      },
      async onRecipient(address) {
        outbound.checkRecipient(address); // 501 5.1.3 on bad syntax, 550 5.7.1 for an address literal
        return { exclusive: false };
      },
      async onMessage(envelope, raw, session) {
        const user = await userOf(session);
        const id = randomBytes(8).toString('hex');
        const trace = receivedHeader({
          helo: session.helo,
          remoteAddress: session.remoteAddress,
          hostname: options.hostname,
          id,
          secure: session.secure,
          tlsProtocol: session.tlsProtocol,
          authenticated: true,
          recipient: null,
        });
        const result = await outbound.submit({ user, envelopeFrom: envelope.from ?? '', recipients: envelope.to, raw, trace });
        return `Ok: queued as ${result.messageId}`;
      },
      onError: options.onError,
    },
  };
}

