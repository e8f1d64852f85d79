/**
 * Per-destination connection slots and idle sessions.
 *
 * Design note
 * - A key is one destination (`address:port`). At most `maxPerKey`
 *   connections exist per key, counting those being opened, in use and idle:
 *   receiving servers limit connections per client IP (ours answers 421 past
 *   its limit), so a burst to one host must queue here, not there.
 * - `acquire` hands out a lease: an idle session to reuse (the caller sends
 *   RSET first, which also tells whether it still works), or an empty slot
 *   the caller fills by opening a connection. Every lease goes back through
 *   `release`, which keeps a usable session (idle, closed after
 *   `idleTimeoutMs`) or frees the slot; either way a waiter is served.
 * - Idle sessions are reused most recently used first, so a quiet period
 *   lets the surplus ones reach their idle timeout.
 * - `forget` is for sessions that die while idle (the server timed us out).
 * - After `close`, waiters get `null`, idle sessions are QUIT, and released
 *   sessions are QUIT rather than kept.
 */

export interface PoolMember {
  readonly alive: boolean;
  quit(): Promise<void>;
}

export interface Lease<T> {
  readonly key: string;
  /** An idle session to reuse, or undefined: the slot is yours, open a connection. */
  readonly member: T | undefined;
}

interface IdleEntry<T> {
  member: T;
  timer: NodeJS.Timeout;
}

interface KeyState<T> {
  /** Connections counted against the limit: opening, in use or idle. */
  open: number;
  idle: Array<IdleEntry<T>>;
  waiters: Array<(lease: Lease<T> | null) => void>;
}

export class ConnectionPool<T extends PoolMember> {
  readonly #keys = new Map<string, KeyState<T>>();
  readonly #maxPerKey: number;
  readonly #idleTimeoutMs: number;
  #closed = false;

  constructor(options: { maxPerKey: number; idleTimeoutMs: number }) {
    this.#maxPerKey = Math.max(1, options.maxPerKey);
    this.#idleTimeoutMs = Math.max(0, options.idleTimeoutMs);
  }

  /** Resolves to a lease, or null once the pool is closed. */
  acquire(key: string): Promise<Lease<T> | null> {
    if (this.#closed) return Promise.resolve(null);
    const state = this.#state(key);
    const entry = state.idle.pop();
    if (entry) {
      clearTimeout(entry.timer);
      return Promise.resolve({ key, member: entry.member });
    }
    if (state.open < this.#maxPerKey) {
      state.open++;
      return Promise.resolve({ key, member: undefined });
    }
    return new Promise((resolve) => state.waiters.push(resolve));
  }

  /**
   * Returns a lease. `member` is the session that was used (the reused one
   * or the one the caller opened), undefined if opening failed; it is kept
   * only when `reusable` and still alive.
   */
  release(lease: Lease<T>, member: T | undefined, reusable: boolean): void {
    const state = this.#state(lease.key);
    if (member && reusable && member.alive && !this.#closed) {
      const waiter = state.waiters.shift();
      if (waiter) {
        waiter({ key: lease.key, member });
        return;
      }
      const timer = setTimeout(() => this.forget(lease.key, member), this.#idleTimeoutMs);
      state.idle.push({ member, timer });
      return;
    }
    if (member) void member.quit();
    state.open--;
    this.#wake(lease.key, state);
  }

  /** Drops an idle session (timed out here, or closed by the server); in-use sessions are ignored. */
  forget(key: string, member: T): void {
    const state = this.#keys.get(key);
    const index = state?.idle.findIndex((e) => e.member === member) ?? -1;
    if (!state || index < 0) return;
    const [entry] = state.idle.splice(index, 1);
    clearTimeout(entry!.timer);
    void member.quit();
    state.open--;
    this.#wake(key, state);
  }

  /** Idle sessions per key, for stats and tests. */
  idleCount(): number {
    let n = 0;
    for (const state of this.#keys.values()) n += state.idle.length;
    return n;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const quits: Array<Promise<void>> = [];
    for (const state of this.#keys.values()) {
      for (const waiter of state.waiters.splice(0)) waiter(null);
      for (const entry of state.idle.splice(0)) {
        clearTimeout(entry.timer);
        state.open--;
        quits.push(entry.member.quit());
      }
    }
    await Promise.all(quits);
  }

  #state(key: string): KeyState<T> {
    let state = this.#keys.get(key);
    if (!state) {
      state = { open: 0, idle: [], waiters: [] };
      this.#keys.set(key, state);
    }
    return state;
  }

  /** Gives freed slots to waiters; forgets keys with nothing left, so the map does not grow forever. */
  #wake(key: string, state: KeyState<T>): void {
    while (state.waiters.length > 0 && state.open < this.#maxPerKey) {
      state.open++;
      state.waiters.shift()!({ key, member: undefined });
    }
    if (state.open === 0 && state.waiters.length === 0) this.#keys.delete(key);
  }
}
