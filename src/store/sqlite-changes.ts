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
 * A user's signature: their number of mailboxes, the sum of their
 * mailboxes' HIGHESTMODSEQ, and their number of pending TWM notices. Every
 * change to messages (delivery, flags, move, copy, expunge) raises one
 * mailbox's HIGHESTMODSEQ by one (modseq.ts), so the sum grows; creating or
 * deleting a mailbox changes the count; a stranger's TWM notice (the
 * Screener's stand-ins, endpoints/imap/screener-folder.ts) adds a pending
 * row. A rename changes none of them: no session rereads anything for it.
 * Events carry no data, so a duplicate (the first tick after this process's
 * own write) costs one reread; a miss would need a mailbox deleted and
 * another created within one tick with modseqs adding up exactly, and is
 * made good by the user's next change.
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
 * mailboxes_user_name and twm_in_recipients_user.
 */
async function signatures(db: Kysely<Database>, userIds: readonly number[]): Promise<Array<{ user_id: number; signature: string }>> {
  const result = await sql<{ user_id: number; signature: string }>`
    SELECT j.value AS user_id,
      (SELECT count(*) || ' ' || ifnull(sum(b.highest_modseq), 0) FROM mailboxes b WHERE b.user_id = j.value)
      || ' ' || (SELECT count(*) FROM twm_in_recipients r WHERE r.user_id = j.value AND r.state = 'pending') AS signature
    FROM json_each(${JSON.stringify(userIds)}) j`.execute(db);
  return result.rows;
}

export function startSqliteChangePoll(o: { db: Kysely<Database>; log: (msg: string) => void }): SqliteChangePoll {
  let local: ChangeBus | null = null;
  /** Listeners per listened-to user. */
  const listened = new Map<number, number>();
  /** The signature last read per listened-to user. */
  const seen = new Map<number, string>();
  let version: number | undefined;
  let timer: NodeJS.Timeout | null = null;
  let ticking: Promise<void> | null = null;
  /** Baselines being read (close waits for them: the connection is closed next). */
  const baselines = new Set<Promise<unknown>>();
  let failing = false;
  let closed = false;

  /** Records what it read; returns the users whose signature moved since the last read. */
  async function read(userIds: readonly number[]): Promise<number[]> {
    const moved: number[] = [];
    for (const row of await signatures(o.db, userIds)) {
      const userId = Number(row.user_id);
      if (!listened.has(userId)) continue; // left while the query ran
      const before = seen.get(userId);
      seen.set(userId, row.signature);
      if (before !== undefined && before !== row.signature) moved.push(userId);
    }
    return moved;
  }

  async function check(): Promise<void> {
    const current = (await o.db.executeQuery<{ data_version: number }>(DATA_VERSION)).rows[0]?.data_version;
    // Read before the signatures: a commit after this read changes it again, so nothing falls between ticks.
    if (current === version || listened.size === 0) return;
    const moved = await read([...listened.keys()]);
    version = current; // only now: after a failed read, the next tick reads again
    for (const userId of moved) local?.emit(userId);
  }

  function tick(): void {
    if (ticking || closed) return;
    ticking = check()
      .then(() => {
        if (failing) o.log('store: reading other processes\u2019 changes works again');
        failing = false;
      })
      .catch((err: unknown) => {
        if (!failing) o.log(`store: cannot read other processes\u2019 changes (${(err as Error).message}); retrying every second`);
        failing = true;
      })
      .finally(() => {
        ticking = null;
      });
  }

  function listen(userId: number): void {
    const n = listened.get(userId) ?? 0;
    listened.set(userId, n + 1);
    if (n > 0) return;
    // The user's baseline now, queued on the connection ahead of the session's next command:
    // what another process writes after the session read its mailbox is then a change.
    // A failure leaves no baseline: the next tick takes it, without an event.
    const baseline = read([userId]).catch(() => undefined);
    baselines.add(baseline);
    void baseline.finally(() => baselines.delete(baseline));
    // unref: a listening session keeps the process alive by its socket, not by this timer.
    if (!closed) timer ??= setInterval(tick, SQLITE_CHANGE_POLL_MS).unref();
  }

  function unlisten(userId: number): void {
    const n = (listened.get(userId) ?? 1) - 1;
    if (n > 0) {
      listened.set(userId, n);
      return;
    }
    listened.delete(userId);
    seen.delete(userId);
    if (listened.size > 0 || !timer) return;
    clearInterval(timer);
    timer = null;
    version = undefined; // the next listener starts afresh: its first tick reads the signatures
  }

  return {
    bus(inner) {
      local = inner;
      return {
        emit: (userId) => inner.emit(userId),
        on(userId, listener) {
          const off = inner.on(userId, listener);
          listen(userId);
          let on = true;
          return () => {
            if (!on) return;
            on = false;
            off();
            unlisten(userId);
          };
        },
        size: () => inner.size(),
      };
    },
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      timer = null;
      await Promise.all([ticking, ...baselines]);
    },
  };
}
