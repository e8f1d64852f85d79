/**
 * The IMAP listener's hooks: logins through the accounts service (with the
 * shared per-client throttle), each account's mail through the store's IMAP
 * repository, and the Screener as a folder (docs/imap.md "The Screener"):
 *
 * - held SMTP mail is in `Screener` as it is;
 * - each pending Two-Way Mail notice gets a small generated message there
 *   (twm_key `screener <domain> <id> <sender>`), made when a session looks
 *   and removed once the notice is no longer pending;
 * - MOVE or COPY of a held or generated message to any folder but Junk and
 *   Trash approves the sender through services.screener.approve (the same
 *   stored decision as `twoway requests approve`); to Junk or Trash denies;
 * - with `learn`, moving held or ordinary mail into or out of Junk teaches
 *   the spam filter (ImapHooksInput.learn); a generated stand-in never does.
 */
import { parseStructure } from '../../core/mime-structure.ts';
import { DomainError, ReplyError } from '../../core/errors.ts';
import type { User } from '../../core/types.ts';
import { no, type ImapAccount, type ImapHooks, type MailboxInfo, type MailboxState, type MessageMeta, type SpecialUse } from '../../protocols/imap/hooks.ts';
import type { Accounts } from '../../services/accounts.ts';
import type { Screener } from '../../services/screener.ts';
import type { ImapMailbox, ImapMessage, Store } from '../../store/types.ts';
import { StoreConflictError } from '../../store/types.ts';
import { decideByMove, syncScreener } from './screener-folder.ts';

export { requestMessage } from './screener-folder.ts';

export interface ImapHooksInput {
  store: Pick<Store, 'imap' | 'messages' | 'requests' | 'twmIn' | 'changes'>;
  accounts: Pick<Accounts, 'authenticate'>;
  screener: Pick<Screener, 'approve' | 'deny'>;
  hostname: string;
  maxConnectionsPerUser: number;
  /**
   * A [spam] section that learns: a MOVE or COPY into Junk queues learning
   * spam, out of Junk (not into Trash) ham, in the move's transaction, as
   * `twoway mail move` does (spam/learn-worker.ts sends it to rspamd).
   */
  learn?: boolean;
  onError?: (err: unknown) => void;
}

const SPECIAL: Record<string, SpecialUse> = { Sent: '\\Sent', Drafts: '\\Drafts', Junk: '\\Junk', Trash: '\\Trash' };
const BUILT_IN = new Set(['INBOX', 'Screener', 'Sent', 'Drafts', 'Junk', 'Trash']);

const info = (b: ImapMailbox): MailboxInfo => ({ id: b.id, name: b.name, specialUse: SPECIAL[b.name] ?? null, subscribed: b.subscribed });
const meta = (m: ImapMessage): MessageMeta => ({ id: m.id, uid: m.uid, flags: m.flags, modseq: m.modseq, size: m.size, internalDate: m.internalDate });

function storeError(err: unknown): never {
  if (err instanceof StoreConflictError) throw no('ALREADYEXISTS', err.message);
  throw err;
}

/** One logged-in user's view of the store; `release` gives back its session slot. */
function account(input: ImapHooksInput, sessions: Map<number, number>, user: User): ImapAccount {
  const ctx = accountContext(input, user);
  return {
    address: user.address,
    ...mailboxHooks(ctx),
    ...messageHooks(ctx),
    copy: (from, msgs, targetName) => copy(ctx, from, msgs, targetName),
    move: (from, msgs, targetName) => move(ctx, from, msgs, targetName),
    append: (targetName, messages) => append(ctx, targetName, messages),
    watch: (listener) => ctx.store.changes.on(user.id, listener),
    release() {
      const n = (sessions.get(user.id) ?? 1) - 1;
      if (n <= 0) sessions.delete(user.id);
      else sessions.set(user.id, n);
    },
  };
}

/** What an account's hooks share: the user, the store, and the lookups of a mailbox by name. */
interface AccountContext {
  input: ImapHooksInput;
  store: ImapHooksInput['store'];
  user: User;
  teach: 'auto' | undefined;
  /** The mailbox, or NO [NONEXISTENT]. */
  box(name: string): Promise<ImapMailbox>;
  /** The target of a COPY, MOVE or APPEND, or NO [TRYCREATE]. */
  target(name: string): Promise<ImapMailbox>;
  /** As box(), with the Screener's stand-ins for pending notices brought up to date first. */
  fresh(name: string): Promise<ImapMailbox>;
}

