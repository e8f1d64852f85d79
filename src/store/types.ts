/**
 * Repository contracts, one per aggregate. `main.ts` gets a `Store` from
 * `openStore(url)` (store/open.ts) and passes the repositories down; nothing
 * above this layer sees kysely or SQL.
 *
 * Every method is scoped by `userId` where the data is a user's: the caller
 * cannot reach another user's rows by id alone (per-user isolation is
 * enforced here, not only in the API).
 */
import type { MessageStructure } from '../core/mime-structure.ts';
import type { ImapWireText } from '../core/imap-wire.ts';
import type { StructureColumns } from '../core/prepared-body.ts';
import type {
  AppPassword,
  AppPasswordScope,
  ContactEntry,
  ExpectTerms,
  Contact,
  ContactRequest,
  ContactRequestStatus,
  DmarcFact,
  Mailbox,
  MailboxName,
  MessageSummary,
  Mode,
  QueueEntry,
  QueueState,
  User,
} from '../core/types.ts';
import type { ReceiptError, ReceiptStatus, TwmInState, TwmOutState } from '../core/twm-types.ts';

export interface UserRepository {
  /** Creates the account and its mailboxes (INBOX, Screener, Junk, Sent, Trash) in one transaction. Throws StoreConflictError if the address exists. */
  create(input: { address: string; passwordHash: string; mode: Mode }): Promise<User>;
  findByAddress(address: string): Promise<User | undefined>;
  findById(id: number): Promise<User | undefined>;
  list(): Promise<User[]>;
  setMode(userId: number, mode: Mode): Promise<void>;
  setPasswordHash(userId: number, passwordHash: string): Promise<void>;
  setRevealDeclined(userId: number, reveal: boolean): Promise<void>;

  /**
   * App passwords: named secrets for clients; only the hash is stored.
   * `addAppPassword` refuses (StoreConflictError) past `max` for the user.
   */
  addAppPassword(userId: number, input: { publicId: string; name: string; scope: AppPasswordScope; passwordHash: string }, max: number): Promise<AppPassword>;
  listAppPasswords(userId: number): Promise<AppPassword[]>;
  /** The one app password with this public id (login looks it up by id, never by trying hashes). */
  findAppPassword(publicId: string): Promise<(AppPassword & { userId: number; passwordHash: string }) | undefined>;
  touchAppPassword(id: number, at: Date): Promise<void>;
  /** Also ends the sessions opened with it. */
  removeAppPassword(userId: number, id: number): Promise<boolean>;
  /** Revokes every app password of the user (after a password change). Returns how many. */
  removeAppPasswords(userId: number): Promise<number>;

  /** API bearer tokens: only the SHA-256 of the token is stored. `appPasswordId`: opened with that app password. */
  addToken(userId: number, tokenHash: string, expiresAt: Date, appPasswordId?: number | null): Promise<void>;
  findToken(tokenHash: string): Promise<{ userId: number; expiresAt: Date; appPasswordId: number | null } | undefined>;
  findAppPasswordById(userId: number, id: number): Promise<AppPassword | undefined>;
  removeToken(tokenHash: string): Promise<void>;
  /** Revokes every token of the user (after a password change). Returns how many. */
  removeTokens(userId: number): Promise<number>;
}

export interface ContactRepository {
  list(userId: number, book?: string): Promise<Contact[]>;
  get(userId: number, book: string, uid: string): Promise<Contact | undefined>;
  /** One card by its row id, only if it is this user's (the web app's URLs name cards by id). */
  byId(userId: number, id: number): Promise<Contact | undefined>;
  /**
   * One page of the user's cards, newest first, key-paged by id (`beforeId`:
   * the last id of the previous page), optionally only cards whose vCard text
   * contains `text` (case-insensitive). Reads at most `limit + 1` rows of the
   * index, so the caller knows whether an older page exists.
   */
  page(userId: number, options: { beforeId?: number; text?: string; limit: number }): Promise<Contact[]>;
  /** How many cards the user has, in all books. */
  count(userId: number): Promise<number>;
  /**
   * Inserts or replaces the card (book, uid) and its policy index entries in
   * one transaction. The vCard text is stored exactly as given; a new etag is
   * computed from it.
   */
  put(userId: number, card: { book: string; uid: string; vcard: string; entries: ContactEntry[] }): Promise<Contact>;
  remove(userId: number, book: string, uid: string): Promise<boolean>;
  /**
   * The policy lookup: every index entry of this user whose (kind, value)
   * equals one of the probes. Served by an index on (user_id, kind, value), so
   * its cost does not grow with the size of the address book.
   */
  match(userId: number, probes: Array<{ kind: ContactEntry['kind']; value: string }>): Promise<Array<ContactEntry & { uid: string; book: string }>>;
  /** Server-wide: which of these address/domain values any account allows (the Screener's reputation). */
  allowedAnywhere(probes: Array<{ kind: 'address' | 'domain'; value: string }>): Promise<Array<{ kind: 'address' | 'domain'; value: string }>>;
}

