/**
 * THE delivery policy (docs/architecture.md "Modes" and "The policy"): a pure function from the facts
 * about one message for one recipient to a verdict, with the reasons kept as
 * data (after maddy's CheckResult / Stalwart's RcptResolution). No I/O: the
 * caller has already looked up the address book and authenticated the
 * message; this module only combines the answers.
 *
 * Two steps:
 *
 * 1. Classify the sender as allowed, blocked or a stranger. Precedence, most
 *    specific first:
 *    - an address `block` entry, then a list `block` entry: blocked (blocks
 *      need no authentication: dropping a forgery of a blocked sender harms
 *      no one);
 *    - an address `allow` entry: allowed if the From: domain is
 *      authenticated. It overrides a domain block (the user singled this
 *      address out). Unauthenticated, it is a forged or unverifiable copy of
 *      an allowed address: a stranger, reason `unauthenticated-allowed`;
 *    - otherwise a domain `block`: blocked; a domain `allow`: allowed if
 *      authenticated, else a stranger as above;
 *    - a list `allow` entry allows the message if the List-Id is covered by
 *      an authenticated domain, else it adds `unauthenticated-list`;
 *    - anything else is a stranger.
 *    A message without one undisputed From: address (`fromProblem`: none,
 *    several, unparsable, or read differently by mailauth) is never
 *    allowed: after the blocks above it is a stranger, reason
 *    `ambiguous-from` (RFC 7489 6.6.1 permits refusing it).
 *    A list block beats an address allow: it silences that list's traffic,
 *    while the same person's direct mail (no List-Id) still arrives.
 *
 * 2. Map (class, mode, channel) to a verdict:
 *
 *    | class    | open                    | screen | strict, smtp       | strict, twm |
 *    |----------|-------------------------|--------|--------------------|-------------|
 *    | allowed  | inbox                   | inbox  | inbox              | inbox       |
 *    | blocked  | drop                    | drop   | refuse 550 5.7.1 * | drop        |
 *    | stranger | inbox, first contact    | screen | refuse 550 5.7.1 * | screen      |
 *
 *    (*) An auto-submitted message (or one with a null envelope sender) is
 *    dropped instead: refusing it makes the sending MTA bounce an automatic
 *    message to a possibly forged address, i.e. backscatter (RFC 3834 spirit).
 *    Our own notices (`origin: 'system'`) always go to the inbox.
 *
 *    Expected senders (docs/protocol.md 9.3): a stranger's message that is
 *    authenticated and matches a live expected-sender entry goes to the
 *    inbox in every mode, marked first contact, reason `expected-sender`,
 *    if it carries the ownership-confirmation marker or the entry does not
 *    require it (real sites do not send the marker yet). It never makes the
 *    sender a contact; the caller consumes one use of the entry. Blocks
 *    still win, and an allowed sender stays `allowed` (consuming nothing).
 *    The marker alone, or an entry with MARKER=REQUIRED and an unmarked
 *    message, changes nothing.
 *
 * Spam (core/spam.ts): the judgement of the spam filter is one more fact,
 * `spam`, null when the message was not scanned (no filter, filter down,
 * message too large, or every recipient allows the sender: ingest skips the
 * scan then). It never changes the verdict of an allowed sender or of our
 * own notices: contacts are never junked. For everyone else:
 *
 *    | spam     | open             | screen                | strict, smtp | strict, twm           |
 *    |----------|------------------|-----------------------|--------------|-----------------------|
 *    | reject   | refuse 550 5.7.1 † | refuse 550 5.7.1 †  | refuse 550 5.7.1 † | refuse 550 5.7.1 † |
 *    | likely   | junk             | screen, likely spam   | (as above)   | screen, likely spam   |
 *    | greylist | smtp: 451 4.7.1  | smtp: 451 4.7.1       | (as above)   | (no effect)           |
 *
 *    (†) An automatic message is never refused: it is treated as `likely`
 *    (blocked senders' mail is still dropped). Greylisting is temporary, so
 *    it applies to automatic messages too (the sending MTA retries; nothing
 *    bounces). A TWM fetch cannot be greylisted: we are the client.
 *    `reject` outranks an expected sender; `likely` and `greylist` do not.
 *
 * Blocked and stranger refusals share one text on purpose: the reply must not
 * tell a sender that the recipient blocked them.
 */
import type { SpamJudgement } from './spam.ts';
import type { Mode } from './types.ts';
import type { ServerReply } from './reply.ts';

export type Channel = 'smtp' | 'twm';
/** `system`: this server's own notices (DSNs, status messages). */
export type Origin = 'remote' | 'local' | 'system';
export type MatchAction = 'allow' | 'block' | null;

export interface PolicyMatches {
  /** Action of the address book entry for the exact From: address. */
  address: MatchAction;
  /** Action of the most specific entry for the From: domain or a parent of it. */
  domain: MatchAction;
  /** Action of the entry for the message's List-Id. */
  list: MatchAction;
}

