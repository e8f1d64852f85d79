/**
 * Row types of the tables, as kysely sees them. Timestamps are integer
 * milliseconds since the epoch (bigint on PostgreSQL, read back as numbers by
 * the int8 parser installed in open.ts); booleans are integers 0/1; flags are
 * JSON text. Text columns that hold a domain union are typed as that union:
 * only this layer writes them. Repositories convert rows to core/types.ts.
 */
import type { Generated } from 'kysely';
import type { AppPasswordScope, ContactEntryKind, ContactEntry, ContactRequestStatus, MailboxName, Mode, QueueState } from '../core/types.ts';
import type { ReceiptError, ReceiptStatus, TwmInState, TwmOutState } from '../core/twm-types.ts';

export interface UsersTable {
  id: Generated<number>;
  address: string;
  password_hash: string;
  mode: Mode;
  created_at: number;
  /** 0/1, default 0 (migration 0003). */
  reveal_declined: Generated<number>;
}

export interface AppPasswordsTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  password_hash: string;
  created_at: number;
  /** The public id in `twp_<public_id>_<secret>` (migration 0005); unique. */
  public_id: string | null;
  /** `all` or `contacts` (migration 0005). */
  scope: Generated<AppPasswordScope>;
  last_used_at: number | null;
}

export interface ApiTokensTable {
  token_hash: string;
  user_id: number;
  expires_at: number;
  created_at: number;
  /** Set when the session was opened with an app password: it has that app password's scope (migration 0005). */
  app_password_id: number | null;
}

export interface MailboxesTable {
  id: Generated<number>;
  user_id: number;
  name: MailboxName;
  uid_validity: number;
  uid_next: number;
  /** RFC 7162 HIGHESTMODSEQ (migration 0009). */
  highest_modseq: Generated<number>;
  /** 0/1 (migration 0009). */
  subscribed: Generated<number>;
}

/** UIDs that left a mailbox, with the modseq of their removal (migration 0009). */
export interface ImapExpungesTable {
  id: Generated<number>;
  mailbox_id: number;
  uid: number;
  modseq: number;
}

export interface MessageBodiesTable {
  id: Generated<number>;
  sha256: string;
  raw: Buffer;
  size: number;
}

export interface MessagesTable {
  id: Generated<number>;
  user_id: number;
  mailbox_id: number;
  uid: number;
  flags: string;
  size: number;
  sender: string | null;
  from_addr: string | null;
  subject: string | null;
  received_at: number;
  first_contact: number;
  request_id: number | null;
  body_id: number;
  /** `<sender domain> <notice id>` of a message fetched over TWM (refetch idempotency); null otherwise. */
  twm_key: string | null;
  /** The modseq of the last change (migration 0009). */
  modseq: Generated<number>;
  /** JSON of core/mime-structure.ts MessageStructure; null until computed (migration 0009). */
  structure: string | null;
  /**
   * The IMAP wire text of ENVELOPE, BODYSTRUCTURE and BODY (core/imap-wire.ts),
   * rendered when the message is stored (migration 0019); null for messages
   * stored before, until first fetched, and for text PostgreSQL cannot hold (NUL).
   */
  imap_envelope: string | null;
  imap_bodystructure: string | null;
  imap_body: string | null;
}

export interface ContactsTable {
  id: Generated<number>;
  user_id: number;
  book: string;
  uid: string;
  vcard: string;
  etag: string;
  updated_at: number;
  /** The card's resource name in its CardDAV collection, unique per (user, book) (migration 0004). */
  href: string;
}

export interface ContactEntriesTable {
  id: Generated<number>;
  contact_id: number;
  user_id: number;
  kind: ContactEntryKind;
  value: string;
  action: ContactEntry['action'];
}

