/**
 * Events between processes and nodes on one PostgreSQL database, with
 * LISTEN/NOTIFY: "this user's mailboxes changed" (the IMAP change bus, so
 * that IDLE on another node hears of new mail) and "a queue entry is due
 * now" (so that another node's queue worker looks at once). An event carries
 * no data and a lost one is harmless: IMAP sessions read what changed since
 * their own modseq, and the workers poll the store every second anyway
 * (the fallback). SQLite has no such channel: the change bus polls the file
 * for other connections' writes while a session listens (sqlite-changes.ts),
 * and "a queue entry is due now" stays in its process (`localSignals`), where
 * the workers' own poll finds it within a second.
 *
 * One dedicated connection listens (a pooled one would be handed to other
 * queries); it reconnects after a loss. Notifications go out on the pool.
 * The channel is per schema, so test schemas on one server stay apart.
 */
import type pg from 'pg';
import { randomBytes } from 'node:crypto';
import type { ChangeBus } from './change-bus.ts';

export interface StoreSignals {
  /**
   * A queue entry became due now somewhere in the cluster (this process included). `recipients`
   * are those of a message this process just queued (undefined: unknown, from another process).
   */
  onQueued(listener: (recipients?: readonly string[]) => void): () => void;
  /** Announces queued work to every process (a no-op where there is no channel); recipients go to this process's listeners only. */
  queued(recipients?: readonly string[]): void;
}

export interface PgNotifier extends StoreSignals {
  /** Wraps the in-process bus: emits are also sent to, and received from, the other processes. */
  bus(local: ChangeBus): ChangeBus;
  close(): Promise<void>;
}

export function startPgNotifier(o: { pool: pg.Pool; connect: () => pg.Client; schema: string; log: (msg: string) => void }): PgNotifier {
  const channel = `twoway_${o.schema}`.slice(0, 63);
  const self = randomBytes(6).toString('hex');
  const queueListeners = new Set<(recipients?: readonly string[]) => void>();
  let local: ChangeBus | null = null;
  let client: pg.Client | null = null;
  let closed = false;

  function send(payload: string): void {
    o.pool.query('SELECT pg_notify($1, $2)', [channel, `${self} ${payload}`]).catch((err: Error) => o.log(`store: NOTIFY failed: ${err.message}`));
  }

  function receive(payload: string | undefined): void {
    const [from, kind, arg] = (payload ?? '').split(' ');
    if (from === self) return;
    if (kind === 'u' && local) local.emit(Number(arg));
    if (kind === 'q') for (const l of queueListeners) l();
  }

  async function listen(): Promise<void> {
    while (!closed) {
      const c = o.connect();
      try {
        await c.connect();
        c.on('notification', (n) => receive(n.payload));
        await c.query(`LISTEN "${channel}"`);
        client = c;
        await new Promise<void>((resolve) => {
          c.once('error', (err) => {
            o.log(`store: LISTEN connection lost (${err.message}); polling until it is back`);
            resolve();
          });
          c.once('end', () => resolve());
        });
      } catch (err) {
        if (!closed) o.log(`store: cannot LISTEN (${(err as Error).message}); polling meanwhile`);
      }
      client = null;
      await c.end().catch(() => undefined);
      if (!closed) await new Promise((r) => setTimeout(r, 1000).unref());
    }
  }
  void listen();

  return {
    bus(inner) {
      local = inner;
      return {
        emit(userId) {
          inner.emit(userId);
          send(`u ${userId}`);
        },
        on: (userId, listener) => inner.on(userId, listener),
        size: () => inner.size(),
      };
    },
    onQueued(listener) {
      queueListeners.add(listener);
      return () => queueListeners.delete(listener);
    },
    queued(recipients) {
      for (const l of queueListeners) l(recipients);
      send('q');
    },
    async close() {
      closed = true;
      await client?.end().catch(() => undefined);
    },
  };
}

/** Where there is no channel (SQLite): signals stay in the process. */
export function localSignals(): StoreSignals {
  const listeners = new Set<(recipients?: readonly string[]) => void>();
  return {
    onQueued(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    queued(recipients) {
      for (const l of listeners) l(recipients);
    },
  };
}