/** A message to be stored in one user's mailbox. */
export interface NewMessage {
  userId: number;
  mailbox: MailboxName;
  raw: Buffer;
  flags: string[];
  sender: string | null;
  from: string | null;
  subject: string | null;
  receivedAt: Date;
  firstContact: boolean;
  /**
   * When set, the Screener's request for this sender is created or updated
   * (count + 1, lastSeen, sampleSubject if none) in the same transaction, and
   * the message is linked to it when it is held in the Screener mailbox.
   */
  request?: { sender: string; authDomain: string | null; subject: string | null; spamScore?: number | null; likelySpam?: boolean; dmarc?: DmarcFact | null };
  /**
   * The key a message was stored under, so that storing it again is noticed: for a message
   * fetched over TWM `<sender domain> <notice id>` (see MessageRepository.withTwmKey); for a
   * generated Screener request `screener …`; for an imported one `import <sha256> <folder>`.
   */
  twmKey?: string;
  /**
   * An expected-sender entry whose use this delivery consumes, in the same
   * transaction (docs/protocol.md 9.3; store/expect-consume.ts).
   */
  consumeExpect?: { book: string; uid: string; domain: string; terms: ExpectTerms; at: Date };
  /**
   * The SHA-256 and structure columns of `raw`, computed ahead (off the event loop, by the
   * authentication worker: core/prepared-body.ts); absent, the store computes them. Only ever
   * the values prepareBody gives for these very bytes.
   */
  prepared?: { sha256: string; columns: StructureColumns };
}

export interface MessageListOptions {
  mailbox?: MailboxName;
  limit?: number;
  offset?: number;
  /** With `mailbox`: only UIDs below this, newest first (key paging; the web app's message list). */
  beforeUid?: number;
  /** With `mailbox`: newest first (the first page of key paging). */
  newestFirst?: boolean;
  /** Case-insensitive substring of the subject or the From: address. */
  text?: string;
}

export interface MessageRepository {
  /**
   * Stores the messages durably: the promise resolves only after the
   * transaction has committed to stable storage (SQLite synchronous=FULL,
   * PostgreSQL synchronous_commit). Concurrent calls are merged into one
   * transaction (group commit). Bodies are stored once per distinct content.
   */
  deliver(items: NewMessage[]): Promise<MessageSummary[]>;
  /**
   * For a server, once it listens: on a SQLite file the writer's thread starts, and deliveries
   * commit there from then on (store/message-writer.ts). Keeps no process alive.
   */
  warm(): void;
  list(userId: number, options?: MessageListOptions): Promise<MessageSummary[]>;
  get(userId: number, id: number): Promise<(MessageSummary & { raw: Buffer }) | undefined>;
  mailboxes(userId: number): Promise<Array<Mailbox & { count: number }>>;
  /** The users among `userIds` that already have a message stored with this TWM key (a refetch). */
  withTwmKey(userIds: number[], twmKey: string): Promise<number[]>;
  /**
   * Testing mode (docs/protocol.md 6.6): records `channel` as the first copy of the message
   * (`senderDomain`, `messageId`) for each user that has no copy yet, and returns the users whose
   * first copy is this channel's (new, or a retry of the same channel). The others already got
   * the other channel's copy: this one is the second, to be discarded.
   */
  claimFirstCopy(userIds: number[], senderDomain: string, messageId: string, channel: 'twm' | 'smtp', at: Date): Promise<number[]>;
  /** Forgets first-copy records older than `before` (they pair nothing any more). */
  pruneCopies(before: Date): Promise<number>;
  /** Which of `keys` one user already has a message stored under (`twoway import` skips those: a second run adds nothing). */
  twmKeysOf(userId: number, keys: readonly string[]): Promise<Set<string>>;
  /**
   * Moves messages to another mailbox, assigning new UIDs there. Returns how
   * many moved. With `teach`, learning for the spam filter is queued in the
   * same transaction (SpamLearningRepository): `auto` teaches spam for a move
   * into Junk and ham for a move out of it (except into Trash); `spam`/`ham`
   * teach that class for every moved message.
   */
  move(userId: number, ids: number[], to: MailboxName, teach?: 'auto' | LearnKind): Promise<number>;
  setFlags(userId: number, id: number, flags: string[]): Promise<boolean>;
  remove(userId: number, ids: number[]): Promise<number>;
}

export type LearnKind = 'spam' | 'ham';

/** One message to teach the spam filter (migration 0005). */
export interface SpamLearnItem {
  id: number;
  userId: number;
  messageId: number;
  kind: LearnKind;
  /** The copy of the message to send; empty once the row is done or failed (migration 0029). */
  raw: Buffer;
  state: 'pending' | 'done' | 'failed';
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  /** What rspamd did: `learned`, `already-learned` or `skipped`. */
  outcome: string | null;
}

/**
 * What a finished learning attempt's write did: `written`; `class-changed`
 * (the row asks for the other class now: nothing recorded, the lease freed);
 * `lease-lost` (another process took the row over: refused).
 */
export type LearnWrite = 'written' | 'class-changed' | 'lease-lost';

/**
 * Learning as retried work (store/spam-learning-repository.ts), claimed with
 * leases like the queue (store/spam-learning-claims.ts): any number of
 * processes run the worker on one store, and one row goes to one of them.
 */
