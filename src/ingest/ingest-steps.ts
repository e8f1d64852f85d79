/**
 * The steps of `ingest` (ingest.ts), in the order it runs them: drop the
 * recipients that already hold a TWM-fetched copy, read and check the
 * message, gather the facts the policy decides on, scan strangers' mail,
 * refuse all or none, and build the rows to store. Each is a function of its
 * arguments, so ingest.ts reads as the sequence.
 */
import { classifySender, type PolicyInput } from '../core/policy.ts';
import type { SpamScan } from '../core/spam.ts';
import { ReplyError } from '../core/errors.ts';
import { replies } from '../core/reply.ts';
import { normaliseListId, senderKey } from '../core/screener-keys.ts';
import type { MailboxName, User } from '../core/types.ts';
import { TWM_TESTING_HEADER } from '../core/twm-types.ts';
import type { NewMessage, Store } from '../store/types.ts';
import { messageFacts, parseHeaders, type Header, type MessageFacts } from '../mail/headers.ts';
import { MAX_MIME_NESTING, mimeNestingDepthSliced } from '../mail/mime-depth.ts';
import { checkHeaderLimits, type HeaderLimits } from '../core/header-limits.ts';
import { listAuthenticated, matchesFrom, probesFor } from './contact-matches.ts';
import { findExpected, type ExpectCardStore, type ExpectMatch } from './expected-senders.ts';
import type { DecisionFacts, IngestMessage, IngestSpamFilter, RecipientOutcome } from './ingest.ts';

export { MAX_MIME_NESTING } from '../mail/mime-depth.ts';

type IngestStore = Pick<Store, 'users' | 'contacts' | 'messages' | 'addressBooks'>;

/** The local user an address delivers to: the exact address, or `local+tag@domain`. */
export async function findRecipient(store: IngestStore, address: string): Promise<User | undefined> {
  const exact = await store.users.findByAddress(address);
  if (exact) return exact;
  // Subaddressing (RFC 5233): local+tag@domain delivers to local@domain.
  const at = address.lastIndexOf('@');
  const plus = address.indexOf('+');
  if (plus > 0 && plus < at) return store.users.findByAddress(address.slice(0, plus) + address.slice(at));
  return undefined;
}

/**
 * A TWM-fetched message without the recipients that already have it (a
 * refetch after a crash between storing and recording it); null when every
 * recipient has it.
 */
export async function withoutStoredCopies(store: IngestStore, input: IngestMessage): Promise<IngestMessage | null> {
  if (input.twmKey === undefined) return input;
  const stored = new Set(await store.messages.withTwmKey(input.recipients.map((u) => u.id), input.twmKey));
  const message = stored.size > 0 ? { ...input, recipients: input.recipients.filter((u) => !stored.has(u.id)) } : input;
  return message.recipients.length === 0 ? null : message;
}

/**
 * Testing mode (docs/protocol.md 6.6): a testing-mode sender sends each
 * message by TWM and by SMTP (that copy marked `TWM-Testing`); each user
 * keeps the first copy that arrives and the second is dropped silently (the
 * SMTP client gets its 250, the TWM sender its `delivered` receipt). Copies
 * are paired by Message-ID within the authenticated sender domain (the TWM
 * signer, the DMARC-aligned domain over SMTP), so nobody else can suppress
 * a message by sending its Message-ID first. Every TWM copy is recorded
 * (the sender's mode is not known when it arrives first); an SMTP copy only
 * when marked. Null when no recipient is left.
 */
export async function withoutSecondCopies(
  store: IngestStore,
  message: IngestMessage,
  read: { headers: Header[]; facts: MessageFacts },
  at: Date,
): Promise<IngestMessage | null> {
  const { headers, facts } = read;
  const domain = message.auth.alignedDomain;
  if (!domain || !facts.messageId || (message.channel !== 'twm' && message.channel !== 'smtp')) return message;
  if (message.channel === 'smtp' && !headers.some((h) => h.name === TWM_TESTING_HEADER.toLowerCase())) return message;
  const ids = message.recipients.map((u) => u.id);
  const first = new Set(await store.messages.claimFirstCopy(ids, domain, facts.messageId, message.channel, at));
  if (first.size === ids.length) return message;
  const recipients = message.recipients.filter((u) => first.has(u.id));
  return recipients.length === 0 ? null : { ...message, recipients };
}

