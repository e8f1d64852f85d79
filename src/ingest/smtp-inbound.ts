/**
 * The MX side: implements the SMTP wire hooks with the recipient checks, the
 * authentication of the message and the one ingest path.
 */
import { randomBytes } from 'node:crypto';
import { parseAddress } from '../core/address.ts';
import { ReplyError } from '../core/errors.ts';
import type { User } from '../core/types.ts';
import type { Authenticator } from '../mail/authenticate.ts';
import { receivedHeader } from '../mail/received.ts';
import type { SmtpHooks, SmtpSessionInfo } from '../protocols/smtp/server.ts';
import type { Ingest, RecipientOutcome } from './ingest.ts';

export interface InboundOptions {
  hostname: string;
  domains: string[];
  ingest: Ingest;
  authenticate: Authenticator;
  onError?: (err: unknown, session: SmtpSessionInfo | null) => void;
  onDelivered?: (outcomes: RecipientOutcome[], queueId: string) => void;
}

export function createInboundHooks(options: InboundOptions): SmtpHooks {
  const served = new Set(options.domains);

  return {
    async onSender(address) {
      if (address === null) return;
      try {
        parseAddress(address);
      } catch (err) {
        throw new ReplyError(501, '5.1.7', `Bad sender address syntax${err instanceof ReplyError ? `: ${err.text}` : ''}`);
      }
    },

    async onRecipient(address) {
      const parsed = parseAddress(address); // throws 501 5.1.3
      if (!served.has(parsed.domain)) {
        throw new ReplyError(550, '5.7.1', `Relaying denied: this server does not accept mail for ${parsed.domain}`);
      }
      const user = await options.ingest.findRecipient(parsed.address);
      if (!user) throw new ReplyError(550, '5.1.1', `No such user here: ${parsed.address}`);
      // In strict mode the end-of-DATA reply may be a refusal for this user
      // alone, so the user gets a transaction of its own.
      return { exclusive: user.mode === 'strict' };
    },

    async onMessage(envelope, raw, session) {
      const recipients: User[] = [];
      // Resolved again rather than remembered from RCPT: no per-session state to leak on RSET or disconnect.
      for (const rcpt of envelope.to) {
        const user = await options.ingest.findRecipient(parseAddress(rcpt).address);
        if (user && !recipients.some((u) => u.id === user.id)) recipients.push(user);
      }
      if (recipients.length === 0) throw new ReplyError(503, '5.5.1', 'No valid recipients');
      const queueId = randomBytes(8).toString('hex');
      const auth = await options.authenticate({
        raw,
        ip: session.remoteAddress,
        helo: session.helo,
        envelopeFrom: envelope.from,
        mta: options.hostname,
      });
      const received = receivedHeader({
        helo: session.helo,
        remoteAddress: session.remoteAddress,
        hostname: options.hostname,
        id: queueId,
        secure: session.secure,
        tlsProtocol: session.tlsProtocol,
        authenticated: false,
        recipient: envelope.to.length === 1 ? envelope.to[0]! : null,
      });
      const outcomes = await options.ingest.ingest({
        channel: 'smtp',
        origin: 'remote',
        envelopeFrom: envelope.from,
        recipients,
        raw,
        prepend: received + auth.headers,
        auth: { alignedDomain: auth.alignedDomain, authenticatedDomains: auth.authenticatedDomains },
        client: { ip: session.remoteAddress, helo: session.helo },
      });
      options.onDelivered?.(outcomes, queueId);
      return `Ok: queued as ${queueId}`;
    },

    onError: options.onError,
  };
}
