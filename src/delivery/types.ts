/**
 * The one delivery contract. Every outbound path (local users through
 * ingest, remote domains over SMTP, and later Two-Way Mail) implements
 * `Transport`; the queue worker knows nothing else about them.
 */

/** One queued message as the transports see it. */
export interface OutboundMessage {
  /** The queue's message id (unique, also used as the SMTP envelope id in logs). */
  messageId: string;
  /** Envelope sender; null is the null reverse-path `<>` (DSNs). */
  sender: string | null;
  /**
   * The message as queued: unsigned. Over SMTP it is DKIM-signed at the hand-off
   * (dkim-signing-transport.ts, so the SMTP transport gets it signed); TWM and local
   * delivery take it as it is.
   */
  raw: Buffer;
  /**
   * What the router (remote-transport.ts) read on its way to the notice
   * transport, so that it is not read twice per delivery: the message's
   * notices for this domain, and its header fields if it parsed them.
   */
  routed?: { notices: Array<TwmOutNotice & { recipients: TwmOutRecipient[] }>; headers?: Header[] };
}

import type { Reply } from '../core/reply.ts';
import type { Header } from '../mail/headers.ts';
import type { TwmOutNotice, TwmOutRecipient } from '../store/types.ts';

/**
 * The outcome for one recipient. `deferred` is temporary (4xx, connection
 * or DNS trouble: try again later); `failed` is permanent (5xx, null MX,
 * domain does not exist). `reply` is the remote reply or a description of
 * the local problem (a Reply without a server code), which a DSN reports.
 */
export type RecipientResult = {
  recipient: string;
  status: 'delivered' | 'deferred' | 'failed';
  reply: Reply;
  /** The remote host that gave `reply`, when one did (a DSN's Remote-MTA). */
  remoteMta?: string;
};

export interface Transport {
  /**
   * Delivers `message` to `recipients`, all of one domain. Never rejects for
   * a remote or DNS failure: those are per-recipient results. Rejects only on
   * a programming or local storage error (the worker then defers every
   * recipient).
   */
  deliver(domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]>;
  /** Releases pooled connections. */
  close?(): Promise<void>;
}