/**
 * Checks the header limits, the Received: count and the MIME nesting; returns the header fields
 * (the caller's, when it parsed them already: `IngestMessage.headers`) and the facts read from them
 * (the caller's too, `IngestMessage.facts`: the From: address, Subject and the rest parsed once).
 */
export async function readMessage(
  message: IngestMessage,
  maxReceivedHeaders: number,
  headerLimits: HeaderLimits,
): Promise<{ headers: Header[]; facts: MessageFacts }> {
  checkHeaderLimits(message.raw, headerLimits);
  const headers = message.headers ?? parseHeaders(message.raw);
  // The caller's facts only with the caller's headers: they were read from those.
  const facts = (message.headers !== undefined ? message.facts : undefined) ?? messageFacts(headers);
  if (facts.receivedCount >= maxReceivedHeaders) {
    throw ReplyError.of(replies.mailLoop(facts.receivedCount));
  }
  // Postfix's mime_nesting_limit: no real message nests this deep, and every reader would recurse it.
  // The caller's depth when the authentication worker measured it (IngestMessage.mimeDepth).
  const depth = message.mimeDepth ?? (await mimeNestingDepthSliced(message.raw, MAX_MIME_NESTING));
  if (depth > MAX_MIME_NESTING) {
    throw new ReplyError(554, '5.6.0', `MIME nesting too deep: more than ${MAX_MIME_NESTING} levels`);
  }
  return { headers, facts };
}

/** What the policy knows of the message, the same for every recipient. */
export function decisionFactsFor(message: IngestMessage, facts: MessageFacts, receivedAt: Date): DecisionFacts {
  // The identity that was authenticated must be the one the policy matches:
  // otherwise an aligned domain says nothing about the address (issue: a
  // From: read one way by mailauth and another by the policy).
  // A relayed message (a list or forwarder, docs/protocol.md 7.6) is decided on the relay's
  // address, never on the author's From:.
  const relayed = message.relayedBy ?? null;
  const from = relayed ?? facts.from;
  const sameIdentity = from !== null && message.auth.identity === from;
  const what = relayed === null ? 'From: address' : 'relaying Sender:';
  const fromProblem =
    (relayed === null ? facts.fromProblem : null) ??
    (message.auth.alignedDomain !== null && !sameIdentity
      ? `the authenticated identity ${JSON.stringify(message.auth.identity)} is not the ${what} ${JSON.stringify(from)}`
      : null);
  return {
    channel: message.channel,
    origin: message.origin,
    from,
    fromProblem,
    listId: facts.listId ? normaliseListId(facts.listId) : null,
    alignedDomain: sameIdentity ? message.auth.alignedDomain : null,
    authenticatedDomains: message.auth.authenticatedDomains,
    autoSubmitted: facts.autoSubmitted || message.envelopeFrom === null,
    ownershipConfirmation: facts.ownershipConfirmation,
    at: receivedAt,
  };
}

// Expected senders are looked up only for a message whose From: domain is
// authenticated (docs/protocol.md 9.3); the marker decides which entries may match.
export async function policyInputFor(
  store: IngestStore,
  cards: ExpectCardStore,
  user: User,
  facts: DecisionFacts,
): Promise<{ input: PolicyInput; expected: ExpectMatch | null }> {
  const lookup = facts.alignedDomain !== null && facts.origin !== 'system';
  const found = await store.contacts.match(user.id, probesFor({ from: facts.from, listId: facts.listId, expect: lookup }));
  const expected = lookup ? await findExpected(cards, user.id, found, facts.at, facts.ownershipConfirmation) : null;
  const input: PolicyInput = {
    mode: user.mode,
    channel: facts.channel,
    origin: facts.origin,
    from: facts.from,
    fromProblem: facts.fromProblem,
    authenticated: facts.alignedDomain !== null,
    matches: matchesFrom(found),
    listAuthenticated: listAuthenticated(facts.listId, facts.authenticatedDomains),
    autoSubmitted: facts.autoSubmitted,
    ownershipConfirmation: facts.ownershipConfirmation,
    expected: expected === null ? 'none' : expected.terms.requireMarker ? 'marker-required' : 'marker-optional',
    spam: null,
  };
  return { input, expected };
}

