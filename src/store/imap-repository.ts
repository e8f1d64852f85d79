/**
 * Mailboxes and messages as IMAP needs them: folders by name, UIDs, flags
 * with CONDSTORE modseqs, the expunge record of QRESYNC, subscriptions.
 * Every write raises the mailbox's HIGHESTMODSEQ (modseq.ts) and announces
 * itself on the change bus after it committed.
 */
import type { Selectable, Transaction } from 'kysely';
import { parseStructure, type MessageStructure } from '../core/mime-structure.ts';
import type { MailboxName } from '../core/types.ts';
import type { ImapMailbox, ImapMailRepository, ImapMessage } from './types.ts';
import { StoreConflictError } from './types.ts';
import type { Database, MailboxesTable } from './schema.ts';
import type { ChangeBus } from './change-bus.ts';
import { chunks, isUniqueViolation, num, toDate, unique, type Db } from './db-util.ts';
import { nextModseq, recordExpunges } from './modseq.ts';
import { learnKindOfMove, type KyselyMessageRepository } from './message-repository.ts';
import { queueLearning } from './spam-learning-repository.ts';
import { readWireText } from './imap-wire-repository.ts';
import { preparedOf } from './prepared.ts';
import type { ImapWireText } from '../core/imap-wire.ts';

const IDS_PER_QUERY = 500;

function toMailbox(r: Selectable<MailboxesTable>): ImapMailbox {
  return {
    id: r.id,
    userId: r.user_id,
    name: r.name,
    uidValidity: num(r.uid_validity),
    uidNext: num(r.uid_next),
    highestModseq: num(r.highest_modseq),
    subscribed: num(r.subscribed) === 1,
  };
}

const MESSAGE_COLUMNS = ['m.id', 'm.uid', 'm.flags', 'm.modseq', 'm.size', 'm.received_at', 'm.twm_key', 'r.sender as held_for'] as const;

interface MessageRow {
  id: number;
  uid: number;
  flags: string;
  modseq: number;
  size: number;
  received_at: number;
  twm_key: string | null;
  held_for: string | null;
}

function toMessage(r: MessageRow): ImapMessage {
  return {
    id: r.id,
    uid: num(r.uid),
    flags: JSON.parse(r.flags) as string[],
    modseq: num(r.modseq),
    size: num(r.size),
    internalDate: toDate(r.received_at),
    heldFor: r.held_for,
    twmKey: r.twm_key,
  };
}

const uidValidityNow = () => Math.max(1, Math.floor(Date.now() / 1000) % 0x1_0000_0000);

export class KyselyImapRepository implements ImapMailRepository {
  constructor(
    private readonly s: Db,
    private readonly bus: ChangeBus,
    private readonly messagesRepo: KyselyMessageRepository,
  ) {}

  async mailboxes(userId: number): Promise<ImapMailbox[]> {
    const rows = await this.s.db.selectFrom('mailboxes').selectAll().where('user_id', '=', userId).orderBy('id').execute();
    return rows.map(toMailbox);
  }

  async mailbox(userId: number, name: string): Promise<ImapMailbox | undefined> {
    const n = name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
    const row = await this.s.db.selectFrom('mailboxes').selectAll().where('user_id', '=', userId).where('name', '=', n as MailboxName).executeTakeFirst();
    return row && toMailbox(row);
  }