function accountContext(input: ImapHooksInput, user: User): AccountContext {
  const { store } = input;
  const box = async (name: string): Promise<ImapMailbox> => {
    const b = await store.imap.mailbox(user.id, name);
    if (!b) throw no('NONEXISTENT', `No mailbox ${name}`);
    return b;
  };
  const target = async (name: string): Promise<ImapMailbox> => {
    const b = await store.imap.mailbox(user.id, name);
    if (!b) throw no('TRYCREATE', `No mailbox ${name}`);
    return b;
  };
  const fresh = async (name: string): Promise<ImapMailbox> => {
    const b = await box(name);
    if (b.name === 'Screener') {
      await syncScreener(store, input.hostname, user, b.id);
      return box(name);
    }
    return b;
  };
  return { input, store, user, teach: input.learn === true ? 'auto' : undefined, box, target, fresh };
}

/** The mailbox list and its changes: LIST, SELECT, STATUS, CREATE, DELETE, RENAME, SUBSCRIBE. */
function mailboxHooks(ctx: AccountContext): Pick<ImapAccount, 'mailboxes' | 'open' | 'status' | 'create' | 'delete' | 'rename' | 'subscribe'> {
  const { store, user, box, fresh } = ctx;
  return {
    async mailboxes() {
      return (await store.imap.mailboxes(user.id)).map(info);
    },
    async open(name) {
      const b = await fresh(name);
      return { ...info(b), uidValidity: b.uidValidity, uidNext: b.uidNext, highestModseq: b.highestModseq };
    },
    async status(name) {
      const b = await fresh(name);
      const c = await store.imap.counts(b.id);
      return { ...c, uidNext: b.uidNext, uidValidity: b.uidValidity, highestModseq: b.highestModseq, mailboxId: b.id };
    },
    async create(name) {
      if ([...BUILT_IN].some((n) => n.toLowerCase() === name.toLowerCase() && n !== name) && name.toUpperCase() === 'INBOX') throw no('ALREADYEXISTS', 'INBOX exists');
      await store.imap.create(user.id, name).catch(storeError);
    },
    async delete(name) {
      if (BUILT_IN.has(name)) throw no('CANNOT', `${name} cannot be deleted`);
      await box(name);
      const all = await store.imap.mailboxes(user.id);
      if (all.some((b) => b.name.startsWith(`${name}/`))) throw no('INUSE', 'Delete the mailboxes below it first');
      await store.imap.remove(user.id, name);
    },
    async rename(from, to) {
      if (BUILT_IN.has(from)) throw no('CANNOT', `${from} cannot be renamed`);
      if (BUILT_IN.has(to) || to.toUpperCase() === 'INBOX') throw no('ALREADYEXISTS', `${to} exists`);
      await box(from);
      await store.imap.rename(user.id, from, to).catch(storeError);
    },
    async subscribe(name, on) {
      await box(name);
      await store.imap.subscribe(user.id, name, on);
    },
  };
}

/** The messages of a selected mailbox: their list and changes, their parts, flags and EXPUNGE. */
function messageHooks(ctx: AccountContext): Pick<ImapAccount, 'messages' | 'changesSince' | 'structures' | 'wireText' | 'bodies' | 'setFlags' | 'expunge'> {
  const { store, user, input } = ctx;
  return {
    async messages(mailboxId) {
      return (await store.imap.messages(mailboxId)).map(meta);
    },
    async changesSince(mailboxId, modseq) {
      const boxes = await store.imap.mailboxes(user.id);
      const b = boxes.find((x) => x.id === mailboxId);
      if (!b) return { highestModseq: modseq, changed: [], expunged: [] };
      if (b.name === 'Screener') await syncScreener(store, input.hostname, user, b.id);
      const now = (await store.imap.mailbox(user.id, b.name))!;
      const c = await store.imap.changesSince(mailboxId, modseq);
      return { highestModseq: now.highestModseq, changed: c.changed.map(meta), expunged: c.expunged };
    },
    structures: (ids) => store.imap.structures(user.id, ids),
    wireText: (ids, withBody) => store.imap.wireText(user.id, ids, withBody),
    bodies: (ids) => store.imap.bodies(user.id, ids),
    setFlags: (mailboxId, changes, unchangedSince) => store.imap.setFlags(user.id, mailboxId, changes, unchangedSince),
    async expunge(from, msgs) {
      await store.imap.expunge(user.id, from.id, msgs.map((m) => m.id));
    },
  };
}

