/**
 * The one entry path for every message (Postfix's cleanup): SMTP inbound,
 * submission to local users, TWM fetches and system notices all call
 * `ingest`. For each recipient it decides with the pure policy, then stores
 * every copy in one durable write; the caller acknowledges only after the
 * returned promise resolves.
 */
import { classifySender, decide, type PolicyInput, type Verdict } from '../core/policy.ts';
import { judgementOf, spamHeaders, type SpamScan } from '../core/spam.ts';
import { ReplyError } from '../core/errors.ts';
import { replies } from '../core/reply.ts';
import { normaliseListId, senderKey } from '../core/screener-keys.ts';
import type { MailboxName, User } from '../core/types.ts';
import { ExpectUsedUpError, type NewMessage, type Store } from '../store/types.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import { mimeNestingDepthSliced } from '../mail/mime-depth.ts';
import { checkHeaderLimits, DEFAULT_HEADER_LIMITS, type HeaderLimits } from '../core/header-limits.ts';
import { listAuthenticated, matchesFrom, probesFor } from './contact-matches.ts';
import { findExpected, type ExpectCardStore, type ExpectMatch } from './expected-senders.ts';

export interface IngestMessage {
  channel: PolicyInput['channel'];
  origin: PolicyInput['origin'];
  /** MAIL FROM; null for the null reverse-path (bounces). */
  envelopeFrom: string | null;
  /** Local users, as resolved by `findRecipient`. */
  recipients: User[];
  /** The message as received. */
  raw: Buffer;
  /** Trace and authentication header lines (CRLF-terminated) to prepend when storing. */
  prepend: string;
  /**
   * Authentication of the message: `identity` is the From: address whose
   * domain alignment was checked for (AuthOutcome.identity), `alignedDomain`
   * the authenticated domain aligned with it (null: not authenticated);
   * `authenticatedDomains` are all domains that authenticated the message.
   * The message counts as authenticated only when `identity` is the
   * policy's From: address (MessageFacts.from) itself.
   */
  auth: { identity: string | null; alignedDomain: string | null; authenticatedDomains: string[] };
  receivedAt?: Date;
  /**
   * A message fetched over TWM: `<sender domain> <notice id>`. Recipients
   * that already have a message with this key are left out (a refetch after
   * a crash between storing and recording it), so it is stored once each.
   */
  twmKey?: string;
  /** The SMTP client, for the spam filter (absent for TWM fetches and local mail). */
  client?: { ip: string; helo: string | null };
}

export interface RecipientOutcome {
  user: User;
  verdict: Verdict;
  /** The stored message's id, for inbox, junk and screen verdicts. */
  messageId: number | null;
  /** The spam filter's answer, when the message was sent to it (one scan serves every recipient). */
  spam: SpamScan | null;
}

/**
 * The spam filter as ingest sees it (spam/filter.ts over rspamd). `scan`
 * never throws for rspamd trouble: it answers `unscanned`.
 */
export interface IngestSpamFilter {
  scan(input: { raw: Buffer; envelopeFrom: string | null; recipients: string[]; ip?: string; helo?: string | null }): Promise<SpamScan>;
  /** `tempfail`: an unscanned message (rspamd unreachable, not too large) is answered 451 4.7.1 instead of accepted. */
  onUnreachable: 'accept' | 'tempfail';
}

export interface Ingest {
  /** The local user an address delivers to (exact address, or `local+tag@domain`), or undefined. */
  findRecipient(address: string): Promise<User | undefined>;
  /**
   * Decides and stores. Resolves after every copy is durable. Throws the
   * refusal's ReplyError when every recipient refuses the message, and a
   * temporary 451 4.5.3 (storing nothing) when only some do.
   */
  ingest(message: IngestMessage): Promise<RecipientOutcome[]>;
  /**
   * The verdict a message with these facts would get for `user` now, with
   * the same lookups and policy as `ingest`, storing nothing and consuming
   * no expected-sender use. A TWM notice is decided with it (docs/protocol.md
   * 8.2); the fetched message is decided again by `ingest`.
   */
  predict(user: User, facts: DecisionFacts): Promise<Verdict>;
}

/** What the policy needs to know about a message, apart from the recipient. */
export interface DecisionFacts {
  channel: PolicyInput['channel'];
  origin: PolicyInput['origin'];
  /** The author identity (MessageFacts.from, parseAddress's normal form); null when there is none. */
  from: string | null;
  /** Why the message has no trustworthy author identity (never allowed then), else null. */
  fromProblem: string | null;
  /** Normalised List-Id, or null. */
  listId: string | null;
  /** The authenticated domain aligned with the From: domain, or null. */
  alignedDomain: string | null;
  authenticatedDomains: string[];
  autoSubmitted: boolean;
  ownershipConfirmation: boolean;
  at: Date;
}

