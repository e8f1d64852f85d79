/**
 * Repository contracts, one per aggregate. `main.ts` gets a `Store` from
 * `openStore(url)` (store/open.ts) and passes the repositories down; nothing
 * above this layer sees kysely or SQL.
 *
 * Every method is scoped by `userId` where the data is a user's: the caller
 * cannot reach another user's rows by id alone (per-user isolation is
 * enforced here, not only in the API).
 */
import type {
  ContactEntry,
  Contact,
  ContactRequest,
  ContactRequestStatus,
  Mailbox,
  MailboxName,
  MessageSummary,
  Mode,
  QueueEntry,
  QueueState,
  User,
} from '../core/types.ts';

export interface UserRepository {
  /** Creates the account and its four mailboxes (INBOX, Screener, Sent, Trash) in one transaction. Throws StoreConflictError if the address exists. */
  create(input: { address: string; passwordHash: string; mode: Mode }): Promise<User>;
  findByAddress(address: string): Promise<User | undefined>;
  findById(id: number): Promise<User | undefined>;
  list(): Promise<User[]>;
  setMode(userId: number, mode: Mode): Promise<void>;
  setPasswordHash(userId: number, passwordHash: string): Promise<void>;

  /** App passwords: named secrets for clients; only the hash is stored. */
  addAppPassword(userId: number, name: string, passwordHash: string): Promise<{ id: number }>;
  listAppPasswords(userId: number): Promise<Array<{ id: number; name: string; passwordHash: string; createdAt: Date }>>;
  removeAppPassword(userId: number, id: number): Promise<boolean>;

  /** API bearer tokens: only the SHA-256 of the token is stored. */
  addToken(userId: number, tokenHash: string, expiresAt: Date): Promise<void>;
  findToken(tokenHash: string): Promise<{ userId: number; expiresAt: Date } | undefined>;
  removeToken(tokenHash: string): Promise<void>;
  /** Revokes every token of the user (after a password change). Returns how many. */
  removeTokens(userId: number): Promise<number>;
}

export interface ContactRepository {
  list(userId: number, book?: string): Promise<Contact[]>;
  get(userId: number, book: string, uid: string): Promise<Contact | undefined>;
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
  request?: { sender: string; authDomain: string | null; subject: string | null };
}

export interface MessageRepository {
  /**
   * Stores the messages durably: the promise resolves only after the
   * transaction has committed to stable storage (SQLite synchronous=FULL,
   * PostgreSQL synchronous_commit). Concurrent calls are merged into one
   * transaction (group commit). Bodies are stored once per distinct content.
   */
  deliver(items: NewMessage[]): Promise<MessageSummary[]>;
  list(userId: number, options?: { mailbox?: MailboxName; limit?: number; offset?: number }): Promise<MessageSummary[]>;
  get(userId: number, id: number): Promise<(MessageSummary & { raw: Buffer }) | undefined>;
  mailboxes(userId: number): Promise<Array<Mailbox & { count: number }>>;
  /** Moves messages to another mailbox, assigning new UIDs there. Returns how many moved. */
  move(userId: number, ids: number[], to: MailboxName): Promise<number>;
  setFlags(userId: number, id: number, flags: string[]): Promise<boolean>;
  remove(userId: number, ids: number[]): Promise<number>;
}

export interface ContactRequestRepository {
  list(userId: number, options?: { status?: ContactRequestStatus }): Promise<ContactRequest[]>;
  get(userId: number, sender: string): Promise<ContactRequest | undefined>;
  /** The ids of the messages held in the Screener for these senders. */
  heldMessageIds(userId: number, senders: string[]): Promise<number[]>;
  /** Same, for every held sender of a domain (approve a whole domain). */
  sendersOfDomain(userId: number, domain: string): Promise<string[]>;
  setStatus(userId: number, senders: string[], status: ContactRequestStatus): Promise<number>;
  /** Forgets the requests (history) of these senders. Held messages must be dealt with first. */
  remove(userId: number, senders: string[]): Promise<number>;
}

export interface QueueRepository {
  /**
   * Durably queues one message for many recipients: one entry per recipient,
   * state `scheduled` at `at`. `sender` '' is the null reverse-path. `createdAt`
   * (the arrival time the retry schedule counts from) defaults to the current time.
   * Throws StoreConflictError if the messageId is already queued.
   */
  enqueue(input: { messageId: string; sender: string; recipients: string[]; raw: Buffer; at: Date; createdAt?: Date }): Promise<QueueEntry[]>;
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
  /** The stored message; undefined once removeMessageIfDone removed its body (or never queued). */
  raw(messageId: string): Promise<Buffer | undefined>;
  /** The stored message with its envelope sender ('' = null sender) and arrival time; undefined as for raw(). */
  message(messageId: string): Promise<{ messageId: string; sender: string; raw: Buffer; createdAt: Date } | undefined>;
  update(id: number, status: QueueState): Promise<void>;
  remove(id: number): Promise<boolean>;
  /**
   * Drops the stored body of a message once every one of its recipients is
   * delivered or failed; the recipient rows stay as history until prune().
   * True if this call removed the body.
   */
  removeMessageIfDone(messageId: string): Promise<boolean>;
  /**
   * Deletes delivered and failed entries finished before `olderThan`, and the
   * messages left without entries. Returns the number of entries deleted.
   */
  prune(olderThan: Date): Promise<number>;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  readonly users: UserRepository;
  readonly contacts: ContactRepository;
  readonly messages: MessageRepository;
  readonly requests: ContactRequestRepository;
  readonly queue: QueueRepository;
  close(): Promise<void>;
}

/** A unique constraint was violated (e.g. the address exists). */
export class StoreConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflictError';
  }
}
