/**
 * The MX side: implements the SMTP wire hooks with the recipient checks, the
 * authentication of the message and the one ingest path.
 */
import { parseAddress } from '../../core/address.ts';
import { ReplyError } from '../../core/errors.ts';
import type { User } from '../../core/types.ts';
import type { Authenticator } from '../../mail/authenticate.ts';
import { messageFacts, parseHeaders } from '../../mail/headers.ts';
import { newQueueId } from '../../mail/queue-id.ts';
import { receivedHeader } from '../../mail/received.ts';
import type { SmtpHooks, SmtpSessionInfo } from '../../protocols/smtp/server.ts';
import type { Ingest, RecipientOutcome } from '../../ingest/ingest.ts';
import type { PostmasterLookup } from './postmaster.ts';

export interface InboundOptions {
  hostname: string;
  domains: string[];
  ingest: Ingest;
  authenticate: Authenticator;
  onError?: (err: unknown, session: SmtpSessionInfo | null) => void;
  onDelivered?: (outcomes: RecipientOutcome[], queueId: string) => void;
  /** The admin account for postmaster@ a served domain without an account of that name (postmaster.ts). */
  postmaster?: PostmasterLookup;
}

/** What RCPT TO resolved a recipient to: the user, or null for postmaster@ without an account. */
type Resolved = User | null;

export function createInboundHooks(options: InboundOptions): SmtpHooks<Resolved> {
  const served = new Set(options.domains);
  const postmaster = options.postmaster ?? (async () => undefined);

  return {
    async onSender(address) {
      if (address === null) return;
      try {
        parseAddress(address, { underscore: true, longLocalPart: true });
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
      if (!user) {
        // postmaster@ is always accepted, whatever the admin's mode (RFC 5321 4.5.1).
        if (await postmaster(parsed.address)) return { exclusive: false, resolved: null };
        throw new ReplyError(550, '5.1.1', `No such user here: ${parsed.address}`);
      }
      // In strict mode the end-of-DATA reply may be a refusal for this user
      // alone, so the user gets a transaction of its own.
      return { exclusive: user.mode === 'strict', resolved: user };
    },

    onMessage: (envelope, raw, session) => acceptMessage(options, postmaster, envelope, raw, session),

    onError: options.onError,
  };
}

/**
 * The end of DATA: the recipients as RCPT TO resolved them (with postmaster@), the
 * message authenticated (in the auth pool), then ingested for the screened
 * recipients and, unscreened, for the admins reached as postmaster@.
 */
async function acceptMessage(
  options: InboundOptions,
  postmaster: PostmasterLookup,
  envelope: Parameters<SmtpHooks<Resolved>['onMessage']>[0],
  raw: Buffer,
  session: SmtpSessionInfo,
): Promise<string> {
    const recipients: User[] = [];
    // Mail to postmaster@ reaches the admin unscreened: it may be about a problem with mail itself.
    const admins: User[] = [];
    // As RCPT TO resolved them (one lookup per recipient per message, not two); looked up here
    // only when the wire has nothing for an address.
    for (const [i, rcpt] of envelope.to.entries()) {
      const address = parseAddress(rcpt).address;
      const remembered = envelope.resolved[i];
      const user = remembered === undefined ? await options.ingest.findRecipient(address) : (remembered ?? undefined);
      if (user && !recipients.some((u) => u.id === user.id)) recipients.push(user);
      const admin = user ? undefined : await postmaster(address);
      if (admin && !admins.some((u) => u.id === admin.id)) admins.push(admin);
    }
    if (recipients.length === 0 && admins.length === 0) throw new ReplyError(503, '5.5.1', 'No valid recipients');
    const queueId = newQueueId();
    // One parse of From: for both: the identity the policy will match is the one authenticated.
    const headers = parseHeaders(raw);
    const facts = messageFacts(headers);
    const from = facts.from;
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
    const auth = await options.authenticate({
      raw,
      from,
      ip: session.remoteAddress,
      helo: session.helo,
      envelopeFrom: envelope.from,
      mta: options.hostname,
      // The worker then prepares the stored bytes, their SHA-256 and structure off the event loop.
      prefix: received,
    });
    const message = {
      channel: 'smtp' as const,
      envelopeFrom: envelope.from,
      // The bytes came back from the authentication worker when they were moved there (auth-pool.ts).
      raw: auth.raw ?? raw,
      // Parsed once here: ingest takes these headers and facts rather than reading the bytes again.
      headers,
      facts,
      prepend: received + auth.headers,
      ...(auth.stored ? { stored: auth.stored } : {}),
      ...(auth.mimeDepth === undefined ? {} : { mimeDepth: auth.mimeDepth }),
      auth: { identity: auth.identity, alignedDomain: auth.alignedDomain, authenticatedDomains: auth.authenticatedDomains, dmarc: auth.dmarc },
      client: { ip: session.remoteAddress, helo: session.helo },
    };
    const unscreened = admins.filter((a) => !recipients.some((u) => u.id === a.id));
    const outcomes = [
      ...(recipients.length > 0 ? await options.ingest.ingest({ ...message, origin: 'remote', recipients }) : []),
      // The 'system' origin: never screened, never refused by mode (policy.ts), as postmaster mail must be.
      ...(unscreened.length > 0 ? await options.ingest.ingest({ ...message, origin: 'system', recipients: unscreened }) : []),
    ];
    options.onDelivered?.(outcomes, queueId);
    return `Ok: queued as ${queueId}`;
}
