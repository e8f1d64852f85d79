/**
 * The contract between the IMAP wire code and whatever keeps mail
 * (endpoints/imap/). The wire code parses commands, keeps each session's
 * view of its selected mailbox (sequence numbers, the modseq it has seen)
 * and writes responses; everything it knows about mail comes through an
 * `ImapAccount`, which the implementer gives out only after a login, so no
 * hook can be asked about another user's mail.
 */
import type { MessageStructure } from '../../core/mime-structure.ts';
import type { ImapWireText } from '../../core/imap-wire.ts';

/** A tagged NO or BAD with an RFC 5530 response code; the only error the wire code answers with. */
export class ImapError extends Error {
  constructor(
    readonly kind: 'NO' | 'BAD',
    /** e.g. `NONEXISTENT`, `ALREADYEXISTS`, `TOOBIG`, `CANNOT`, `LIMIT`, `AUTHENTICATIONFAILED`. */
    readonly code: string | null,
    text: string,
  ) {
    super(text);
    this.name = 'ImapError';
  }
}

export const no = (code: string | null, text: string) => new ImapError('NO', code, text);
export const bad = (code: string | null, text: string) => new ImapError('BAD', code, text);

export type SpecialUse = '\\Sent' | '\\Drafts' | '\\Junk' | '\\Trash' | null;

export interface MailboxInfo {
  id: number;
  name: string;
  specialUse: SpecialUse;
  subscribed: boolean;
}

export interface MailboxState extends MailboxInfo {
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
}

export interface MailboxStatus {
  messages: number;
  unseen: number;
  deleted: number;
  size: number;
  uidNext: number;
  uidValidity: number;
  highestModseq: number;
  mailboxId: number;
}

export interface MessageMeta {
  /** Stable across mailboxes for the same stored message (OBJECTID EMAILID). */
  id: number;
  uid: number;
  flags: string[];
  modseq: number;
  size: number;
  internalDate: Date;
}

export interface ImapAccount {
  readonly address: string;
  mailboxes(): Promise<MailboxInfo[]>;
  /** NO [NONEXISTENT] when there is none. */
  open(name: string): Promise<MailboxState>;
  status(name: string): Promise<MailboxStatus>;
  create(name: string): Promise<void>;
  delete(name: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  subscribe(name: string, on: boolean): Promise<void>;
  /** Every message of the mailbox by UID. */
  messages(mailboxId: number): Promise<MessageMeta[]>;
  /** What changed after `modseq`; `highestModseq` is read before the changes. */
  changesSince(mailboxId: number, modseq: number): Promise<{ highestModseq: number; changed: MessageMeta[]; expunged: number[] }>;
  structures(ids: number[]): Promise<Map<number, MessageStructure>>;
  /** ENVELOPE, BODYSTRUCTURE and, `withBody`, BODY (else ''), as rendered when each message was stored. */
  wireText(ids: number[], withBody: boolean): Promise<Map<number, ImapWireText>>;
  bodies(ids: number[]): Promise<Map<number, Buffer>>;
  setFlags(mailboxId: number, changes: Array<{ id: number; flags: string[] }>, unchangedSince?: number): Promise<{ updated: Array<{ id: number; modseq: number }>; failed: number[] }>;
  /**
   * COPY and MOVE: `uids` are given back for COPYUID (RFC 4315) when the
   * messages got UIDs in the target; a Screener decision may answer none.
   */
  copy(from: MailboxState, messages: MessageMeta[], target: string): Promise<{ uidValidity: number; pairs: Array<[number, number]> } | null>;
  move(from: MailboxState, messages: MessageMeta[], target: string): Promise<{ uidValidity: number; pairs: Array<[number, number]> } | null>;
  expunge(from: MailboxState, messages: MessageMeta[]): Promise<void>;
  /**
   * APPEND and MULTIAPPEND (RFC 3502): every message is stored, in one
   * transaction, or none is; the UIDs in the order given.
   */
  append(target: string, messages: Array<{ raw: Buffer; flags: string[]; date: Date | null }>): Promise<{ uidValidity: number; uids: number[] }>;
  /** Calls `listener` after any change to this user's mail; returns the unsubscribe function. */
  watch(listener: () => void): () => void;
  /** Called when the session ends (the per-user connection count). */
  release(): void;
}

export interface ImapHooks {
  /**
   * Checks a password (or app password) for `client` (the remote address,
   * for the throttle). Throws ImapError NO [AUTHENTICATIONFAILED] or
   * [UNAVAILABLE] / [LIMIT].
   */
  login(user: string, password: string, client: string): Promise<ImapAccount>;
}