export interface PolicyInput {
  mode: Mode;
  channel: Channel;
  origin: Origin;
  /** Header From: address, normalised (lower-cased); null when absent or unparsable. */
  from: string | null;
  /**
   * Why the message has no trustworthy author (no From:, several mailboxes
   * or fields, unparsable, or parsers disagree: mail/from.ts), else
   * null/absent. Such a message is never allowed (RFC 7489 6.6.1).
   */
  fromProblem?: string | null;
  /**
   * The From: domain is authenticated: a DMARC-aligned SPF or DKIM pass for
   * SMTP, a verified notice signature for TWM, an authenticated submission
   * for local mail.
   */
  authenticated: boolean;
  matches: PolicyMatches;
  /** The List-Id is, or is under, a domain that authenticated the message. */
  listAuthenticated: boolean;
  /** Auto-Submitted present and not `no`, or a null envelope sender. */
  autoSubmitted: boolean;
  /**
   * The message carries the ownership-confirmation marker
   * (`TWM-Purpose: ownership-confirmation`, docs/protocol.md 9.2).
   */
  ownershipConfirmation: boolean;
  /**
   * A live expected-sender entry (X-TWOWAY-EXPECT, purpose
   * ownership-confirmation) matches the authenticated From: domain (its
   * own domain or the sending domain the site declared): `none`, or whether
   * that entry requires the marker (`MARKER=REQUIRED`). When several match,
   * the caller names one that a marked message may use, and prefers one
   * that needs no marker for an unmarked one.
   */
  expected: ExpectedEntry;
  /** The spam filter's judgement; null when the message was not scanned (see module comment). */
  spam: SpamJudgement | null;
}

export type ExpectedEntry = 'none' | 'marker-required' | 'marker-optional';

export const REASON_CODES = [
  'system',
  'allowed-address',
  'allowed-domain',
  'allowed-list',
  'blocked-address',
  'blocked-domain',
  'blocked-list',
  'unauthenticated-allowed',
  'unauthenticated-list',
  'stranger',
  'auto-submitted',
  'expected-sender',
  'ambiguous-from',
  'spam',
  'likely-spam',
  'greylisted',
] as const;
export type ReasonCode = (typeof REASON_CODES)[number];

/** Why a verdict was reached: a stable code for programs, a sentence for people and logs. */
export interface Reason {
  code: ReasonCode;
  detail: string;
}

/** The reply of a refusal (core/reply.ts). */
export type SmtpReply = ServerReply;

export type Verdict =
  /** Deliver to INBOX. `firstContact`: the sender is a stranger (open mode). */
  | { kind: 'inbox'; firstContact: boolean; reasons: Reason[] }
  /** Hold as a contact request (SMTP: store in the Screener; TWM: do not fetch the body). `likelySpam`: sorted apart. */
  | { kind: 'screen'; likelySpam: boolean; reasons: Reason[] }
  /** Deliver to Junk (likely spam from a stranger, open mode); always a first contact. */
  | { kind: 'junk'; reasons: Reason[] }
  /** Reject in-protocol (SMTP end of DATA) with this reply (a 4xx one for greylisting). */
  | { kind: 'refuse'; reply: SmtpReply; reasons: Reason[] }
  /** Accept and discard silently. */
  | { kind: 'drop'; reasons: Reason[] };
export type VerdictKind = Verdict['kind'];

export type SenderClass = 'allowed' | 'blocked' | 'stranger';

/** The strict-mode refusal for strangers and blocked senders alike (see module comment). */
export const STRICT_REFUSAL: Readonly<SmtpReply> = Object.freeze({
  code: 550,
  enhanced: '5.7.1',
  text:
    'This mailbox accepts mail only from its contacts; ask the recipient to add you, or use Two-Way Mail',
});

/** The refusal of a message the spam filter rejects. */
export const SPAM_REFUSAL: Readonly<SmtpReply> = Object.freeze({
  code: 550,
  enhanced: '5.7.1',
  text: 'Message refused as spam',
});

/** The temporary answer to a greylisted message. */
export const GREYLIST_REPLY: Readonly<SmtpReply> = Object.freeze({
  code: 451,
  enhanced: '4.7.1',
  text: 'Greylisted: please try again later',
});