  async create(userId: number, name: string): Promise<ImapMailbox> {
    try {
      const row = await this.s.db
        .insertInto('mailboxes')
        .values({ user_id: userId, name: name as MailboxName, uid_validity: uidValidityNow(), uid_next: 1 })
        .returningAll()
        .executeTakeFirstOrThrow();
      this.bus.emit(userId);
      return toMailbox(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError(`Mailbox ${name} exists`);
      throw err;
    }
  }

  async remove(userId: number, name: string): Promise<boolean> {
    const box = await this.mailbox(userId, name);
    if (!box) return false;
    const bodyIds = await this.s.db.transaction().execute(async (tx) => {
      const rows = await tx.deleteFrom('messages').where('mailbox_id', '=', box.id).returning('body_id').execute();
      await tx.deleteFrom('mailboxes').where('id', '=', box.id).execute();
      return unique(rows.map((r) => r.body_id));
    });
    await this.messagesRepo.collectBodies(bodyIds);
    this.bus.emit(userId);
    return true;
  }

  async rename(userId: number, from: string, to: string): Promise<boolean> {
    try {
      const done = await this.s.db.transaction().execute(async (tx) => {
        const boxes = await tx.selectFrom('mailboxes').select(['id', 'name']).where('user_id', '=', userId).execute();
        const self = boxes.find((b) => b.name === from);
        if (!self) return false;
        if (boxes.some((b) => b.name === to)) throw new StoreConflictError(`Mailbox ${to} exists`);
        for (const b of boxes) {
          if (b.name === from || b.name.startsWith(`${from}/`)) {
            // A renamed mailbox is a new one for clients' caches: a new UIDVALIDITY is not needed (UIDs stay), RFC 9051 6.3.6.
            await tx
              .updateTable('mailboxes')
              .set({ name: (to + b.name.slice(from.length)) as MailboxName })
              .where('id', '=', b.id)
              .execute();
          }
        }
        return true;
      });
      if (done) this.bus.emit(userId);
      return done;
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError(`Mailbox ${to} exists`);
      throw err;
    }
  }

  async subscribe(userId: number, name: string, subscribed: boolean): Promise<boolean> {
    const box = await this.mailbox(userId, name);
    if (!box) return false;
    await this.s.db.updateTable('mailboxes').set({ subscribed: subscribed ? 1 : 0 }).where('id', '=', box.id).execute();
    return true;
  }

  async counts(mailboxId: number): Promise<{ messages: number; unseen: number; deleted: number; size: number }> {
    const rows = await this.s.db.selectFrom('messages').select(['flags', 'size']).where('mailbox_id', '=', mailboxId).execute();
    let unseen = 0;
    let deleted = 0;
    let size = 0;
    for (const r of rows) {
      // Flags are a JSON array of atoms; a substring test is exact for these two.
      if (!r.flags.includes('"\\\\Seen"')) unseen++;
      if (r.flags.includes('"\\\\Deleted"')) deleted++;
      size += num(r.size);
    }
    return { messages: rows.length, unseen, deleted, size };
  }

  private selectMessages() {
    return this.s.db
      .selectFrom('messages as m')
      .leftJoin('contact_requests as r', (j) => j.onRef('r.id', '=', 'm.request_id').on('r.status', '=', 'pending'))
      .select(MESSAGE_COLUMNS);
  }

  async messages(mailboxId: number): Promise<ImapMessage[]> {
    const rows = await this.selectMessages().where('m.mailbox_id', '=', mailboxId).orderBy('m.uid').execute();
    return rows.map(toMessage);
  }

  async changesSince(mailboxId: number, modseq: number): Promise<{ changed: ImapMessage[]; expunged: number[] }> {
    const changed = await this.selectMessages().where('m.mailbox_id', '=', mailboxId).where('m.modseq', '>', modseq).orderBy('m.uid').execute();
    const gone = await this.s.db
      .selectFrom('imap_expunges')
      .select('uid')
      .where('mailbox_id', '=', mailboxId)
      .where('modseq', '>', modseq)
      .orderBy('uid')
      .execute();
    return { changed: changed.map(toMessage), expunged: unique(gone.map((g) => num(g.uid))) };
  }

  // Prepared (prepared.ts), per count of ids: mbsync fetches a mailbox one message per command,
  // and building and compiling these two queries each time was a large share of that command.
  async bodies(userId: number, ids: number[]): Promise<Map<number, Buffer>> {
    const out = new Map<number, Buffer>();
    for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
      const rows = await preparedOf(this.s.dialect).run(this.s.db, `imap.bodies:${part.length}`, [userId, ...part], (v) =>
        this.s.db
          .selectFrom('messages as m')
          .innerJoin('message_bodies as b', 'b.id', 'm.body_id')
          .select(['m.id', 'b.raw'])
          .where('m.user_id', '=', v<number>(0))
          .where(
            'm.id',
            'in',
            part.map((_, i) => v<number>(i + 1)),
          ),
      );
      for (const r of rows) out.set(r.id, r.raw);
    }
    return out;
  }