/**
 * Strangers' mail is scanned once, before the policy decides; the scan is
 * skipped when every recipient allows the sender (authenticated contacts
 * are never scored, let alone junked), for our own notices and for mail
 * from local users (authenticated submission).
 */
export async function scanIfStranger(filter: IngestSpamFilter | undefined, message: IngestMessage, inputs: PolicyInput[]): Promise<SpamScan | null> {
  if (!filter || message.origin !== 'remote') return null;
  if (inputs.every((i) => classifySender(i).senderClass === 'allowed')) return null;
  const scan = await filter.scan({
    raw: message.raw,
    envelopeFrom: message.envelopeFrom,
    recipients: message.recipients.map((u) => u.address),
    ...(message.client ? { ip: message.client.ip, helo: message.client.helo } : {}),
    // A fetched TWM message: its From: domain is the signer's, authenticated by the exchange.
    ...(message.channel === 'twm' ? { senderAuthenticated: true } : {}),
  });
  if (scan.status === 'unscanned' && scan.why !== 'too-large' && filter.onUnreachable === 'tempfail') {
    throw new ReplyError(451, '4.7.1', 'Spam filter unavailable; please try again later');
  }
  return scan;
}

/**
 * One reply covers every recipient, so refusals are all or nothing. A mix (a
 * user switched to strict mid-transaction) is deferred rather than
 * half-stored: the sender retries, and a strict recipient then gets a
 * transaction of its own (protocols/smtp/server.ts).
 */
export function refuseAllOrNone(outcomes: RecipientOutcome[]): void {
  const refusals = outcomes.filter((o) => o.verdict.kind === 'refuse');
  if (refusals.length === 0) return;
  const first = refusals[0]!.verdict;
  if (refusals.length < outcomes.length) {
    throw new ReplyError(451, '4.5.3', 'Recipients need separate transactions; please retry each separately');
  }
  if (first.kind === 'refuse') throw ReplyError.of(first.reply);
}

/** The rows to store, one per recipient whose verdict keeps the message, with its index in `outcomes`. */
export function messageWrites(
  outcomes: RecipientOutcome[],
  m: { message: IngestMessage; facts: MessageFacts; decision: DecisionFacts; stored: Buffer; prepared?: NewMessage['prepared']; spam: SpamScan | null },
): Array<{ index: number; item: NewMessage }> {
  const { message, facts, decision, stored, prepared, spam } = m;
  // The policy's identity: the author, or the list or forwarder that relayed the message.
  const sender = senderKey(decision.from, message.envelopeFrom);
  // DMARC only when mailauth evaluated the very From: address the request is keyed by.
  const dmarc = facts.from !== null && message.auth.identity === facts.from ? (message.auth.dmarc ?? null) : null;
  const writes: Array<{ index: number; item: NewMessage }> = [];
  for (const [index, { user, verdict }] of outcomes.entries()) {
    const mailbox: MailboxName | null =
      verdict.kind === 'inbox' ? 'INBOX' : verdict.kind === 'screen' ? 'Screener' : verdict.kind === 'junk' ? 'Junk' : null;
    if (!mailbox) continue;
    const firstContact = verdict.kind === 'screen' || verdict.kind === 'junk' || (verdict.kind === 'inbox' && verdict.firstContact);
    const likelySpam = verdict.kind === 'junk' || (verdict.kind === 'screen' && verdict.likelySpam);
    writes.push({
      index,
      item: {
        userId: user.id,
        mailbox,
        raw: stored,
        flags: [],
        sender: message.envelopeFrom,
        from: facts.from,
        subject: facts.subject,
        receivedAt: decision.at,
        firstContact,
        ...(message.twmKey === undefined ? {} : { twmKey: message.twmKey }),
        ...(prepared === undefined ? {} : { prepared }),
        // Strangers are listed in the Screener: held there in screen/strict
        // mode, as history in open mode (docs/architecture.md "Modes").
        request: firstContact
          ? {
              sender,
              authDomain: decision.alignedDomain,
              subject: facts.subject,
              spamScore: spam?.status === 'scanned' ? spam.score : null,
              likelySpam,
              dmarc,
            }
          : undefined,
      },
    });
  }
  return writes;
}
