/**
 * Submission: what happens to a message a user sends, whichever way it came
 * (SMTP submission, `twoway send`, the HTTP API). One function, so every
 * path checks the same things and queues the same way:
 *
 *   sender and From: owned by the user (553 5.7.1), or a list's or
 *   forwarder's Sender: -> loop check -> Date and
 *   Message-ID added when missing -> queued durably (one
 *   entry per recipient) -> copy in Sent -> recipients become contacts
 *
 * Local recipients are queued too: the queue's router hands them to the
 * local transport, which calls the same ingest as inbound mail, so the
 * recipient's policy applies to them as to anyone.
 *
 * Nothing is DKIM-signed here: the queue and the Sent copy hold the message
 * as submitted (as a client's own APPEND to Sent would), and only what
 * leaves by SMTP is signed, at the hand-off
 * (delivery/dkim-signing-transport.ts). Two-Way Mail and local delivery need
 * no DKIM.
 */
import { normalisedAddress, parseAddress, subaddressBase } from '../core/address.ts';
import { ReplyError } from '../core/errors.ts';
import { randomHex } from '../core/random-pool.ts';
import { replies } from '../core/reply.ts';
import type { User } from '../core/types.ts';
import { formatRfc5322Date } from '../mail/date.ts';
import { senderIdentity } from '../mail/from.ts';
import { messageFacts, parseHeaders, type Header } from '../mail/headers.ts';
import { checkHeaderLimits, DEFAULT_HEADER_LIMITS, type HeaderLimits } from '../core/header-limits.ts';
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
  hostname: string;
  maxRecipients: number;
  maxMessageSize: number;
  maxReceivedHeaders: number;
  /** Header section limits (core/header-limits.ts), the same as SMTP's. */
  headerLimits?: HeaderLimits;
  /** Called after a message is queued with its recipients (the worker polls at once, unless their domains are all busy). */
  onQueued?: (recipients?: readonly string[]) => void;
  /** The application clock: the queue entry's time and a missing Date:. */
  now?: () => Date;
  /** Accept address-literal recipients (`x@[192.0.2.1]`); off by default (`submission.address_literals`). */
  allowAddressLiterals?: boolean;
  /**
   * Users (their own addresses) that may submit another author's message as a mailing list or
   * forwarder (`submission.relay_senders`): its Sender: must be theirs (docs/protocol.md 7.6).
   */
  relaySenders?: string[];
}

/**
 * Does `user` own `address`? Its own address, or a subaddress of it (local+tag@domain). For an
 * account without a tag in its own address this is `senderKey(address) === user.address`, the
 * key the Sent view looks its mail up by (services/sent.ts).
 */
export function owns(user: User, address: string): boolean {
  const a = normalisedAddress(address);
  return a !== null && (a === user.address || subaddressBase(a) === user.address);
}

/**
 * A submitted message's id (the queue's key, the TWM notices' message, the Message-ID's left part
 * when the client gave none, an argument of `twoway sent`): the time in milliseconds as 12 hex
 * digits, then 64 random bits as 16 more. Why time first: the id leads the queue's unique index
 * and the notices' index by message; fully random, every message's insert dirtied a B-tree page
 * of its own in each (core/time-ordered-id.ts says what that costs). Hex, not
 * core/time-ordered-id.ts's base64url: that starts with `-` today, which a command line takes for
 * an option. The submission time is no secret: the message's Date: says it.
 */
export function queueMessageId(at: Date): string {
  return Math.max(0, Math.floor(at.getTime())).toString(16).padStart(12, '0').slice(-12) + randomHex(8);
}

/**
 * The message a user submits, checked as every receiver's policy will read
 * it, and the header fields the submission server completes (RFC 6409 8).
 */
function checkMessage(options: OutboundOptions, user: User, raw: Buffer, at: Date, id: string): { facts: ReturnType<typeof messageFacts>; added: string } {
  if (raw.length > options.maxMessageSize) {
    throw new ReplyError(552, '5.3.4', `Message too big: ${raw.length} bytes, the limit is ${options.maxMessageSize}`, { status: 413 });
  }
  checkHeaderLimits(raw, options.headerLimits ?? DEFAULT_HEADER_LIMITS);
  const headers = parseHeaders(raw);
  const facts = messageFacts(headers);
  // Exactly one From: field holding exactly one of the user's addresses,
  // parsed as every receiver's policy will parse it (mail/from.ts); none
  // at all is completed below (RFC 6409 8.1).
  const hasFrom = headers.some((h) => h.name === 'from');
  if (hasFrom && facts.from === null) {
    throw new ReplyError(553, '5.7.1', `From: header rejected: ${facts.fromProblem ?? 'unparsable'}; it must be exactly one address of ${user.address}`, { status: 403 });
  }
  // A list or forwarder keeps the author's From: and names itself in Sender: (7.6); the message
  // then goes out (signed by TWM, or by DKIM at the SMTP hand-off) as the Sender:'s, never the author's.
  if (facts.from !== null && !owns(user, facts.from) && relaySender(options, user, headers) === null) {
    const how = options.relaySenders?.includes(user.address) ? ` (as a list or forwarder, set Sender: to ${user.address})` : '';
    throw new ReplyError(553, '5.7.1', `From: address rejected: ${facts.from} is not an address of ${user.address}${how}`, { status: 403 });
  }
  checkSenderField(user, headers);
  if (facts.receivedCount >= options.maxReceivedHeaders) {
    throw ReplyError.of(replies.mailLoop(facts.receivedCount), { status: 400 });
  }
  // RFC 6409 section 8: the submission server may complete From, Date and Message-ID.
  let added = '';
  if (!hasFrom) added += `From: <${user.address}>\r\n`;
  if (!headers.some((h) => h.name === 'date')) added += `Date: ${formatRfc5322Date(at)}\r\n`;
  if (!facts.messageId) added += `Message-ID: <${id}@${options.hostname}>\r\n`;
  return { facts, added };
}