  async structures(userId: number, ids: number[]): Promise<Map<number, MessageStructure>> {
    const out = new Map<number, MessageStructure>();
    const missing: number[] = [];
    for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
      const rows = await preparedOf(this.s.dialect).run(this.s.db, `imap.structures:${part.length}`, [userId, ...part], (v) =>
        this.s.db
          .selectFrom('messages')
          .select(['id', 'structure'])
          .where('user_id', '=', v<number>(0))
          .where(
            'id',
            'in',
            part.map((_, i) => v<number>(i + 1)),
          ),
      );
      for (const r of rows) {
        if (r.structure === null) missing.push(r.id);
        else out.set(r.id, JSON.parse(r.structure) as MessageStructure);
      }
    }
    if (missing.length > 0) {
      // Messages stored before migration 0009: computed once now and kept.
      const raws = await this.bodies(userId, missing);
      for (const [id, raw] of raws) {
        const structure = parseStructure(raw);
        out.set(id, structure);
        await this.s.db.updateTable('messages').set({ structure: JSON.stringify(structure) }).where('id', '=', id).execute();
      }
    }
    return out;
  }

  async wireText(userId: number, ids: number[], withBody: boolean): Promise<Map<number, ImapWireText>> {
    return readWireText(this.s, userId, ids, withBody, (u, missing) => this.structures(u, missing));
  }

  async setFlags(
    userId: number,
    mailboxId: number,
    changes: Array<{ id: number; flags: string[] }>,
    unchangedSince?: number,
  ): Promise<{ updated: Array<{ id: number; modseq: number }>; failed: number[] }> {
    if (changes.length === 0) return { updated: [], failed: [] };
    const result = await this.s.db.transaction().execute(async (tx) => {
      // The modseq row lock comes first: concurrent STOREs on one mailbox are serialised here.
      const modseq = await nextModseq(tx, mailboxId);
      const current = new Map<number, number>();
      for (const part of chunks(unique(changes.map((c) => c.id)), IDS_PER_QUERY)) {
        const rows = await tx.selectFrom('messages').select(['id', 'modseq']).where('user_id', '=', userId).where('mailbox_id', '=', mailboxId).where('id', 'in', part).execute();
        for (const r of rows) current.set(r.id, num(r.modseq));
      }
      const updated: Array<{ id: number; modseq: number }> = [];
      const failed: number[] = [];
      for (const c of changes) {
        const m = current.get(c.id);
        if (m === undefined) continue;
        if (unchangedSince !== undefined && m > unchangedSince) {
          failed.push(c.id);
          continue;
        }
        await tx.updateTable('messages').set({ flags: JSON.stringify(c.flags), modseq }).where('id', '=', c.id).execute();
        updated.push({ id: c.id, modseq });
      }
      return { updated, failed };
    });
    if (result.updated.length > 0) this.bus.emit(userId);
    return result;
  }

  async copy(userId: number, ids: number[], targetMailboxId: number, teach?: 'auto'): Promise<Array<{ id: number; uid: number }>> {
    if (ids.length === 0) return [];
    const out = await this.s.db.transaction().execute(async (tx) => {
      const rows = new Map<number, Selectable<import('./schema.ts').MessagesTable>>();
      for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
        for (const r of await tx.selectFrom('messages').selectAll().where('user_id', '=', userId).where('id', 'in', part).execute()) rows.set(r.id, r);
      }
      const ordered = unique(ids).filter((id) => rows.has(id));
      if (ordered.length === 0) return [];
      if (teach) await teachMoves(tx, userId, ordered.map((id) => ({ id, from: rows.get(id)!.mailbox_id })), targetMailboxId);
      const { start, modseq } = await reserveUids(tx, userId, targetMailboxId, ordered.length);
      const copied: Array<{ id: number; uid: number }> = [];
      for (const [n, id] of ordered.entries()) {
        const { id: _id, ...r } = rows.get(id)!;
        await tx
          .insertInto('messages')
          .values({ ...r, mailbox_id: targetMailboxId, uid: start + n, modseq, request_id: null, twm_key: null })
          .execute();
        copied.push({ id, uid: start + n });
      }
      return copied;
    });
    if (out.length > 0) this.bus.emit(userId);
    return out;
  }

  async move(userId: number, ids: number[], targetMailboxId: number, onlyFrom?: number, teach?: 'auto'): Promise<Array<{ id: number; uid: number }>> {
    if (ids.length === 0) return [];
    const out = await this.s.db.transaction().execute(async (tx) => {
      const rows = new Map<number, { mailbox_id: number; uid: number }>();
      for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
        const found = await tx
          .selectFrom('messages')
          .select(['id', 'mailbox_id', 'uid'])
          .where('user_id', '=', userId)
          .where('id', 'in', part)
          .where('mailbox_id', '!=', targetMailboxId)
          .$if(onlyFrom !== undefined, (q) => q.where('mailbox_id', '=', onlyFrom!))
          .execute();
        for (const r of found) rows.set(r.id, { mailbox_id: r.mailbox_id, uid: num(r.uid) });
      }
      const ordered = unique(ids).filter((id) => rows.has(id));
      if (ordered.length === 0) return [];
      const leaving = new Map<number, number[]>();
      for (const id of ordered) {
        const r = rows.get(id)!;
        leaving.set(r.mailbox_id, [...(leaving.get(r.mailbox_id) ?? []), r.uid]);
      }
      if (teach) await teachMoves(tx, userId, ordered.map((id) => ({ id, from: rows.get(id)!.mailbox_id })), targetMailboxId);
      for (const [mailboxId, uids] of [...leaving].sort((a, b) => a[0] - b[0])) await recordExpunges(tx, mailboxId, uids);
      const { start, modseq } = await reserveUids(tx, userId, targetMailboxId, ordered.length);
      const moved: Array<{ id: number; uid: number }> = [];
      for (const [n, id] of ordered.entries()) {
        await tx.updateTable('messages').set({ mailbox_id: targetMailboxId, uid: start + n, modseq, request_id: null }).where('id', '=', id).execute();
        moved.push({ id, uid: start + n });
      }
      return moved;
    });
    if (out.length > 0) this.bus.emit(userId);
    return out;
  }

  async expunge(userId: number, mailboxId: number, ids: number[]): Promise<number> {
    if (ids.length === 0) return 0;
    const { removed, bodyIds } = await this.s.db.transaction().execute(async (tx) => {
      const uids: number[] = [];
      const bodyIds: number[] = [];
      for (const part of chunks(unique(ids), IDS_PER_QUERY)) {
        const rows = await tx
          .deleteFrom('messages')
          .where('user_id', '=', userId)
          .where('mailbox_id', '=', mailboxId)
          .where('id', 'in', part)
          .returning(['uid', 'body_id'])
          .execute();
        uids.push(...rows.map((r) => num(r.uid)));
        bodyIds.push(...rows.map((r) => r.body_id));
      }
      if (uids.length > 0) await recordExpunges(tx, mailboxId, uids);
      return { removed: uids.length, bodyIds: unique(bodyIds) };
    });
    await this.messagesRepo.collectBodies(bodyIds);
    if (removed > 0) this.bus.emit(userId);
    return removed;
  }
}

