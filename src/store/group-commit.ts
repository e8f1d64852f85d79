/**
 * Group commit: callers submit work while a transaction is running; the next
 * transaction commits everything that queued up meanwhile, so many callers
 * share one commit (one fsync). See the design note in message-repository.ts.
 *
 * With a separate `sync` step (the message store on a SQLite file: the
 * transaction commits without its fsync, then the WAL is fdatasync'ed off
 * the event loop, db-util.ts), a round is its transaction, then its fsync,
 * and the next round starts after both. A failed fsync fails the whole round
 * and is not retried per caller: the transaction did commit, so committing
 * its items again would store them twice.
 */

interface Waiting<I, R> {
  items: I[];
  resolve: (results: R[]) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<I, R> {
  private waiting: Array<Waiting<I, R>> = [];
  private running: Promise<void> | undefined;

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

  /** Resolves when nothing is queued or running (used by Store.close). */
  async drain(): Promise<void> {
    while (this.running) await this.running;
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
    let results: R[];
    try {
      results = await this.commit(batch.flatMap((w) => w.items));
    } catch (err) {
      if (batch.length === 1) batch[0]!.reject(err);
      else await this.commitEach(batch);
      return;
    }
    // Committed: from here a failure (the fsync's) fails the round, never a retry.
    try {
      await this.sync?.();
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    let at = 0;
    for (const w of batch) {
      w.resolve(results.slice(at, at + w.items.length));
      at += w.items.length;
    }
  }

  /** The shared transaction failed and rolled back: each caller alone, so that one bad item fails only its own caller. */
  private async commitEach(batch: Array<Waiting<I, R>>): Promise<void> {
    for (const w of batch) {
      let results: R[];
      try {
        results = await this.commit(w.items);
      } catch (err) {
        w.reject(err);
        continue;
      }
      try {
        await this.sync?.();
        w.resolve(results);
      } catch (err) {
        w.reject(err);
      }
    }
  }
}