export interface ContactRequestsTable {
  id: Generated<number>;
  user_id: number;
  sender: string;
  auth_domain: string | null;
  first_seen: number;
  last_seen: number;
  count: number;
  sample_subject: string | null;
  status: ContactRequestStatus;
  /** The latest TWM notice's introduction (migration 0003). */
  intro: string | null;
  /** The latest scanned spam score, and 0/1 for "the latest attempt was likely spam" (migration 0005). */
  spam_score: number | null;
  likely_spam: Generated<number>;
  /** DMARC of the latest evaluated SMTP attempt: result and applied policy (migration 0011). */
  dmarc: string | null;
  dmarc_policy: string | null;
  /** The part after the sender's last @, whether anyone here allows it, and the Screener's rank (migration 0021, store/request-rank.ts). */
  sender_domain: string | null;
  known: 'address' | 'domain' | null;
  rank: Generated<number>;
}

/** Learning for rspamd, as retried work (migration 0005). */
export interface SpamLearningTable {
  id: Generated<number>;
  user_id: number;
  message_id: number;
  kind: 'spam' | 'ham';
  raw: Buffer;
  state: 'pending' | 'done' | 'failed';
  attempts: Generated<number>;
  next_attempt_at: number;
  last_error: string | null;
  outcome: string | null;
  created_at: number;
  done_at: number | null;
  /** The worker holding the row (migration 0027, store/spam-learning-claims.ts), and until when. */
  lease_owner: Generated<string | null>;
  lease_until: Generated<number | null>;
}

export interface QueueMessagesTable {
  id: Generated<number>;
  message_id: string;
  sender: string;
  /** core/address.ts senderKey(sender): the account the message is from, null if the sender does not parse (migration 0028). */
  sender_key: string | null;
  raw: Buffer;
  created_at: number;
  /** Set when the body was dropped after every recipient finished (raw is then empty). */
  body_removed_at: number | null;
}

export interface QueueRecipientsTable {
  id: Generated<number>;
  queue_message: number;
  recipient: string;
  state: QueueState['state'];
  next_attempt_at: number | null;
  attempts: Generated<number>;
  last_error: string | null;
  reply: string | null;
  done_at: number | null;
  /** The one "delayed" DSN was sent (kept across later states, like attempts). */
  warned_at: number | null;
  /** The process delivering it now (migration 0010), and until when its claim holds. */
  lease_owner: Generated<string | null>;
  lease_until: Generated<number | null>;
}

/** Sender side of TWM (migration 0003): one row per (message, recipient domain). */
export interface TwmOutNoticesTable {
  id: string;
  message_id: string;
  sender: string;
  /** As queue_messages.sender_key (migration 0028). */
  sender_key: string | null;
  domain: string;
  content: Buffer;
  subject: string | null;
  message_id_header: string | null;
  size: number;
  sha256: string;
  created_at: number;
  expires_at: number;
  /** The message octets; empty once body_removed_at is set, and always with body_in_queue. */
  body: Buffer;
  body_removed_at: number | null;
  expiry_reported_at: number | null;
  /** 1: the octets are the queue's (`queue_messages.raw` of `message_id`), kept there while this notice may serve them (migration 0022). */
  body_in_queue: number;
}

export interface TwmOutRecipientsTable {
  notice_id: string;
  recipient: string;
  state: TwmOutState;
  reason: string | null;
  updated_at: number;
}

/** A state a sent message's recipient entered, queue or TWM (migration 0020, recipient-events.ts). */
export interface RecipientEventsTable {
  id: Generated<number>;
  queue_recipient_id: number | null;
  twm_notice_id: string | null;
  recipient: string;
  state: string;
  detail: string | null;
  at: number;
}

/** Recipient side of TWM: the notice as received, keyed by (sender domain, id). */
export interface TwmInNoticesTable {
  sender_domain: string;
  id: string;
  content_sha256: string;
  from_addr: string;
  /** JSON array of addresses. */
  to_addrs: string;
  size: number;
  sha256: string;
  created_at: number;
  expires_at: number;
  intro: string | null;
  purpose: string | null;
  list_id: string | null;
  received_at: number;
}