/** Step 1: allowed, blocked or stranger, with the reasons (see module comment for precedence). */
export function classifySender(input: PolicyInput): { senderClass: SenderClass; reasons: Reason[] } {
  const { matches: m, authenticated } = input;
  const who = input.from ?? '(no From: address)';
  // No closures here: every decision (a stranger's notice, every accepted message) runs this.
  const reasons: Reason[] = [];

  if (m.address === 'block') return classified('blocked', reasons, 'blocked-address', `${who} is blocked in the address book`);
  if (m.list === 'block') return classified('blocked', reasons, 'blocked-list', 'the List-Id is blocked in the address book');
  // Without one undisputed author nothing can be allowed (a domain block still applies).
  if (input.fromProblem) {
    if (m.address !== 'allow' && m.domain === 'block') return classified('blocked', reasons, 'blocked-domain', `the domain of ${who} is blocked in the address book`);
    return classified('stranger', reasons, 'ambiguous-from', `no single undisputed From: address (${input.fromProblem})`);
  }

  if (m.address === 'allow') {
    if (authenticated) return classified('allowed', reasons, 'allowed-address', `${who} is in the address book`);
    // The address entry still outranks a domain block: screen, don't drop.
    reasons.push(unauthenticatedAllowed(who, 'address'));
  } else if (m.domain === 'block') {
    return classified('blocked', reasons, 'blocked-domain', `the domain of ${who} is blocked in the address book`);
  } else if (m.domain === 'allow') {
    if (authenticated) return classified('allowed', reasons, 'allowed-domain', `the domain of ${who} is in the address book`);
    reasons.push(unauthenticatedAllowed(who, 'domain'));
  }

  if (m.list === 'allow') {
    if (input.listAuthenticated) return classified('allowed', reasons, 'allowed-list', 'the List-Id is in the address book');
    reasons.push({
      code: 'unauthenticated-list',
      detail: 'the List-Id is in the address book, but no authenticated domain covers it',
    });
  }
  return classified('stranger', reasons, 'stranger', `${who} is not in the address book`);
}

/** classifySender's answer: the reasons so far, then the deciding one. */
function classified(senderClass: SenderClass, reasons: readonly Reason[], code: ReasonCode, detail: string): { senderClass: SenderClass; reasons: Reason[] } {
  return { senderClass, reasons: [...reasons, { code, detail }] };
}

function unauthenticatedAllowed(who: string, level: string): Reason {
  return {
    code: 'unauthenticated-allowed',
    detail: `${who} matches an allowed ${level} entry, but the From: domain is not authenticated (forged or unverifiable)`,
  };
}

/** The policy: one message, one recipient, one verdict. */
export function decide(input: PolicyInput): Verdict {
  if (input.origin === 'system') {
    return { kind: 'inbox', firstContact: false, reasons: [{ code: 'system', detail: 'notice from this server' }] };
  }
  const { senderClass, reasons } = classifySender(input);
  if (input.autoSubmitted) {
    reasons.push({ code: 'auto-submitted', detail: 'automatic message (Auto-Submitted or null envelope sender)' });
  }

  // Contacts are never junked: the spam judgement is not even looked at.
  if (senderClass === 'allowed') return { kind: 'inbox', firstContact: false, reasons };
  let spam = input.spam;
  if (spam === 'reject') {
    reasons.push({ code: 'spam', detail: 'the spam filter rejects the message' });
    if (!input.autoSubmitted) return { kind: 'refuse', reply: { ...SPAM_REFUSAL }, reasons };
    spam = 'likely'; // never refuse an automatic message (backscatter): keep it apart instead
  }
  if (senderClass === 'stranger' && !input.fromProblem && input.authenticated && expectedAdmits(input)) {
    const what = input.ownershipConfirmation ? 'ownership confirmation' : 'message';
    reasons.push({
      code: 'expected-sender',
      detail: `${what} from ${input.from ?? '(no From: address)'} matches an expected-sender entry`,
    });
    return { kind: 'inbox', firstContact: true, reasons };
  }
  if (input.mode === 'strict' && input.channel === 'smtp') {
    // Refusing an automatic message would make the sending MTA bounce it: backscatter.
    if (input.autoSubmitted) return { kind: 'drop', reasons };
    return { kind: 'refuse', reply: { ...STRICT_REFUSAL }, reasons };
  }
  if (senderClass === 'blocked') return { kind: 'drop', reasons };
  // A stranger, and not strict SMTP:
  if (spam === 'greylist' && input.channel === 'smtp') {
    reasons.push({ code: 'greylisted', detail: 'the spam filter asks to greylist the message' });
    return { kind: 'refuse', reply: { ...GREYLIST_REPLY }, reasons };
  }
  if (spam === 'likely') {
    reasons.push({ code: 'likely-spam', detail: 'the spam filter judges the message likely spam' });
    return input.mode === 'open' ? { kind: 'junk', reasons } : { kind: 'screen', likelySpam: true, reasons };
  }
  return input.mode === 'open' ? { kind: 'inbox', firstContact: true, reasons } : { kind: 'screen', likelySpam: false, reasons };
}

/** An entry admits a marked message; an unmarked one only if the entry does not require the marker. */
function expectedAdmits(input: PolicyInput): boolean {
  if (input.expected === 'none') return false;
  return input.ownershipConfirmation || input.expected === 'marker-optional';
}