export interface SpamLearningRepository {
  /** Queues learning (same rules as `MessageRepository.move`'s teach). A row leased keeps its lease through a change of class. */
  queue(userId: number, items: Array<{ messageId: number; kind: LearnKind }>, at: Date): Promise<void>;
  /** Pending rows with nextAttemptAt <= now, oldest first, leased or not (a look, not a claim). */
  due(now: Date, limit: number): Promise<SpamLearnItem[]>;
  /** Claims up to `limit` pending rows due at `now` that are free or whose lease expired; oldest due first. */
  claim(now: Date, limit: number, lease: Lease): Promise<SpamLearnItem[]>;
  /** Extends the owner's leases on these rows; returns the ids it still held. */
  renew(ids: readonly number[], lease: Lease): Promise<number[]>;
  /** Frees the owner's leases on these rows (claimed, not sent). */
  release(ids: readonly number[], owner: string): Promise<void>;
  list(options?: { userId?: number }): Promise<SpamLearnItem[]>;
  /** Marks the row done and releases its copy, if it still asks for `kind` and `owner` holds its lease; ends the lease. */
  done(id: number, kind: LearnKind, owner: string, outcome: string, at: Date): Promise<LearnWrite>;
  /** Records a failed attempt, under the same conditions as `done`; `failed`: give up (the copy is released). */
  retry(id: number, kind: LearnKind, owner: string, change: { attempts: number; nextAttemptAt: Date; error: string; failed: boolean }): Promise<LearnWrite>;
  /**
   * Deletes the rows done or failed whose message is gone: they guard a class change that can no
   * longer come. Pending rows stay (their copy still goes to rspamd). Returns how many went.
   */
  pruneGone(): Promise<number>;
}

/** Where a key page of the Screener starts: after the request with this rank, last-seen time and id. */
export interface RequestPageKey {
  rank: number;
  lastSeen: Date;
  id: number;
}

export interface ContactRequestRepository {
  list(userId: number, options?: { status?: ContactRequestStatus }): Promise<ContactRequest[]>;
  /**
   * Pending requests by their stored rank (core/reputation.ts; store/request-rank.ts), then most recent:
   * `limit` of them after `after`, each with whether someone on this server allows it. Likely spam only with `likelySpam`.
   */
  pendingPage(
    userId: number,
    options: { after?: RequestPageKey | undefined; limit: number; likelySpam: boolean },
  ): Promise<Array<ContactRequest & { rank: number; known: 'address' | 'domain' | null }>>;
  pendingCounts(userId: number): Promise<{ listed: number; likelySpam: number }>;
  get(userId: number, sender: string): Promise<ContactRequest | undefined>;
  /** The ids of the messages held in the Screener for these senders. */
  heldMessageIds(userId: number, senders: string[]): Promise<number[]>;
  /** Same, for every held sender of a domain (approve a whole domain). */
  sendersOfDomain(userId: number, domain: string): Promise<string[]>;
  /** Sets the status; with `from`, only of requests in one of those statuses (a conditional update). */
  setStatus(userId: number, senders: string[], status: ContactRequestStatus, from?: readonly ContactRequestStatus[]): Promise<number>;
  /** Forgets the requests (history) of these senders. Held messages must be dealt with first. */
  remove(userId: number, senders: string[]): Promise<number>;
}

/** A claim on work rows: who (a process's id, unique in the cluster) and until when. */
export interface Lease {
  owner: string;
  until: Date;
}

/** Named leases: a periodic job runs in one process of the cluster at a time (store/lease-repository.ts). */
export interface ClusterLeaseRepository {
  /** Takes or renews `name` for `owner` until now + ttlMs; false if another owner holds an unexpired lease. */
  acquire(name: string, owner: string, now: Date, ttlMs: number): Promise<boolean>;
  /** Gives the lease up if `owner` holds it (a clean shutdown: another process takes over at once). */
  release(name: string, owner: string): Promise<void>;
  /** The owner of an unexpired lease on `name`. */
  holder(name: string, now: Date): Promise<string | undefined>;
  /**
   * Frees every lease (queue entries, TWM rows, spam learning rows, named leases) whose owner is
   * `<node>/…` but not `owner`: an earlier incarnation of this process's slot,
   * dead since it started. Returns how many leases were freed.
   */
  releaseEarlier(node: string, owner: string): Promise<number>;
}

/** TWM replay protection shared by every process (docs/protocol.md 5.5). */
export interface TwmNonceRepository {
  /** Records `key` until `until`; false if it is recorded and not expired at `now` (a replay). */
  remember(key: string, until: Date, now: Date): Promise<boolean>;
  /** Forgets the expired ones; returns how many. */
  prune(now: Date): Promise<number>;
}

/** Failure-report counters (docs/protocol.md 6.6): per reporting domain, UTC day and result type. */
export interface TwmReportRepository {
  /** Adds `n` to each counter, in one transaction. */
  add(entries: Array<{ domain: string; day: string; resultType: string; n: number }>): Promise<void>;
  /** The (domain, day) pairs with counters for days before `day` (finished days), oldest first. */
  finished(day: string, limit: number): Promise<Array<{ domain: string; day: string }>>;
  /** One domain's counters of one day. */
  counts(domain: string, day: string): Promise<Map<string, number>>;
  /** Forgets one domain's counters of one day (reported, or nobody to report to). */
  remove(domain: string, day: string): Promise<void>;
}

