/**
 * Remote delivery: Two-Way Mail for domains that publish `_twoway._tcp`,
 * SMTP for the rest (docs/protocol.md 3.1 and 7.1).
 *
 * - A message that already has a notice for the domain stays on TWM (once a
 *   notice may have reached the recipient's server, no SMTP copy follows).
 * - Only mail we can sign for goes by TWM: the notice is signed for its
 *   `from` domain, which must be one we serve and hold the key of: our
 *   users' own mail (From:), and a list's or forwarder's (Sender:,
 *   mail/relay.ts). DSNs (null sender) and anything else go by SMTP, as
 *   docs/protocol.md 7.6 asks of a list or forwarder that cannot sign.
 * - A temporary DNS failure of the SRV lookup defers the recipients; it never
 *   falls back to SMTP (the domain may well speak TWM).
 * - Testing mode (`[twm] testing`, docs/protocol.md 6.6): a message for a
 *   TWM domain goes by TWM and also by SMTP, the SMTP copy marked
 *   `TWM-Testing: y` so that the recipient can pair the copies. SMTP's
 *   outcome is the queue's: TWM is on trial, so its failures cost no DSN.
 * - `smtp` is the signing SMTP transport (dkim-signing-transport.ts): every
 *   message that leaves by SMTP here, the testing copy included, is
 *   DKIM-signed on its way out; a notice's message is not.
 */
import { replies } from '../core/reply.ts';
import { TWM_TESTING_HEADER } from '../core/twm-types.ts';
import { parseHeaders } from '../mail/headers.ts';
import { twmIdentity } from '../mail/relay.ts';
import type { TwmOutboundRepository } from '../store/types.ts';
import { reportType, TwmUnreachableError, type TwmClient } from './twm-client-types.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

export interface RemoteTransportOptions {
  smtp: Transport;
  twm: Transport;
  client: Pick<TwmClient, 'discover'>;
  outbox: Pick<TwmOutboundRepository, 'findByMessage'>;
  /** Domains we sign for (lower-case). */
  domains: string[];
  /** Testing mode (6.6): every TWM delivery is doubled by SMTP. */
  testing?: boolean;
  /** Counts a failed discovery against the recipient domain for its failure report (docs/protocol.md 6.6). */
  report?: (domain: string, resultType: string) => void;
}

export function createRemoteTransport(options: RemoteTransportOptions): Transport {
  const ours = new Set(options.domains);
  // One marked copy per body Buffer (one per message and worker round), so that its DKIM signature
  // is computed once however many TWM domains the message goes to.
  const markedCopies = new WeakMap<Buffer, Buffer>();
  const marked = (raw: Buffer): Buffer => {
    let copy = markedCopies.get(raw);
    if (!copy) {
      copy = Buffer.concat([Buffer.from(`${TWM_TESTING_HEADER}: y\r\n`), raw]);
      markedCopies.set(raw, copy);
    }
    return copy;
  };

  async function viaTwm(domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]> {
    if (!options.testing) return options.twm.deliver(domain, message, recipients);
    // The notice first: a retry of the queue resends the same stored notice (the recipient answers it
    // as before), so only SMTP's outcome decides what the queue does next.
    await options.twm.deliver(domain, message, recipients).catch(() => undefined);
    // Without `routed`: what the router read is the notice transport's, of the unmarked message.
    const { routed: _routed, ...plain } = message;
    return options.smtp.deliver(domain, { ...plain, raw: marked(message.raw) }, recipients);
  }

  return {
    async deliver(domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]> {
      const notices = await options.outbox.findByMessage(message.messageId, domain);
      if (notices.length > 0) return viaTwm(domain, { ...message, routed: { notices } }, recipients);
      const headers = message.sender === null ? null : parseHeaders(message.raw);
      const identity = headers === null ? null : twmIdentity(headers, (d) => ours.has(d));
      if (!identity || !headers) return options.smtp.deliver(domain, message, recipients);
      try {
        const found = await options.client.discover(domain);
        // The notice transport is handed what was read here (no notice yet, the header fields): not read again.
        return found.kind === 'twm' ? viaTwm(domain, { ...message, routed: { notices, headers } }, recipients) : options.smtp.deliver(domain, message, recipients);
      } catch (err) {
        const text = err instanceof TwmUnreachableError ? err.message : String(err);
        options.report?.(domain, reportType(err, 'notice'));
        return recipients.map((recipient) => ({ recipient, status: 'deferred' as const, reply: replies.twmDiscoveryFailed(domain, text) }));
      }
    },
    async close() {
      await options.smtp.close?.();
      await options.twm.close?.();
    },
  };
}