export interface IngestOptions {
  store: Pick<Store, 'users' | 'contacts' | 'messages' | 'addressBooks'>;
  maxReceivedHeaders: number;
  /** The header limits every entry checks as the message streams in; checked again here for paths that skipped them. */
  headerLimits?: HeaderLimits;
  /** Strangers' mail is scanned before the policy decides; absent: no filtering. */
  spam?: IngestSpamFilter;
  onOutcome?: (outcome: RecipientOutcome, message: IngestMessage) => void;
  /** The application clock: a message's arrival time unless the caller gives one. */
  now?: () => Date;
}

/** Deepest MIME nesting accepted (multipart levels and embedded messages), as Postfix's default. */
export const MAX_MIME_NESTING = 100;

export function createIngest(options: IngestOptions): Ingest {
  const { store } = options;
  const cards: ExpectCardStore = {
    get: (userId, book, uid) => store.contacts.get(userId, book, uid),
    putCard: (userId, card, conditions) => store.addressBooks.putCard(userId, card, conditions),
    removeCard: (userId, book, href, conditions) => store.addressBooks.removeCard(userId, book, href, conditions),
  };

  async function findRecipient(address: string): Promise<User | undefined> {
    const exact = await store.users.findByAddress(address);
    if (exact) return exact;
    // Subaddressing (RFC 5233): local+tag@domain delivers to local@domain.
    const at = address.lastIndexOf('@');
    const plus = address.indexOf('+');
    if (plus > 0 && plus < at) return store.users.findByAddress(address.slice(0, plus) + address.slice(at));
    return undefined;
  }

  // Expected senders are looked up only for a marked message whose From:
  // domain is authenticated (docs/protocol.md 9.3).
  async function policyInputFor(user: User, facts: DecisionFacts): Promise<{ input: PolicyInput; expected: ExpectMatch | null }> {
    const marked = facts.ownershipConfirmation && facts.alignedDomain !== null && facts.origin !== 'system';
    const found = await store.contacts.match(user.id, probesFor({ from: facts.from, listId: facts.listId, expect: marked }));
    const expected = marked ? await findExpected(cards, user.id, found, facts.at) : null;
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
      expected: expected !== null,
      spam: null,
    };
    return { input, expected };
  }

  async function decideFor(user: User, facts: DecisionFacts): Promise<{ verdict: Verdict; expected: ExpectMatch | null }> {
    const { input, expected } = await policyInputFor(user, facts);
    return { verdict: decide(input), expected };
  }

  /**
   * Strangers' mail is scanned once, before the policy decides; the scan is
   * skipped when every recipient allows the sender (authenticated contacts
   * are never scored, let alone junked), for our own notices and for mail
   * from local users (authenticated submission).
   */
  async function scanIfStranger(message: IngestMessage, inputs: PolicyInput[]): Promise<SpamScan | null> {
    const filter = options.spam;
    if (!filter || message.origin !== 'remote') return null;
    if (inputs.every((i) => classifySender(i).senderClass === 'allowed')) return null;
    const scan = await filter.scan({
      raw: message.raw,
      envelopeFrom: message.envelopeFrom,
      recipients: message.recipients.map((u) => u.address),
      ...(message.client ? { ip: message.client.ip, helo: message.client.helo } : {}),
    });
    if (scan.status === 'unscanned' && scan.why !== 'too-large' && filter.onUnreachable === 'tempfail') {
      throw new ReplyError(451, '4.7.1', 'Spam filter unavailable; please try again later');
    }
    return scan;
  }

  async function ingest(input: IngestMessage): Promise<RecipientOutcome[]> {
    // A delivery whose expected-sender use was taken meanwhile is decided again (9.3): the entry
    // then no longer matches, so the second round cannot hit the same error for it.
    for (let round = 0; ; round++) {
      try {
        return await ingestOnce(input);
      } catch (err) {
        if (!(err instanceof ExpectUsedUpError) || round >= 3) throw err;
      }
    }
  }

  async function ingestOnce(input: IngestMessage): Promise<RecipientOutcome[]> {
    let message = input;
    if (input.twmKey !== undefined) {
      const stored = new Set(await store.messages.withTwmKey(input.recipients.map((u) => u.id), input.twmKey));
      if (stored.size > 0) message = { ...input, recipients: input.recipients.filter((u) => !stored.has(u.id)) };
      if (message.recipients.length === 0) return [];
    }
    checkHeaderLimits(message.raw, options.headerLimits ?? DEFAULT_HEADER_LIMITS);
    const headers = parseHeaders(message.raw);
    const facts = messageFacts(headers);
    if (facts.receivedCount >= options.maxReceivedHeaders) {
      throw ReplyError.of(replies.mailLoop(facts.receivedCount));
    }
    // Postfix's mime_nesting_limit: no real message nests this deep, and every reader would recurse it.
    if ((await mimeNestingDepthSliced(message.raw, MAX_MIME_NESTING)) > MAX_MIME_NESTING) {
      throw new ReplyError(554, '5.6.0', `MIME nesting too deep: more than ${MAX_MIME_NESTING} levels`);
    }
    const listId = facts.listId ? normaliseListId(facts.listId) : null;
    const sender = senderKey(facts.from, message.envelopeFrom);
    const receivedAt = message.receivedAt ?? (options.now ? options.now() : new Date());

    const outcomes: RecipientOutcome[] = [];
    const writes: Array<{ index: number; item: NewMessage }> = [];
    // The identity that was authenticated must be the one the policy matches:
    // otherwise an aligned domain says nothing about the address (issue: a
    // From: read one way by mailauth and another by the policy).
    const sameIdentity = facts.from !== null && message.auth.identity === facts.from;
    const fromProblem =
      facts.fromProblem ??
      (message.auth.alignedDomain !== null && !sameIdentity
        ? `the authenticated identity ${JSON.stringify(message.auth.identity)} is not the From: address ${JSON.stringify(facts.from)}`
        : null);
    const decision: DecisionFacts = {
      channel: message.channel,
      origin: message.origin,
      from: facts.from,
      fromProblem,
      listId,
      alignedDomain: sameIdentity ? message.auth.alignedDomain : null,
      authenticatedDomains: message.auth.authenticatedDomains,
      autoSubmitted: facts.autoSubmitted || message.envelopeFrom === null,
      ownershipConfirmation: facts.ownershipConfirmation,
      at: receivedAt,
    };
    const expectations = new Map<number, ExpectMatch>();
    const inputs: PolicyInput[] = [];
    for (const user of message.recipients) {
      const { input, expected } = await policyInputFor(user, decision);
      if (expected) expectations.set(user.id, expected);
      inputs.push(input);
    }
    // The spam judgement enters the policy as one more fact (core/policy.ts).
    const spam = await scanIfStranger(message, inputs);
    const judgement = judgementOf(spam);
    for (const [i, user] of message.recipients.entries()) {
      outcomes.push({ user, verdict: decide({ ...inputs[i]!, spam: judgement }), messageId: null, spam });
    }
    const stored = Buffer.concat([Buffer.from(message.prepend + (spam ? spamHeaders(spam) : ''), 'utf8'), message.raw]);

    // One reply covers every recipient, so refusals are all or nothing. A
    // mix (a user switched to strict mid-transaction) is deferred rather than
    // half-stored: the sender retries, and a strict recipient then gets a
    // transaction of its own (protocols/smtp/server.ts).
    const refusals = outcomes.filter((o) => o.verdict.kind === 'refuse');
    if (refusals.length > 0) {
      const first = refusals[0]!.verdict;
      if (refusals.length < outcomes.length) {
        throw new ReplyError(451, '4.5.3', 'Recipients need separate transactions; please retry each separately');
      }
      if (first.kind === 'refuse') throw ReplyError.of(first.reply);
    }

    // One use of the matched entry is consumed in the delivery's own transaction (9.3): a
    // failure fails the delivery (the sender retries), never a use silently not counted.
    const consumeOf = (userId: number, verdict: Verdict) => {
      const match = expectations.get(userId);
      if (!match || verdict.kind !== 'inbox' || !verdict.reasons.some((r) => r.code === 'expected-sender')) return {};
      return { consumeExpect: { book: match.book, uid: match.uid, domain: match.domain, terms: match.terms, at: receivedAt } };
    };
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
          receivedAt,
          firstContact,
          ...(message.twmKey === undefined ? {} : { twmKey: message.twmKey }),
          ...consumeOf(user.id, verdict),
          // Strangers are listed in the Screener: held there in screen/strict
          // mode, as history in open mode (docs/architecture.md "Modes").
          request: firstContact
            ? {
                sender,
                authDomain: decision.alignedDomain,
                subject: facts.subject,
                spamScore: spam?.status === 'scanned' ? spam.score : null,
                likelySpam,
              }
            : undefined,
        },
      });
    }

    if (writes.length > 0) {
      const summaries = await store.messages.deliver(writes.map((w) => w.item));
      writes.forEach((w, i) => {
        outcomes[w.index]!.messageId = summaries[i]!.id;
      });
    }
    for (const outcome of outcomes) options.onOutcome?.(outcome, message);
    return outcomes;
  }

  return {
    findRecipient,
    ingest,
    predict: async (user, facts) => (await decideFor(user, facts)).verdict,
  };
}