export interface TwmInRecipientsTable {
  sender_domain: string;
  notice_id: string;
  rcpt: string;
  user_id: number | null;
  state: TwmInState;
  receipt: ReceiptStatus | null;
  receipt_error: ReceiptError | null;
  next_attempt_at: number | null;
  attempts: Generated<number>;
  last_error: string | null;
  updated_at: number;
  /** The process fetching or receipting it now (migration 0010), and until when its claim holds. */
  lease_owner: Generated<string | null>;
  lease_until: Generated<number | null>;
}

/** Periodic jobs run once per cluster (migration 0010): who runs `name` now, until when. */
export interface ClusterLeasesTable {
  name: string;
  owner: string;
  lease_until: number;
}

/** TWM replay protection (migration 0010): `keyid nonce`, remembered until the signature cannot pass any more. */
export interface TwmNoncesTable {
  key: string;
  expires_at: number;
}

/** Failure-report counters (migration 0017; docs/protocol.md 6.6). */
export interface TwmReportCountsTable {
  domain: string;
  /** UTC `YYYY-MM-DD`. */
  day: string;
  /** `success`, or a failure's result type. */
  result_type: string;
  count: number;
}

/** The first copy of a testing-mode sender's message per user (migration 0017; docs/protocol.md 6.6). */
export interface TwmCopiesTable {
  user_id: number;
  sender_domain: string;
  message_id: string;
  /** `twm` or `smtp`: the channel whose copy arrived first. */
  channel: string;
  created_at: number;
}


export interface Database {
  recipient_events: RecipientEventsTable;
  users: UsersTable;
  app_passwords: AppPasswordsTable;
  api_tokens: ApiTokensTable;
  mailboxes: MailboxesTable;
  message_bodies: MessageBodiesTable;
  messages: MessagesTable;
  contacts: ContactsTable;
  contact_entries: ContactEntriesTable;
  contact_requests: ContactRequestsTable;
  spam_learning: SpamLearningTable;
  queue_messages: QueueMessagesTable;
  queue_recipients: QueueRecipientsTable;
  address_books: AddressBooksTable;
  contact_changes: ContactChangesTable;
  twm_out_notices: TwmOutNoticesTable;
  twm_out_recipients: TwmOutRecipientsTable;
  twm_in_notices: TwmInNoticesTable;
  twm_in_recipients: TwmInRecipientsTable;
  imap_expunges: ImapExpungesTable;
  allowlist_changes: AllowlistChangesTable;
  web_sessions: WebSessionsTable;
  cluster_leases: ClusterLeasesTable;
  twm_nonces: TwmNoncesTable;
  twm_copies: TwmCopiesTable;
  twm_report_counts: TwmReportCountsTable;
}

/** Sessions of the web app (migration 0008): the cookie's id is stored as its SHA-256 only. */
export interface WebSessionsTable {
  id: Generated<number>;
  id_hash: string;
  user_id: number;
  csrf_secret: string;
  user_agent: string;
  client: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

export type Dialect = 'sqlite' | 'postgres';

/** A CardDAV address book (migration 0004); `sync_seq` counts its writes. */
export interface AddressBooksTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  display_name: string | null;
  description: string | null;
  sync_seq: number;
  /** Sync tokens below this were issued before forgotten tombstones: no longer valid. */
  pruned_seq: number;
  created_at: number;
}

/** The change log behind sync tokens: the latest write per (book, href); `deleted` 1 is a tombstone. */
export interface ContactChangesTable {
  id: Generated<number>;
  book_id: number;
  href: string;
  seq: number;
  deleted: number;
  changed_at: number;
}

/**
 * Users whose address book changed since their contact requests and pending
 * TWM notices were last re-decided (migration 0005): written in the same
 * transaction as every card write, consumed by services/decisions.ts.
 * `version` counts writes, so a reconcile clears only what it has seen.
 */
export interface AllowlistChangesTable {
  user_id: number;
  version: number;
  changed_at: number;
}