/** Takes `count` UIDs from a mailbox's UIDNEXT and one new MODSEQ for them (COPY and MOVE). */
/**
 * Queues what these moves (or copies) teach the spam filter, by mailbox
 * name (message-repository.ts learnKindOfMove), in the caller's
 * transaction: the learning worker (spam/learn-worker.ts) acts on the rows.
 */
async function teachMoves(tx: Transaction<Database>, userId: number, moves: Array<{ id: number; from: number }>, targetMailboxId: number): Promise<void> {
  const boxIds = unique([targetMailboxId, ...moves.map((m) => m.from)]);
  const names = new Map((await tx.selectFrom('mailboxes').select(['id', 'name']).where('user_id', '=', userId).where('id', 'in', boxIds).execute()).map((b) => [b.id, b.name]));
  const to = names.get(targetMailboxId);
  if (to === undefined) return;
  const items = moves.flatMap((m) => {
    const kind = learnKindOfMove(names.get(m.from) ?? '', to);
    return kind ? [{ messageId: m.id, kind }] : [];
  });
  if (items.length > 0) await queueLearning(tx, userId, items, new Date());
}

async function reserveUids(tx: Transaction<Database>, userId: number, mailboxId: number, count: number): Promise<{ start: number; modseq: number }> {
  const reserved = await tx
    .updateTable('mailboxes')
    .set((eb) => ({ uid_next: eb('uid_next', '+', count), highest_modseq: eb('highest_modseq', '+', 1) }))
    .where('id', '=', mailboxId)
    .where('user_id', '=', userId)
    .returning(['uid_next', 'highest_modseq'])
    .executeTakeFirstOrThrow();
  return { start: num(reserved.uid_next) - count, modseq: num(reserved.highest_modseq) };
}
