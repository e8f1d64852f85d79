/**
 * Group commit: callers submit work while a transaction is running; the next
 * transaction commits everything that queued up meanwhile, so many callers
 * share one commit (one fsync). See the design note in message-repository.ts.
 *
 * With a separate `sync` step (the message store on a SQLite file: the
 * transaction commits without its fsync, then the WAL is fdatasync'ed off
 * the event loop, db-util.ts), a round is its transaction, then its fsync,
 * and the next round starts after both. `pipeline = true` lets the next
 * round's transaction run while the previous round's fsync is still in
 * flight: a message that arrives during an fsync then waits for its own
 * fsync only. It is off: rounds get smaller (1.6 instead of 2.7 messages at
 * 20 SMTP sessions), and a round's cost is mostly fixed (its COMMIT writes
 * some 20 index and row pages to the WAL whatever the batch size), so the
 * event loop's CPU per message rose by 0.15-0.2 ms and the rate fell, more
 * than the shorter wait gained (session 9, 10 alternating pairs of
 * `BENCH_EXPERIMENTS=pipelined-commit npx tsx bench/accept-cpu.ts`). Either way callers are told
 * "committed" only after an fsync that began after their transaction
 * committed, and in commit order: a round is acknowledged only once every
 * earlier round's fsync has succeeded too, and when an fsync fails, every
 * round whose transaction committed before that failure was known fails
 * with it (its WAL frames follow the ones that may be lost).
 */

interface Waiting<I, R> {
  items: I[];
  resolve: (results: R[]) => void;
  reject: (err: unknown) => void;
}

const noop = () => {};

export class GroupCommit<I, R> {
  private waiting: Array<Waiting<I, R>> = [];
  private running: Promise<void> | undefined;
  /** Pipelined mode: the durability of the last round whose fsync was started (rejects if it or an earlier one failed). */
  private synced: Promise<void> = Promise.resolve();
  /** Pipelined mode: rounds committed whose fsync has not yet answered. */
  private syncing = 0;
  /** With `sync`: the next round's transaction may run while this round's fsync is in flight (above). */
  pipeline = false;

  /**
   * @param commit stores `items` in ONE transaction and returns one result per
   *   item, in order; it must commit before it resolves (durably, unless `sync`
   *   is given) and roll back if it throws.
   * @param maxItems bounds a transaction's size; callers beyond it wait for the next one.
   * @param sync makes every transaction committed before the call durable
   *   (the WAL's fdatasync), run after each round's transaction.
   */
  constructor(
    private readonly commit: (items: I[]) => Promise<R[]>,
    private readonly maxItems = 500,
    private readonly sync?: () => Promise<void>,
  ) {}

  /** Resolves with this caller's results after the transaction that holds them has committed. */
  submit(items: I[]): Promise<R[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<R[]>((resolve, reject) => {
      this.waiting.push({ items, resolve, reject });
      this.running ??= this.run();
    });
  }

  /** Resolves when nothing is queued, running or waiting for its fsync (used by Store.close). */
  async drain(): Promise<void> {
    for (;;) {
      if (this.running) await this.running;
      // The last round's durability settles after every earlier round's.
      else if (this.syncing > 0) await this.synced.catch(noop);
      else return;
    }
  }

  private async run(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        // Yield to the event loop (not just the microtask queue) before each
        // batch: other sessions' messages arrive as socket reads, which run
        // only in a later turn. SQLite runs the transaction itself on the
        // event loop (its fsync is moved off it, wal-sync.ts), so without
        // this every batch held one message (measured in bench/: 2,000
        // commits for 2,000 messages).
        await new Promise<void>((resolve) => setImmediate(resolve));
        await this.commitBatch(this.takeBatch());
      }
    } finally {
      // No await between the loop's last check and here, so no submit() can be stranded.
      this.running = undefined;
    }
  }

  private takeBatch(): Array<Waiting<I, R>> {
    let n = 0;
    let count = 0;
    while (n < this.waiting.length && (n === 0 || count + this.waiting[n]!.items.length <= this.maxItems)) {
      count += this.waiting[n]!.items.length;
      n++;
    }
    return this.waiting.splice(0, n);
  }

  private async commitBatch(batch: Array<Waiting<I, R>>): Promise<void> {
    try {
      const results = await this.commit(batch.flatMap((w) => w.items));
      let at = 0;
      const answers = batch.map((w) => {
        const mine = results.slice(at, at + w.items.length);
        at += w.items.length;
        return () => w.resolve(mine);
      });
      await this.afterSync(answers, (err) => {
        for (const w of batch) w.reject(err);
      });
      return;
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
    }
    // The shared transaction failed and rolled back: retry each caller alone,
    // so that one bad item fails only its own caller.
    for (const w of batch) {
      try {
        const results = await this.commit(w.items);
        await this.afterSync([() => w.resolve(results)], w.reject);
      } catch (err) {
        w.reject(err);
      }
    }
  }

  /**
   * Runs `answers` once the transaction just committed is durable: at once without `sync`, else
   * after its fsync and every earlier one. Resolves when the round may end: at once when pipelined,
   * else once the answers or the failure have been given.
   */
  private afterSync(answers: Array<() => void>, fail: (err: unknown) => void): Promise<void> {
    const sync = this.sync;
    if (!sync) {
      for (const answer of answers) answer();
      return Promise.resolve();
    }
    // Started now, so that it covers this transaction; answered in order with the rounds before.
    const own = sync();
    own.catch(noop);
    const durable = this.synced.then(() => own);
    this.synced = durable;
    this.syncing++;
    const answered = durable
      .then(
        () => {
          for (const answer of answers) answer();
        },
        fail,
      )
      .finally(() => {
        // Once no round is in flight, an old failure no longer fails the rounds that follow.
        if (this.synced === durable) this.synced = Promise.resolve();
        this.syncing--;
      });
    return this.pipeline ? Promise.resolve() : answered;
  }
}
