/**
 * Other connections' writes to a SQLite file, heard on the change bus: the
 * SQLite counterpart of pg-notify.ts's "this user's mailboxes changed", for
 * several worker processes on one file (`[server] processes`) and for the
 * CLI writing while the server runs (`twoway import`, a move).
 *
 * SQLite has no channel between processes, so this polls, and only while
 * someone listens (an IMAP session is logged in). Each tick reads
 * `PRAGMA data_version` on the store's own connection: it changes when
 * another connection committed, and costs no I/O beyond the WAL index. Only
 * then does one query read a signature of each listened-to user's state,
 * and the users whose signature moved hear an event. Another connection of
 * this process (the WAL checkpointer's, a writer thread's) changes
 * data_version too: one extra query that finds nothing new. Writes through
 * this connection do not change data_version; the store announced those
 * itself.
 *
 * A user's signature: their mailboxes (each one's id and name, in id order),
 * the sum of their mailboxes' HIGHESTMODSEQ, and their number of pending TWM
 * notices. Every change to messages (delivery, flags, move, copy, expunge)
 * raises one mailbox's HIGHESTMODSEQ by one (modseq.ts), so the sum grows;
 * creating, deleting or renaming a mailbox changes the list (a mailbox
 * deleted and another created within one tick have different ids); a
 * stranger's TWM notice (the Screener's stand-ins,
 * endpoints/imap/screener-folder.ts) adds a pending row. So every change the
 * store announces itself on the bus also moves the signature. Events carry
 * no data, so a duplicate (the first tick after this process's own write)
 * costs one reread.
 */
import { CompiledQuery, sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';
import type { ChangeBus } from './change-bus.ts';

/**
 * How often, while a session listens, data_version is read: the latency of
 * IDLE for mail stored by another process, against one cheap statement per
 * tick (the same second as the queue workers' poll).
 */
export const SQLITE_CHANGE_POLL_MS = 1000;

export interface SqliteChangePoll {
  /** Wraps the in-process bus: listeners also hear other connections' writes. */
  bus(local: ChangeBus): ChangeBus;
  /** Stops polling and waits for a tick in progress (before the connection closes). */
  close(): Promise<void>;
}

const DATA_VERSION = CompiledQuery.raw('PRAGMA data_version');

/**
 * One statement for any number of users (one SQL text for the statement
 * cache): the ids as a JSON array, each user's signature from the indexes
 * mailboxes_user_name and twm_in_recipients_user. The list's separator, a
 * line feed, is never part of a name (IMAP refuses control characters in
 * mailbox names: protocols/imap/session.ts).
 */
async function signatures(db: Kysely<Database>, userIds: readonly number[]): Promise<Array<{ user_id: number; signature: string }>> {
  const result = await sql<{ user_id: number; signature: string }>`
    SELECT j.value AS user_id,
      (SELECT ifnull(sum(b.highest_modseq), 0) FROM mailboxes b WHERE b.user_id = j.value)
      || ' ' || (SELECT ifnull(group_concat(m.entry, char(10)), '') FROM
                  (SELECT b.id || ':' || b.name AS entry FROM mailboxes b WHERE b.user_id = j.value ORDER BY b.id) m)
      || ' ' || (SELECT count(*) FROM twm_in_recipients r WHERE r.user_id = j.value AND r.state = 'pending') AS signature
    FROM json_each(${JSON.stringify(userIds)}) j`.execute(db);
  return result.rows;
}

export function startSqliteChangePoll(o: { db: Kysely<Database>; log: (msg: string) => void }): SqliteChangePoll {
  return new SqliteChangePoller(o.db, o.log);
}

class SqliteChangePoller implements SqliteChangePoll {
  private local: ChangeBus | null = null;
  /** Listeners per listened-to user. */
  private readonly listened = new Map<number, number>();
  /** The signature last read per listened-to user. */
  private readonly seen = new Map<number, string>();
  private version: number | undefined;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  /** Baselines being read (close waits for them: the connection is closed next). */
  private readonly baselines = new Set<Promise<unknown>>();
  private failing = false;
  private closed = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly log: (msg: string) => void,
  ) {}

  bus(inner: ChangeBus): ChangeBus {
    this.local = inner;
    return {
      emit: (userId) => inner.emit(userId),
      on: (userId, listener) => {
        const off = inner.on(userId, listener);
        this.listen(userId);
        let on = true;
        return () => {
          if (!on) return;
          on = false;
          off();
          this.unlisten(userId);
        };
      },
      size: () => inner.size(),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([this.ticking, ...this.baselines]);
  }

  /** Records what it read; returns the users whose signature moved since the last read. */
  private async read(userIds: readonly number[]): Promise<number[]> {
    const moved: number[] = [];
    for (const row of await signatures(this.db, userIds)) {
      const userId = Number(row.user_id);
      if (!this.listened.has(userId)) continue; // left while the query ran
      const before = this.seen.get(userId);
      this.seen.set(userId, row.signature);
      if (before !== undefined && before !== row.signature) moved.push(userId);
    }
    return moved;
  }

  private async check(): Promise<void> {
    const current = (await this.db.executeQuery<{ data_version: number }>(DATA_VERSION)).rows[0]?.data_version;
    // Read before the signatures: a commit after this read changes it again, so nothing falls between ticks.
    if (current === this.version || this.listened.size === 0) return;
    const moved = await this.read([...this.listened.keys()]);
    this.version = current; // only now: after a failed read, the next tick reads again
    for (const userId of moved) this.local?.emit(userId);
  }

  private tick(): void {
    if (this.ticking || this.closed) return;
    this.ticking = this.check()
      .then(() => {
        if (this.failing) this.log("store: the poll for other processes' changes works again");
        this.failing = false;
      })
      .catch((err: unknown) => {
        if (!this.failing) this.log(`store: the poll for other processes' changes failed (${(err as Error).message}); retrying every second`);
        this.failing = true;
      })
      .finally(() => {
        this.ticking = null;
      });
  }

  private listen(userId: number): void {
    const n = this.listened.get(userId) ?? 0;
    this.listened.set(userId, n + 1);
    if (n > 0) return;
    // The user's baseline now, queued on the connection ahead of the session's next command:
    // what another process writes after the session read its mailbox is then a change.
    // A failure leaves no baseline: the next tick takes it, without an event.
    const baseline = this.read([userId]).catch(() => undefined);
    this.baselines.add(baseline);
    void baseline.finally(() => this.baselines.delete(baseline));
    // unref: a listening session keeps the process alive by its socket, not by this timer.
    if (!this.closed) this.timer ??= setInterval(() => this.tick(), SQLITE_CHANGE_POLL_MS).unref();
  }

  private unlisten(userId: number): void {
    const n = (this.listened.get(userId) ?? 1) - 1;
    if (n > 0) {
      this.listened.set(userId, n);
      return;
    }
    this.listened.delete(userId);
    this.seen.delete(userId);
    if (this.listened.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    this.version = undefined; // the next listener starts afresh: its first tick reads the signatures
  }
}