/** A state a sent message's recipient entered: the queue's or Two-Way Mail's, with its error, reply or reason. */
export interface RecipientEvent {
  state: string;
  detail: string | null;
  at: Date;
}

export interface QueueRepository {
  /**
   * Durably queues one message for many recipients: one entry per recipient,
   * state `scheduled` at `at`. `sender` '' is the null reverse-path. `createdAt`
   * (the arrival time the retry schedule counts from) defaults to the current time.
   * `copy` is stored in the same transaction (as MessageRepository.deliver
   * would): the sender's Sent copy, so that the message and its copy are
   * durable together, with one commit.
   * Throws StoreConflictError if the messageId is already queued.
   */
  enqueue(input: { messageId: string; sender: string; recipients: string[]; raw: Buffer; at: Date; createdAt?: Date; copy?: NewMessage }): Promise<QueueEntry[]>;
  /**
   * Entries that are scheduled or deferred with nextAttemptAt <= now, oldest
   * first, up to limit. `excludeIds` and `excludeDomains` (lower-case recipient
   * domains) leave out entries the caller cannot take now (already in flight,
   * destination at its concurrency limit), so that they do not use up the
   * limit; keep both lists short (they become bound parameters).
   */
  due(now: Date, limit: number, options?: { excludeIds?: readonly number[]; excludeDomains?: readonly string[] }): Promise<QueueEntry[]>;
  get(id: number): Promise<QueueEntry | undefined>;
  list(options?: { state?: QueueState['state'] }): Promise<QueueEntry[]>;
  /**
   * The entries of the account `sender` names (core/address.ts senderKey: the same address or a
   * `+tag` subaddress of it, in any case): those of its newest `limit` messages (the limit
   * counts messages, each with all its recipients; every message without one), or of these
   * `messageIds` only; newest message first, a message's recipients in insertion order. Through
   * the index on `sender_key` (migration 0028), never the other senders' rows.
   */
  listBySender(sender: string, options?: { limit?: number; messageIds?: readonly string[] }): Promise<QueueEntry[]>;
  /** The states each of these entries entered, oldest first (migration 0020): scheduled, deferred, delivered, failed, with the error or reply. */
  history(ids: readonly number[]): Promise<Map<number, RecipientEvent[]>>;
  /** The stored message; undefined once its body was dropped (or never queued). */
  raw(messageId: string): Promise<Buffer | undefined>;
  /** The stored message with its envelope sender ('' = null sender) and arrival time; undefined as for raw(). */
  message(messageId: string): Promise<{ messageId: string; sender: string; raw: Buffer; createdAt: Date } | undefined>;
  /**
   * Writes a recipient's state. With `owner` (a worker's attempt) only while
   * that owner still holds the entry's lease: false if the lease was taken
   * over (a late write, refused); the write ends the lease. Without `owner`
   * (an administrator's change) it always writes and leaves the lease alone.
   * With `dropBodyOf` (the entry's message id), a delivered or failed state
   * written also drops the message's body in the same transaction once no
   * recipient is left to deliver and no open TWM notice serves it (twm-body-sharing.ts).
   */
  update(id: number, status: QueueState, owner?: string, dropBodyOf?: string): Promise<boolean>;
  /**
   * Claims due entries for `lease.owner` until `lease.until`: scheduled or
   * deferred with nextAttemptAt <= now, and free (no lease, or an expired
   * one: its owner died or hung). Oldest first: the `limit` first, and with
   * them the other claimable entries of their messages (a message's
   * recipients at one domain go in one call however small the limit), leaving out
   * `excludeDomains` (lower-case recipient domains at their concurrency
   * limit) and `excludeIds` (entries the caller is still busy with: their
   * new state may already be written, the caller has not yet let go of
   * them). Any number of processes may claim at once: each entry goes to
   * one of them (a conditional update; FOR UPDATE SKIP LOCKED on PostgreSQL).
   */
  claim(now: Date, limit: number, lease: Lease, options?: { excludeDomains?: readonly string[]; excludeIds?: readonly number[] }): Promise<QueueEntry[]>;
  /** Extends the owner's leases on `ids` to `lease.until`; returns the ids it still holds. */
  renew(ids: readonly number[], lease: Lease): Promise<number[]>;
  /** Gives up the owner's leases on `ids` (claimed but not started): due again for anyone. */
  release(ids: readonly number[], owner: string): Promise<void>;
  /**
   * Makes scheduled and deferred entries due at `now` (postqueue -f): every
   * one, or only those of `ids`. Deferred entries keep their attempts and last
   * error, so the backoff and the delay warning go on from where they were.
   * Returns the ids it made due, in id order.
   */
  flush(now: Date, ids?: readonly number[]): Promise<number[]>;
  remove(id: number): Promise<boolean>;
  /**
   * Deletes delivered and failed entries finished before `olderThan`, and the
   * messages left without entries. Returns the number of entries deleted.
   */
  prune(olderThan: Date): Promise<number>;
}

