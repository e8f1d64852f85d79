/**
 * "Something changed in this user's mailboxes": the store announces every
 * committed write to messages or mailboxes here, and IMAP sessions listen
 * (each then reads what changed since its own HIGHESTMODSEQ, so an event
 * carries no data and a lost or duplicated event is harmless). The bus
 * itself is in-process; open.ts wraps it so that it also carries other
 * processes' writes: LISTEN/NOTIFY on PostgreSQL (pg-notify.ts), a poll of
 * the file on SQLite (sqlite-changes.ts).
 */
export interface ChangeBus {
  /** Called after the write committed. */
  emit(userId: number): void;
  /** Returns the unsubscribe function. */
  on(userId: number, listener: () => void): () => void;
  /** How many listeners are registered (tests, metrics). */
  size(): number;
}

export function createChangeBus(): ChangeBus {
  const listeners = new Map<number, Set<() => void>>();
  return {
    emit(userId) {
      const set = listeners.get(userId);
      if (!set) return;
      for (const l of [...set]) {
        try {
          l();
        } catch {
          // A listener's failure is its own; the others still hear of the change.
        }
      }
    },
    on(userId, listener) {
      let set = listeners.get(userId);
      if (!set) {
        set = new Set();
        listeners.set(userId, set);
      }
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(userId);
      };
    },
    size() {
      let n = 0;
      for (const s of listeners.values()) n += s.size;
      return n;
    },
  };
}