/** COPY: held and generated messages decide their sender (decideByMove), the others are copied. */
async function copy(ctx: AccountContext, from: MailboxState, msgs: MessageMeta[], targetName: string): Promise<CopyUid | null> {
  const { store, user, teach } = ctx;
  const to = await ctx.target(targetName);
  const ordinary = await decideByMove(store, ctx.input.screener, user, from, msgs, to, teach);
  if (ordinary.length === 0) return null;
  const res = await store.imap.copy(user.id, ordinary.map((m) => m.id), to.id, teach);
  return copyUid(to, ordinary, res);
}

/** MOVE: as COPY, and without COPYUID when a Screener decision took part (no partial answer). */
async function move(ctx: AccountContext, from: MailboxState, msgs: MessageMeta[], targetName: string): Promise<CopyUid | null> {
  const { store, user, teach } = ctx;
  const to = await ctx.target(targetName);
  const ordinary = await decideByMove(store, ctx.input.screener, user, from, msgs, to, teach);
  if (ordinary.length === 0 || ordinary.length < msgs.length) {
    // A Screener decision moved (some of) them: no COPYUID for a partial answer.
    if (ordinary.length > 0) await store.imap.move(user.id, ordinary.map((m) => m.id), to.id, from.id, teach);
    return null;
  }
  const res = await store.imap.move(user.id, ordinary.map((m) => m.id), to.id, from.id, teach);
  return copyUid(to, ordinary, res);
}

type CopyUid = { uidValidity: number; pairs: Array<[number, number]> };

/** The COPYUID answer: each source UID with the UID its copy got in `to`. */
function copyUid(to: ImapMailbox, ordinary: MessageMeta[], res: Array<{ id: number; uid: number }>): CopyUid {
  const uidOf = new Map(ordinary.map((m) => [m.id, m.uid]));
  return { uidValidity: to.uidValidity, pairs: res.map((r) => [uidOf.get(r.id)!, r.uid] as [number, number]) };
}

/** APPEND (MULTIAPPEND): one deliver call, so all or none are stored (RFC 3502). */
async function append(ctx: AccountContext, targetName: string, messages: Parameters<ImapAccount['append']>[1]): ReturnType<ImapAccount['append']> {
  const { store, user } = ctx;
  const to = await ctx.target(targetName);
  if (to.name === 'Screener') throw no('CANNOT', 'Only mail from strangers goes to the Screener');
  // One deliver call is one transaction (group commit keeps a caller's items together): all or none (RFC 3502).
  const stored = await store.messages.deliver(
    messages.map(({ raw, flags, date }) => {
      const env = parseStructure(raw).envelope;
      const first = env.from?.find((a) => a.host !== null && a.mailbox !== null);
      const fromAddr = first ? `${first.mailbox}@${first.host}`.toLowerCase() : null;
      return {
        userId: user.id,
        // Any folder name: the store reserves UIDs by name.
        mailbox: to.name as 'INBOX',
        raw,
        flags,
        sender: fromAddr,
        from: fromAddr,
        subject: env.subject,
        receivedAt: date ?? new Date(),
        firstContact: false,
      };
    }),
  );
  return { uidValidity: to.uidValidity, uids: stored.map((s) => s.uid) };
}

export function createImapHooks(input: ImapHooksInput): ImapHooks {
  const sessions = new Map<number, number>();

  return {
    async login(address, password, client) {
      let user: User;
      try {
        const principal = await input.accounts.authenticate(address, password, client);
        // As for submission: a `contacts` app password is for CardDAV only.
        if (principal.appPassword && principal.appPassword.scope !== 'all') throw no('AUTHORIZATIONFAILED', 'This app password is for contacts (CardDAV) only, not for mail');
        user = principal.user;
      } catch (err) {
        // The services' domain errors translated at this edge: a throttled client waits, any other refusal is a failed login.
        if (err instanceof DomainError) throw err.kind === 'throttled' ? no('UNAVAILABLE', err.text) : no('AUTHENTICATIONFAILED', 'Invalid credentials');
        if (err instanceof ReplyError) throw err.code === 454 ? no('UNAVAILABLE', err.text) : no('AUTHENTICATIONFAILED', 'Invalid credentials');
        throw err;
      }
      const n = sessions.get(user.id) ?? 0;
      if (n >= input.maxConnectionsPerUser) throw no('LIMIT', `At most ${input.maxConnectionsPerUser} connections per user`);
      sessions.set(user.id, n + 1);
      return account(input, sessions, user);
    },
  };
}
