/**
 * Domain types shared by every layer. Pure data: no I/O, no library types.
 */

/** Per-user screening mode (docs/architecture.md "Modes"). `open` is the default: nothing changes for a new user. */
export const MODES = ['open', 'screen', 'strict'] as const;
export type Mode = (typeof MODES)[number];

/** The mailboxes every account has from creation. */
/** Every user's mailboxes (IMAP users may add folders of their own, named by any string). */
export const MAILBOXES = ['INBOX', 'Screener', 'Junk', 'Sent', 'Drafts', 'Trash'] as const;
export type MailboxName = (typeof MAILBOXES)[number];

export interface User {
  id: number;
  /** Lower-cased full address, the account's login name. */
  address: string;
  mode: Mode;
  /** Denying or blocking a TWM sender sends a `declined` receipt (docs/protocol.md 8.6). Off by default. */
  revealDeclined: boolean;
  /** `scrypt$N$r$p$salt$hash` (see core/password.ts); never logged or returned by an API. */
  passwordHash: string;
  createdAt: Date;
}

/**
 * What an app password may do (docs/reliability.md, "The app-password
 * model"): `all` every mail protocol (SMTP submission, the API's mail routes,
 * CardDAV); `contacts` CardDAV only. No app password manages the account.
 */
export const APP_PASSWORD_SCOPES = ['all', 'contacts'] as const;
export type AppPasswordScope = (typeof APP_PASSWORD_SCOPES)[number];

/** An app password as listed: never its secret or hash. */
export interface AppPassword {
  id: number;
  /** The public id inside the secret (`twp_<publicId>_<secret>`). */
  publicId: string;
  name: string;
  scope: AppPasswordScope;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** One vCard of a user's address book, kept exactly as it was written. */
export interface Contact {
  id: number;
  userId: number;
  /** Address book name; `default` until CardDAV adds more. */
  book: string;
  /** The card's UID property (or a generated one), unique per book. */
  uid: string;
  /** Its resource name in the book's CardDAV collection (chosen by the client that created it, or `<uid>.vcf`), unique per book. */
  href: string;
  /** The original vCard text, byte for byte. */
  vcard: string;
  etag: string;
  updatedAt: Date;
}

/**
 * What a vCard contributes to the policy index (see core/vcard/index-entries.ts and
 * docs/architecture.md "vCard profile"). `value` is normalised: lower-case
 * address, lower-case domain, lower-case list id without angle brackets.
 */
export type ContactEntryKind = 'address' | 'domain' | 'list' | 'expect';
export interface ContactEntry {
  kind: ContactEntryKind;
  value: string;
  /** `block` when the card carries X-TWOWAY-BLOCKED:TRUE (never on a card with `expect` entries). */
  action: 'allow' | 'block';
  /**
   * For `expect` entries only (X-TWOWAY-EXPECT, docs/protocol.md 10.2): the
   * purpose, the end of validity, and the uses left (null: unlimited until
   * `until`). The store indexes kind/value/action only; these are read back
   * from the card itself when a lookup hits an `expect` entry.
   */
  expect?: ExpectTerms;
  /**
   * For the index entry of an X-TWOWAY-EXPECT `FROM` parameter (the sending
   * domain a site declared): the property's own domain, whose entry a match
   * consumes a use of. Absent on every other entry.
   */
  declaredFor?: string;
}

/** The terms of one expected-sender entry. */
export interface ExpectTerms {
  purpose: string;
  until: Date;
  uses: number | null;
  /** The sending domain the site declared (`FROM`), also admitted; null: none. */
  from: string | null;
  /** `MARKER=REQUIRED`: only a message with the TWM-Purpose marker matches. */
  requireMarker: boolean;
}

export interface Mailbox {
  id: number;
  userId: number;
  name: MailboxName;
  /** IMAP UIDVALIDITY: fixed at creation, changes only if UIDs are ever reassigned. */
  uidValidity: number;
  /** The UID the next message appended to this mailbox will get. */
  uidNext: number;
}

/** A message as listed: metadata only. The body is fetched separately. */
export interface MessageSummary {
  id: number;
  userId: number;
  mailbox: MailboxName;
  uid: number;
  flags: string[];
  size: number;
  sender: string | null;
  from: string | null;
  subject: string | null;
  receivedAt: Date;
  /** The sender was not in the address book when it arrived (docs/architecture.md "Modes", `open` mode). */
  firstContact: boolean;
}

export type ContactRequestStatus = 'pending' | 'approved' | 'denied';

/**
 * A message's DMARC evaluation for its From: domain (RFC 7489), as recorded
 * per contact request: `result` is mailauth's (`pass`, `fail`, `none` when
 * the domain publishes no record, `temperror`, `permerror`); `policy` is the
 * domain's published policy that applied (`p=`, or `sp=` for a subdomain),
 * null without a record.
 */
export interface DmarcFact {
  result: string;
  policy: string | null;
}

/** The Screener's unit: every attempt of one sender to reach one user. */
export interface ContactRequest {
  id: number;
  userId: number;
  /** Lower-cased sender address (the From: address). */
  sender: string;
  /** The domain that authenticated the attempt (DMARC-aligned SPF/DKIM, or TWM signature), if any. */
  authDomain: string | null;
  firstSeen: Date;
  lastSeen: Date;
  count: number;
  sampleSubject: string | null;
  /** The introduction of the latest TWM notice (plain text, shown as such), if any. */
  intro: string | null;
  status: ContactRequestStatus;
  /** Messages currently held for this request in the Screener mailbox. */
  held: number;
  /** The latest scanned spam score of the sender's mail (null: never scanned). */
  spamScore: number | null;
  /** The latest attempt was judged likely spam: listed apart. */
  likelySpam: boolean;
  /** DMARC of the latest SMTP attempt that was evaluated (null: never, e.g. only TWM notices or local mail). */
  dmarc: DmarcFact | null;
}

/** Outbound queue, one row per (message, recipient): queue state lives per recipient. */
export type QueueState =
  | { state: 'scheduled'; nextAttemptAt: Date }
  | {
      state: 'deferred';
      nextAttemptAt: Date;
      attempts: number;
      lastError: string;
      /**
       * When the sender was sent the one "delayed" DSN for this recipient.
       * Read back as a Date or null; on write, undefined keeps the stored value.
       */
      warnedAt?: Date | null;
    }
  | { state: 'delivered'; deliveredAt: Date; reply: string }
  | { state: 'failed'; failedAt: Date; lastError: string };

export interface QueueEntry {
  id: number;
  messageId: string;
  /** Envelope sender; '' is the null reverse-path `<>` (a DSN: never answered with a DSN). */
  sender: string;
  recipient: string;
  /** When the message was queued (its arrival: retries give up and warn relative to it). */
  createdAt: Date;
  status: QueueState;
}
