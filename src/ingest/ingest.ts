/**
 * The one entry path for every message (Postfix's cleanup): SMTP inbound,
 * submission to local users, TWM fetches and system notices all call
 * `ingest`. For each recipient it decides with the pure policy, then stores
 * every copy in one durable write; the caller acknowledges only after the
 * returned promise resolves.
 */
import { decide, type PolicyInput, type Verdict } from '../core/policy.ts';
import { judgementOf, spamHeaders, type SpamScan } from '../core/spam.ts';
import type { DmarcFact, User } from '../core/types.ts';
import { ExpectUsedUpError } from '../core/errors.ts';
import type { Store } from '../store/types.ts';
import type { Header, MessageFacts } from '../mail/headers.ts';
import type { StoredForm } from '../mail/authenticate.ts';
import { DEFAULT_HEADER_LIMITS, type HeaderLimits } from '../core/header-limits.ts';
import type { ExpectCardStore, ExpectMatch } from './expected-senders.ts';
import {
  decisionFactsFor,
  findRecipient,
  messageWrites,
  policyInputFor,
  readMessage,
  refuseAllOrNone,
  scanIfStranger,
  withoutStoredCopies,
  withoutSecondCopies,
} from './ingest-steps.ts';

export interface IngestMessage {
  channel: PolicyInput['channel'];
  origin: PolicyInput['origin'];
  /** MAIL FROM; null for the null reverse-path (bounces). */
  envelopeFrom: string | null;
  /** Local users, as resolved by `findRecipient`. */
  recipients: User[];
  /** The message as received. */
  raw: Buffer;
  /**
   * The header fields of `raw` (mail/headers.ts `parseHeaders`), when the caller parsed them
   * already (the MX hooks do, for the authentication); absent, ingest parses them.
   */
  headers?: Header[];
  /**
   * `mimeNestingDepth(raw, MAX_MIME_NESTING)` (mail/mime-depth.ts), when the authentication
   * worker measured it; absent, ingest measures it.
   */
  mimeDepth?: number;
  /** `messageFacts(headers)`, when the caller read them already (the MX hooks do, for the From: identity); only with `headers`. */
  facts?: MessageFacts;
  /** Trace and authentication header lines (CRLF-terminated) to prepend when storing. */
  prepend: string;
  /**
   * `prepend` and `raw` as stored, with their SHA-256 and structure columns, computed ahead
   * (by the authentication worker: mail/authenticate.ts StoredForm). Used only when nothing
   * else is prepended (no spam headers), else computed here.
   */
  stored?: StoredForm;
  /**
   * Authentication of the message: `identity` is the From: address whose
   * domain alignment was checked for (AuthOutcome.identity), `alignedDomain`
   * the authenticated domain aligned with it (null: not authenticated);
   * `authenticatedDomains` are all domains that authenticated the message.
   * The message counts as authenticated only when `identity` is the
   * policy's From: address (MessageFacts.from) itself. `dmarc`: the DMARC
   * evaluation of the From: domain (SMTP only), recorded on the contact
   * request for the Screener's order (core/reputation.ts), never a policy
   * input.
   */
  auth: { identity: string | null; alignedDomain: string | null; authenticatedDomains: string[]; dmarc?: DmarcFact | null };
  /**
   * A message a mailing list or forwarder relayed under its own name (TWM,
   * docs/protocol.md 7.6): its address, the message's Sender:, which `auth`
   * authenticated. The policy decides on it instead of the From: author:
   * the author's domain signed nothing, so the author's address-book
   * entries do not apply (neither allow nor block), and a contact request is
   * the list's or forwarder's. The From: is kept for display only.
   */
  relayedBy?: string;
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
  scan(input: { raw: Buffer; envelopeFrom: string | null; recipients: string[]; ip?: string; helo?: string | null; senderAuthenticated?: boolean }): Promise<SpamScan>;
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
  /**
   * The identity the policy decides on, in parseAddress's normal form: the author (MessageFacts.from),
   * or the list or forwarder that relayed the message (`IngestMessage.relayedBy`); null when there is none.
   */
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

export { MAX_MIME_NESTING } from './ingest-steps.ts';

export function createIngest(options: IngestOptions): Ingest {
  const { store } = options;
  const cards: ExpectCardStore = {
    get: (userId, book, uid) => store.contacts.get(userId, book, uid),
    putCard: (userId, card, conditions) => store.addressBooks.putCard(userId, card, conditions),
    removeCard: (userId, book, href, conditions) => store.addressBooks.removeCard(userId, book, href, conditions),
  };

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
    const unstored = await withoutStoredCopies(store, input);
    if (unstored === null) return [];
    const read = await readMessage(unstored, options.maxReceivedHeaders, options.headerLimits ?? DEFAULT_HEADER_LIMITS);
    const { facts } = read;
    const receivedAt = unstored.receivedAt ?? (options.now ? options.now() : new Date());
    const message = await withoutSecondCopies(store, unstored, read, receivedAt);
    if (message === null) return [];
    const decision = decisionFactsFor(message, facts, receivedAt);
    const expectations = new Map<number, ExpectMatch>();
    const inputs: PolicyInput[] = [];
    for (const user of message.recipients) {
      const { input, expected } = await policyInputFor(store, cards, user, decision);
      if (expected) expectations.set(user.id, expected);
      inputs.push(input);
    }
    // The spam judgement enters the policy as one more fact (core/policy.ts).
    const spam = await scanIfStranger(options.spam, message, inputs);
    const judgement = judgementOf(spam);
    const outcomes: RecipientOutcome[] = message.recipients.map((user, i) => ({
      user,
      verdict: decide({ ...inputs[i]!, spam: judgement }),
      messageId: null,
      spam,
    }));
    refuseAllOrNone(outcomes);

    const prepend = message.prepend + (spam ? spamHeaders(spam) : '');
    const ahead = message.stored !== undefined && message.stored.prepend === prepend ? message.stored : undefined;
    const stored = ahead ? ahead.raw : Buffer.concat([Buffer.from(prepend, 'utf8'), message.raw]);
    const prepared = ahead ? { sha256: ahead.sha256, columns: ahead.columns } : undefined;
    const writes = messageWrites(outcomes, { message, facts, decision, stored, prepared, spam });
    // One use of the matched entry is consumed in the delivery's own transaction (9.3): a failure
    // fails the delivery (the sender retries), never a use silently not counted.
    for (const w of writes) {
      const { user, verdict } = outcomes[w.index]!;
      const match = expectations.get(user.id);
      if (!match || verdict.kind !== 'inbox' || !verdict.reasons.some((r) => r.code === 'expected-sender')) continue;
      w.item.consumeExpect = { book: match.book, uid: match.uid, domain: match.domain, terms: match.terms, at: receivedAt };
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
    findRecipient: (address) => findRecipient(store, address),
    ingest,
    predict: async (user, facts) => decide((await policyInputFor(store, cards, user, facts)).input),
  };
}
