/**
 * Delivery to users of this server: the queue hands local recipients here,
 * and they go through the same ingest as inbound mail, so the recipient's
 * mode and address book decide exactly as for a stranger's SMTP message.
 *
 * Messages reach the queue only through authenticated submission (the sender
 * owns its From: address, services/outbound.ts), so the From: domain counts
 * as authenticated here without a DNS round trip to our own DKIM key. A
 * list's or forwarder's message (submitted with another author's From:
 * under its own Sender:, `submission.relay_senders`) is decided as the list
 * or forwarder, as over TWM (mail/relay.ts, docs/protocol.md 7.6): the
 * author is never authenticated by our submission.
 */
import { domainOf } from '../core/address.ts';
import { ReplyError } from '../core/errors.ts';
import { replies } from '../core/reply.ts';
import type { Ingest } from '../ingest/ingest.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import { twmIdentity } from '../mail/relay.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

/** `domains`: the domains we serve (lower-case), whose Sender: may relay another author's message. */
export function createLocalTransport(ingest: Ingest, domains: string[]): Transport {
  const ours = new Set(domains);
  return {
    async deliver(_domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]> {
      const headers = parseHeaders(message.raw);
      const relay = twmIdentity(headers, (d) => ours.has(d));
      const relayedBy = relay?.relayed ? relay.from : null;
      const from = relayedBy ?? messageFacts(headers).from;
      const alignedDomain = from ? domainOf(from) : null;
      const results: RecipientResult[] = [];
      // One ingest per recipient: each has its own verdict, and so its own result.
      for (const recipient of recipients) {
        const user = await ingest.findRecipient(recipient);
        if (!user) {
          results.push({ recipient, status: 'failed', reply: replies.noSuchLocalUser(recipient) });
          continue;
        }
        try {
          await ingest.ingest({
            channel: 'smtp',
            origin: 'local',
            envelopeFrom: message.sender,
            recipients: [user],
            raw: message.raw,
            prepend: '',
            auth: { identity: from, alignedDomain, authenticatedDomains: alignedDomain ? [alignedDomain] : [] },
            ...(relayedBy === null ? {} : { relayedBy }),
          });
          results.push({ recipient, status: 'delivered', reply: replies.deliveredLocally() });
        } catch (err) {
          if (err instanceof ReplyError) {
            results.push({ recipient, status: err.temporary ? 'deferred' : 'failed', reply: err.reply });
          } else {
            results.push({ recipient, status: 'deferred', reply: replies.localDeliveryError(err instanceof Error ? err.message : String(err)) });
          }
        }
      }
      return results;
    },
  };
}