/** A notice this server sent (sender side, docs/protocol.md section 7). */
export interface TwmOutNotice {
  /** The notice id (section 6.1). */
  id: string;
  /** The queue message it was made from (QueueEntry.messageId). */
  messageId: string;
  /** Envelope sender of the submission: the local user who gets status messages. */
  sender: string;
  /** The recipient domain (lower-case). */
  domain: string;
  /** The notice's exact JSON octets, sent unchanged on every attempt. */
  content: Buffer;
  /** The message's Subject and Message-ID, for status views and messages. */
  subject: string | null;
  messageIdHeader: string | null;
  size: number;
  sha256: string;
  createdAt: Date;
  expiresAt: Date;
  /** The body was deleted (every recipient final, or expiry). */
  bodyRemoved: boolean;
  /** The one expiry status message was sent (section 7.5 rule 2). */
  expiryReported: boolean;
}

export interface TwmOutRecipient {
  noticeId: string;
  recipient: string;
  state: TwmOutState;
  /** Why it failed, or the last notice/receipt detail. */
  reason: string | null;
  updatedAt: Date;
}

export interface TwmOutboundRepository {
  /**
   * Stores the body, the notice and one `queued` row per recipient durably,
   * in one transaction. A message may have several notices for one domain
   * (the queue may hand its recipients over in several calls); the caller
   * makes a notice only for recipients no notice of the message lists yet.
   * Throws StoreConflictError if the id exists.
   */
  create(input: {
    notice: Omit<TwmOutNotice, 'bodyRemoved' | 'expiryReported'>;
    recipients: string[];
    raw: Buffer;
    /**
     * `raw` is the queue's body of `notice.messageId`: the notice serves that copy instead of
     * storing its own, if the queue still holds it (store/twm-body-sharing.ts).
     */
    bodyInQueue?: boolean;
  }): Promise<TwmOutNotice>;
  get(id: string): Promise<(TwmOutNotice & { recipients: TwmOutRecipient[] }) | undefined>;
  /** The notices made from a queue message for a domain, oldest first, with their recipients. */
  findByMessage(messageId: string, domain: string): Promise<Array<TwmOutNotice & { recipients: TwmOutRecipient[] }>>;
  /** The message octets; undefined once removed. */
  body(id: string): Promise<Buffer | undefined>;
  /**
   * What a fetch's or a receipt's entitlement needs (docs/protocol.md 5.4 step 9), in one read:
   * the recipient domain, the expiry and the recipients (lower-case, ordered by address).
   */
  facts(id: string): Promise<{ domain: string; expiresAt: Date; recipients: string[] } | undefined>;
  /** What serving a fetch needs, in one read: the expiry and the octets (undefined once removed). */
  servable(id: string): Promise<{ expiresAt: Date; body: Buffer | undefined } | undefined>;
  /**
   * Moves the listed recipients of a notice to `to` where their state is one
   * of `from` (conditional update: concurrent fetches and receipts cannot
   * undo a final state). Durable before it resolves. Returns the recipients
   * that changed. When the change leaves no recipient open, the body is
   * removed in the same transaction.
   */
  transition(id: string, recipients: string[], change: { from: readonly TwmOutState[]; to: TwmOutState; reason?: string | null }, at: Date): Promise<string[]>;
  /**
   * Notices that still have recipients in one of `states` and whose
   * `expiresAt` is at or before `before`, oldest first, up to `limit`.
   */
  expiring(states: readonly TwmOutState[], before: Date, limit: number): Promise<Array<TwmOutNotice & { recipients: TwmOutRecipient[] }>>;
  /** Deletes the stored body (keeps the notice and rows as history). */
  removeBody(id: string): Promise<void>;
  setExpiryReported(id: string): Promise<void>;
  /**
   * The notices of the account `sender` names (core/address.ts senderKey: the same address or a
   * `+tag` subaddress of it, in any case), newest first, with their recipients: every notice of
   * the `limit` messages whose newest notice is newest (all messages without a limit), or of
   * these `messageIds` only. Through the index on `sender_key` (migration 0028).
   */
  listBySender(sender: string, options?: { limit?: number; messageIds?: readonly string[] }): Promise<Array<TwmOutNotice & { recipients: TwmOutRecipient[] }>>;
  /** Deletes notices (and rows) whose every recipient is final and that expired before `olderThan`. Returns how many. */
  prune(olderThan: Date): Promise<number>;
  /** The states each recipient of these notices entered, oldest first (migration 0020), keyed `noticeId\nrecipient`. */
  history(noticeIds: readonly string[]): Promise<Map<string, RecipientEvent[]>>;
}

/** A notice this server received (recipient side, docs/protocol.md section 8). */
export interface TwmInNotice {
  senderDomain: string;
  id: string;
  /** Hex SHA-256 of the notice's request content (section 5.5 id rules). */
  contentSha256: string;
  from: string;
  to: string[];
  size: number;
  sha256: string;
  createdAt: Date;
  expiresAt: Date;
  intro: string | null;
  purpose: string | null;
  listId: string | null;
  receivedAt: Date;
}

export interface TwmInRecipient {
  senderDomain: string;
  noticeId: string;
  rcpt: string;
  /** The local user, null for `unknown`. */
  userId: number | null;
  state: TwmInState;
  /** For `receipt-due` (and kept after `closed`): what the receipt says. */
  receipt: ReceiptStatus | null;
  receiptError: ReceiptError | null;
  /** When a `scheduled` fetch or a `receipt-due` receipt is next attempted. */
  nextAttemptAt: Date | null;
  attempts: number;
  lastError: string | null;
  updatedAt: Date;
}