/**
 * A Sender: field names who transmits the message (RFC 5322 3.6.2), and a
 * message goes out over TWM as its Sender: when that is a list's or a
 * forwarder's (mail/relay.ts), so a recipient's allowlist is asked about the
 * Sender:. A user may therefore name only an address of its own there, as
 * exactly one mailbox: else one local user could send as another.
 */
function checkSenderField(user: User, headers: Header[]): void {
  if (!headers.some((h) => h.name === 'sender')) return;
  const sender = senderIdentity(headers);
  if (sender.address === null) {
    throw new ReplyError(553, '5.7.1', `Sender: header rejected: ${sender.problem ?? 'unparsable'}; it must be exactly one address of ${user.address}`, { status: 403 });
  }
  if (!owns(user, sender.address)) {
    throw new ReplyError(553, '5.7.1', `Sender: address rejected: ${sender.address} is not an address of ${user.address}`, { status: 403 });
  }
}

/** The Sender: of a list or forwarder allowed to submit others' messages, if it is this user's; else null. */
function relaySender(options: OutboundOptions, user: User, headers: Header[]): string | null {
  if (!options.relaySenders?.includes(user.address)) return null;
  const sender = senderIdentity(headers);
  return sender.address !== null && owns(user, sender.address) ? sender.address : null;
}

export function createOutbound(options: OutboundOptions) {
  const { store } = options;
  const now = options.now ?? (() => new Date());

  function checkRecipients(recipients: string[]): string[] {
    if (recipients.length === 0) throw new ReplyError(554, '5.5.1', 'No recipients', { status: 400 });
    if (recipients.length > options.maxRecipients) {
      throw new ReplyError(452, '4.5.3', `Too many recipients (at most ${options.maxRecipients})`, { status: 400 });
    }
    return [...new Set(recipients.map(checkRecipient))];
  }

  /**
   * One recipient, normalised. Address literals are refused unless allowed
   * (RFC 5321 4.1.3 lets a server refuse them): they name a host directly,
   * with no domain owner's DNS in between.
   */
  function checkRecipient(address: string): string {
    const parsed = parseAddress(address); // 501 5.1.3 on bad syntax
    if (parsed.domain.startsWith('[') && !options.allowAddressLiterals) {
      throw new ReplyError(550, '5.7.1', `Address-literal recipients are not accepted: ${parsed.address}`, { status: 400 });
    }
    return parsed.address;
  }

  return {
    checkRecipient,
    /** Checks a MAIL FROM for this user (submission's RCPT-time check). */
    checkSender(user: User, envelopeFrom: string | null): void {
      if (envelopeFrom !== null) {
        try {
          parseAddress(envelopeFrom);
        } catch (err) {
          // Bad syntax or over RFC 5321's length limits: say so, not "not yours".
          throw new ReplyError(501, '5.1.7', `Bad sender address syntax${err instanceof ReplyError ? `: ${err.text}` : ''}`, { status: 400 });
        }
      }
      if (envelopeFrom === null || !owns(user, envelopeFrom)) {
        throw new ReplyError(553, '5.7.1', `Sender address rejected: ${envelopeFrom ?? '<>'} is not an address of ${user.address}`, { status: 403 });
      }
    },

    async submit(input: SubmitInput): Promise<SubmitResult> {
      const { user } = input;
      this.checkSender(user, input.envelopeFrom);
      const recipients = checkRecipients(input.recipients);
      const id = queueMessageId(now());
      const { facts, added } = checkMessage(options, user, input.raw, now(), id);
      const from = facts.from ?? user.address;
      const message = Buffer.concat([Buffer.from((input.trace ?? '') + added, 'utf8'), input.raw]);

      // Queued with its Sent copy in one durable transaction: both or neither.
      const copy = {
        userId: user.id,
        mailbox: 'Sent' as const,
        raw: message,
        flags: ['\\Seen'],
        sender: input.envelopeFrom,
        from,
        subject: facts.subject,
        receivedAt: now(),
        firstContact: false,
      };
      await store.queue.enqueue({ messageId: id, sender: input.envelopeFrom, recipients, raw: message, at: now(), copy });
      for (const r of recipients) if (!owns(user, r)) await options.contacts.autoAllow(user.id, r);
      options.onQueued?.(recipients);
      return { messageId: id, recipients };
    },
  };
}

export type Outbound = ReturnType<typeof createOutbound>;
