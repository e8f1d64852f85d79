/**
 * Submission: what happens to a message a user sends, whichever way it came
 * (SMTP submission, `twoway send`, the HTTP API). One function, so every
 * path checks the same things and queues the same way:
 *
 *   sender and From: owned by the user (553 5.7.1) -> loop check -> Date and
 *   Message-ID added when missing -> DKIM signed -> queued durably (one
 *   entry per recipient) -> copy in Sent -> recipients become contacts
 *
 * Local recipients are queued too: the queue's router hands them to the
 * local transport, which calls the same ingest as inbound mail, so the
 * recipient's policy applies to them as to anyone.
 */
import { randomBytes } from 'node:crypto';
import { domainOf, parseAddress } from '../core/address.ts';
import { ReplyError } from '../core/errors.ts';
import type { User } from '../core/types.ts';
import { formatRfc5322Date } from '../mail/date.ts';
import type { DkimSigner } from '../mail/dkim-sign.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import { checkHeaderLimits, DEFAULT_HEADER_LIMITS, type HeaderLimits } from '../mail/header-limits.ts';
import type { Store } from '../store/types.ts';
import type { Contacts } from './contacts.ts';

export interface SubmitInput {
  user: User;
  /** Envelope sender (MAIL FROM). */
  envelopeFrom: string;
  recipients: string[];
  raw: Buffer;
  /** Trace header lines (Received) to prepend, CRLF-terminated. */
  trace?: string;
}

export interface SubmitResult {
  messageId: string;
  recipients: string[];
}

export interface OutboundOptions {
  store: Pick<Store, 'queue' | 'messages'>;
  contacts: Contacts;
  sign: DkimSigner;
  hostname: string;
  maxRecipients: number;
  maxMessageSize: number;
  maxReceivedHeaders: number;
  /** Header section limits (mail/header-limits.ts), the same as SMTP's. */
  headerLimits?: HeaderLimits;
  /** Called after a message is queued (the worker polls at once). */
  onQueued?: () => void;
}

/** Does `user` own `address`? Its own address, or a subaddress of it (local+tag@domain). */
export function owns(user: User, address: string): boolean {
  let a: string;
  try {
    a = parseAddress(address).address;
  } catch {
    return false;
  }
  if (a === user.address) return true;
  const at = a.lastIndexOf('@');
  const plus = a.indexOf('+');
  return plus > 0 && plus < at && a.slice(0, plus) + a.slice(at) === user.address;
}

export function createOutbound(options: OutboundOptions) {
  const { store } = options;

  function checkRecipients(recipients: string[]): string[] {
    if (recipients.length === 0) throw new ReplyError(554, '5.5.1', 'No recipients');
    if (recipients.length > options.maxRecipients) {
      throw new ReplyError(452, '4.5.3', `Too many recipients (at most ${options.maxRecipients})`, { status: 400 });
    }
    return [...new Set(recipients.map((r) => parseAddress(r).address))];
  }

  return {
    /** Checks a MAIL FROM for this user (submission's RCPT-time check). */
    checkSender(user: User, envelopeFrom: string | null): void {
      if (envelopeFrom === null || !owns(user, envelopeFrom)) {
        throw new ReplyError(553, '5.7.1', `Sender address rejected: ${envelopeFrom ?? '<>'} is not an address of ${user.address}`);
      }
    },

    async submit(input: SubmitInput): Promise<SubmitResult> {
      const { user } = input;
      this.checkSender(user, input.envelopeFrom);
      const recipients = checkRecipients(input.recipients);
      if (input.raw.length > options.maxMessageSize) {
        throw new ReplyError(552, '5.3.4', `Message too big: ${input.raw.length} bytes, the limit is ${options.maxMessageSize}`);
      }
      checkHeaderLimits(input.raw, options.headerLimits ?? DEFAULT_HEADER_LIMITS);
      const headers = parseHeaders(input.raw);
      const facts = messageFacts(headers);
      const foreign = facts.fromAddresses.find((a) => !owns(user, a));
      if (foreign) throw new ReplyError(553, '5.7.1', `From: address rejected: ${foreign} is not an address of ${user.address}`);
      if (facts.receivedCount >= options.maxReceivedHeaders) {
        throw new ReplyError(554, '5.4.6', `Mail loop detected: ${facts.receivedCount} Received headers`);
      }

      // RFC 6409 section 8: the submission server may complete From, Date and Message-ID.
      const id = randomBytes(12).toString('hex');
      let added = '';
      if (facts.fromAddresses.length === 0) added += `From: <${user.address}>\r\n`;
      if (!headers.some((h) => h.name === 'date')) added += `Date: ${formatRfc5322Date(new Date())}\r\n`;
      if (!facts.messageId) added += `Message-ID: <${id}@${options.hostname}>\r\n`;
      const from = facts.fromAddresses[0] ?? user.address;
      const message = Buffer.concat([Buffer.from((input.trace ?? '') + added, 'utf8'), input.raw]);
      const signed = await options.sign(message, domainOf(from));

      // Queued before the Sent copy: a crash in between loses the copy, never the mail.
      await store.queue.enqueue({ messageId: id, sender: input.envelopeFrom, recipients, raw: signed, at: new Date() });
      await store.messages.deliver([
        {
          userId: user.id,
          mailbox: 'Sent',
          raw: signed,
          flags: ['\\Seen'],
          sender: input.envelopeFrom,
          from,
          subject: facts.subject,
          receivedAt: new Date(),
          firstContact: false,
        },
      ]);
      for (const r of recipients) if (!owns(user, r)) await options.contacts.autoAllow(user.id, r);
      options.onQueued?.();
      return { messageId: id, recipients };
    },
  };
}

export type Outbound = ReturnType<typeof createOutbound>;