/** The Screener side of a pending notice: created or counted in the same transaction as the notice. */
export interface TwmRequestTouch {
  userId: number;
  sender: string;
  authDomain: string;
  intro: string | null;
  at: Date;
  /** The introduction's spam score, when the spam filter scanned it (it only ranks the request). */
  spamScore?: number | null;
  /** The introduction was judged likely spam (or worse). */
  likelySpam?: boolean;
}

export type TwmInRecipientChange = Partial<Pick<TwmInRecipient, 'state' | 'receipt' | 'receiptError' | 'nextAttemptAt' | 'attempts' | 'lastError'>>;

export interface TwmInboundRepository {
  find(senderDomain: string, id: string): Promise<{ notice: TwmInNotice; recipients: TwmInRecipient[] } | undefined>;
  /**
   * Records a new notice, its recipient rows and the contact requests of its
   * `pending` recipients (count + 1, lastSeen, intro; created `pending` if
   * new) in one durable transaction. Throws StoreConflictError if
   * (senderDomain, id) exists.
   * `nonce`: a TWM request nonce (5.5) to remember in the same transaction, as TwmNonceRepository.remember
   * would; when it is taken, nothing is recorded and this throws NonceSeenError.
   */
  record(
    notice: TwmInNotice,
    recipients: Array<Omit<TwmInRecipient, 'updatedAt' | 'attempts' | 'lastError'>>,
    requests: TwmRequestTouch[],
    nonce?: TwmNonceWrite,
  ): Promise<void>;
  /**
   * record(), except that a notice already recorded (senderDomain, id) is not an error: nothing of
   * it is written (its rows and requests stay as they are; the nonce is still remembered) and
   * this resolves with the stored notice as find() returns it. Resolves undefined when recorded.
   * The notice path's "seen before" lookup folded into the write (endpoints/twm/inbox.ts).
   */
  recordUnlessKnown(
    notice: TwmInNotice,
    recipients: Array<Omit<TwmInRecipient, 'updatedAt' | 'attempts' | 'lastError'>>,
    requests: TwmRequestTouch[],
    nonce?: TwmNonceWrite,
  ): Promise<{ notice: TwmInNotice; recipients: TwmInRecipient[] } | undefined>;
  /** Rows in `scheduled` or `receipt-due` with nextAttemptAt <= now, with their notice, oldest first. */
  due(now: Date, limit: number): Promise<Array<{ notice: TwmInNotice; recipient: TwmInRecipient }>>;
  /**
   * Applies `change` to the listed recipients of a notice whose state is one
   * of `from`. Durable before it resolves. Returns the rcpts that changed.
   */
  update(senderDomain: string, id: string, rcpts: string[], from: readonly TwmInState[], change: TwmInRecipientChange, at: Date, owner?: string): Promise<string[]>;
  /**
   * Claims the due rows (as due()) of up to `limit` notices for `lease.owner`
   * until `lease.until`, leaving out rows another live owner holds. With an
   * `owner`, update() changes only rows that owner still holds, and ends
   * their lease (a late write after a takeover changes nothing).
   */
  claim(now: Date, limit: number, lease: Lease): Promise<Array<{ notice: TwmInNotice; recipient: TwmInRecipient }>>;
  /** Extends the owner's leases on the rows of the listed notices (`senderDomain id`); returns how many rows it still holds. */
  renew(notices: readonly string[], lease: Lease): Promise<number>;
  /**
   * A sender's retry of the notice (docs/protocol.md 8.4): its rows whose fetch was given up
   * (`expired` with at least one attempt, no receipt, no live lease) go back
   * to `scheduled`, due at `now`, with no attempts and no lease, if the notice has not expired
   * (expiresAt > now). One conditional write, durable before it resolves; returns the rcpts
   * changed. Rows expired by time or the pending hold, and every other state, stay as they are.
   */
  rescheduleGivenUp(senderDomain: string, id: string, now: Date): Promise<string[]>;
  /**
   * A user's rows in one of `states` whose notice comes from one of `senders`
   * (addresses) or from `domain` or a subdomain of it (`any`: every sender), with expiresAt > now.
   */
  forUser(userId: number, match: { senders?: string[]; domain?: string } | 'any', states: readonly TwmInState[], now: Date): Promise<Array<{ notice: TwmInNotice; recipient: TwmInRecipient }>>;
  /**
   * Moves pending/held/scheduled rows of notices with expiresAt <= now to `expired`, and `pending`
   * rows of notices received at or before `pendingReceivedBefore` (the pending hold of
   * docs/protocol.md 12.7). Returns how many.
   */
  expire(now: Date, pendingReceivedBefore?: Date): Promise<number>;
  /** The user's stored `pending` notices: from this sender address (lower-cased), and in all (the caps of 12.7). */
  countPending(userId: number, sender: string): Promise<{ fromSender: number; total: number }>;
  /** countPending's `fromSender` alone (the total is the costlier count: endpoints/twm/pending-totals.ts). */
  countPendingFrom(userId: number, sender: string): Promise<number>;
  /** Deletes notices whose every row is final and that expired before `olderThan`. */
  prune(olderThan: Date): Promise<number>;
}

/** A mailbox as IMAP sees it: the six every user has, and folders of their own (any name). */
export interface ImapMailbox {
  id: number;
  userId: number;
  name: string;
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  subscribed: boolean;
}

export interface ImapMessage {
  id: number;
  uid: number;
  flags: string[];
  modseq: number;
  size: number;
  internalDate: Date;
  /** The Screener request sender this message is held for (null when not held). */
  heldFor: string | null;
  twmKey: string | null;
}

export interface ImapMailRepository {
  mailboxes(userId: number): Promise<ImapMailbox[]>;
  /** By name; `INBOX` in any case. */
  mailbox(userId: number, name: string): Promise<ImapMailbox | undefined>;
  /** Throws StoreConflictError if it exists. */
  create(userId: number, name: string): Promise<ImapMailbox>;
  /** Deletes the mailbox and its messages. */
  remove(userId: number, name: string): Promise<boolean>;
  /** Renames the mailbox and the ones below it (`from/...`); StoreConflictError if `to` exists. */
  rename(userId: number, from: string, to: string): Promise<boolean>;
  subscribe(userId: number, name: string, subscribed: boolean): Promise<boolean>;
  counts(mailboxId: number): Promise<{ messages: number; unseen: number; deleted: number; size: number }>;
  /** Every message of the mailbox, by UID. */
  messages(mailboxId: number): Promise<ImapMessage[]>;
  /** Messages changed (arrived or flags) after `modseq`, and UIDs removed after it. */
  changesSince(mailboxId: number, modseq: number): Promise<{ changed: ImapMessage[]; expunged: number[] }>;
  bodies(userId: number, ids: number[]): Promise<Map<number, Buffer>>;
  /** ENVELOPE and BODYSTRUCTURE as stored (computed and stored now for messages from before migration 0009). */
  structures(userId: number, ids: number[]): Promise<Map<number, MessageStructure>>;
  /**
   * The IMAP wire text of ENVELOPE, BODYSTRUCTURE and, `withBody`, BODY (else
   * ''), as stored at ingest (rendered and stored now for messages from
   * before migration 0019).
   */
  wireText(userId: number, ids: number[], withBody: boolean): Promise<Map<number, ImapWireText>>;
  /**
   * Sets the flags of messages of one mailbox under one new modseq. With
   * `unchangedSince`, messages changed after it are left alone and listed in
   * `failed` (RFC 7162 UNCHANGEDSINCE).
   */
  setFlags(
    userId: number,
    mailboxId: number,
    changes: Array<{ id: number; flags: string[] }>,
    unchangedSince?: number,
  ): Promise<{ updated: Array<{ id: number; modseq: number }>; failed: number[] }>;
  /**
   * Copies into another mailbox (new UIDs there, the same body); in the
   * order given. With `teach: 'auto'`, learning for the spam filter is
   * queued in the same transaction by the rule of `MessageRepository.move`
   * (into Junk: spam; out of Junk but not into Trash: ham), keyed by the
   * source message (a client without MOVE copies, then expunges).
   */
  copy(userId: number, ids: number[], targetMailboxId: number, teach?: 'auto'): Promise<Array<{ id: number; uid: number }>>;
  /**
   * Moves into another mailbox (new UIDs, expunges recorded at the source);
   * with `onlyFrom`, only messages still in that mailbox; `teach` as for copy.
   */
  move(userId: number, ids: number[], targetMailboxId: number, onlyFrom?: number, teach?: 'auto'): Promise<Array<{ id: number; uid: number }>>;
  expunge(userId: number, mailboxId: number, ids: number[]): Promise<number>;
}

export type { ChangeBus } from './change-bus.ts';

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * This open created the store (its first migration ran now): no earlier
   * process can have accepted a request with it (the replay rule of
   * docs/protocol.md 5.5 then has no restart to cover).
   */
  readonly createdNow?: boolean;
  readonly imap: ImapMailRepository;
  /** Announces committed changes to a user's mailboxes (IMAP sessions listen). */
  readonly changes: import('./change-bus.ts').ChangeBus;
  readonly users: UserRepository;
  readonly contacts: ContactRepository;
  readonly messages: MessageRepository;
  readonly requests: ContactRequestRepository;
  readonly queue: QueueRepository;
  readonly addressBooks: AddressBookRepository;
  readonly twmOut: TwmOutboundRepository;
  readonly twmIn: TwmInboundRepository;
  readonly spamLearning: SpamLearningRepository;
  readonly webSessions: WebSessionRepository;
  readonly leases: ClusterLeaseRepository;
  readonly twmNonces: TwmNonceRepository;
  readonly twmReports: TwmReportRepository;
  /** Events for every process on the store: LISTEN/NOTIFY on PostgreSQL, in-process on SQLite (pg-notify.ts). */
  readonly signals: import('./pg-notify.ts').StoreSignals;
  close(): Promise<void>;
}

/** A nonce to remember (TwmInboundRepository.record): its key, until when, and the caller's clock. */
export interface TwmNonceWrite {
  key: string;
  until: Date;
  now: Date;
}

/** The nonce given to TwmInboundRepository.record was remembered already (a replay): nothing was recorded. */
export class NonceSeenError extends Error {
  constructor() {
    super('the nonce was seen before');
    this.name = 'NonceSeenError';
  }
}

/** A unique constraint was violated (e.g. the address exists). */
export class StoreConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflictError';
  }
}

/** A CardDAV address book (collection) of one user. */
export interface AddressBook {
  id: number;
  userId: number;
  /** The collection's URL segment; `default` is every user's first book. */
  name: string;
  displayName: string | null;
  description: string | null;
  /** Number of writes so far: the ctag and the sync token are derived from it (and the id). */
  syncSeq: number;
  /** Sync tokens below this are no longer valid (their tombstones were pruned). */
  prunedSeq: number;
  createdAt: Date;
}

/**
 * Preconditions of a card write (RFC 9110 If-Match / If-None-Match), checked
 * inside the write's transaction so no other write can slip in between.
 * Each list holds quoted strong ETags.
 */
export interface CardConditions {
  ifMatch?: '*' | string[];
  ifNoneMatch?: '*' | string[];
}

export type CardPutResult =
  | { status: 'ok'; contact: Contact; created: boolean }
  | { status: 'precondition-failed' }
  /** Another card of the book has this UID (RFC 6352 no-uid-conflict); `href` is its resource name. */
  | { status: 'uid-conflict'; href: string }
  | { status: 'no-book' };

/**
 * Address books as CardDAV sees them: collections, cards by resource name
 * (href), and the change log behind sync tokens. Every card write, here or
 * through ContactRepository, advances the book's `syncSeq` and logs the
 * href in the same transaction.
 */
export interface AddressBookRepository {
  list(userId: number): Promise<AddressBook[]>;
  get(userId: number, name: string): Promise<AddressBook | undefined>;
  /** The book, created empty if missing (the lazily created default book). */
  ensure(userId: number, name: string): Promise<AddressBook>;
  /** Creates an empty book; StoreConflictError if the user has one of that name. */
  create(userId: number, input: { name: string; displayName?: string | null; description?: string | null }): Promise<AddressBook>;
  /** Sets properties (undefined: unchanged). False if there is no such book. */
  update(userId: number, name: string, patch: { displayName?: string | null; description?: string | null }): Promise<boolean>;
  /** Deletes the book with its cards, their index entries and its change log. */
  remove(userId: number, name: string): Promise<boolean>;
  getCard(userId: number, book: string, href: string): Promise<Contact | undefined>;
  /**
   * Creates or replaces the card at `href` (its text as given, a new ETag
   * from it) with its index entries. `uid` null keeps the UID key of the
   * card being replaced (or makes one up): for cards without a UID property.
   */
  putCard(
    userId: number,
    card: { book: string; href: string; uid: string | null; vcard: string; entries: ContactEntry[] },
    conditions?: CardConditions,
  ): Promise<CardPutResult>;
  removeCard(userId: number, book: string, href: string, conditions?: CardConditions): Promise<'deleted' | 'not-found' | 'precondition-failed'>;
  /**
   * The hrefs written since `sinceSeq` (their latest state: `deleted` for
   * tombstones), and the book's current `seq`. 'invalid' when `sinceSeq` is
   * not a number this book handed out or its tombstones were pruned;
   * undefined when there is no such book.
   */
  changes(userId: number, book: string, sinceSeq: number): Promise<{ seq: number; changes: Array<{ href: string; deleted: boolean }> } | 'invalid' | undefined>;
  /** Server-wide: forgets tombstones older than `olderThan` (tokens issued before them become invalid). Returns how many. */
  pruneTombstones(olderThan: Date): Promise<number>;
  /** Every card with an index entry of this kind: server-wide (the expected-sender sweep) or one user's (the cap on live entries). */
  cardsWithEntryKind(kind: ContactEntry['kind'], userId?: number): Promise<Array<{ userId: number; book: string; href: string }>>;
  /**
   * Users whose allowlist changed (any card write or book removal marks the
   * user in the write's transaction) and the mark's version, oldest first.
   */
  changedAllowlists(limit: number): Promise<Array<{ userId: number; version: number }>>;
  /** Clears the mark if it still has this version (a later write keeps it). True if cleared. */
  settleAllowlist(userId: number, version: number): Promise<boolean>;
}

/** A session of the web app; `idHash` is the SHA-256 (hex) of the cookie's id. */
export interface WebSession {
  id: number;
  idHash: string;
  userId: number;
  csrfSecret: string;
  userAgent: string;
  client: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

export interface WebSessionRepository {
  create(session: Omit<WebSession, 'id'>): Promise<WebSession>;
  /** The session with this id hash, if it has not expired at `now`. */
  find(idHash: string, now: Date): Promise<WebSession | undefined>;
  /** Records activity: a later last-seen time and a later expiry (sliding). */
  touch(id: number, lastSeenAt: Date, expiresAt: Date): Promise<void>;
  /** The user's unexpired sessions, most recently seen first. */
  list(userId: number, now: Date): Promise<WebSession[]>;
  /** Ends one session of this user; false if the user has no such session. */
  remove(userId: number, id: number): Promise<boolean>;
  /** Ends every session of the user (a password change); returns how many. */
  removeAll(userId: number): Promise<number>;
  /** Deletes sessions that expired before `now`. */
  prune(now: Date): Promise<number>;
}
