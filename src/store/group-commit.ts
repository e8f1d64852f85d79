/**
 * Group commit: callers submit work while a transaction is running; the next
 * transaction commits everything that queued up meanwhile, so many callers
 * share one commit (one fsync). See the design note in message-repository.ts.
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
   *   item, in order; it must commit before it resolves and roll back if it throws.
   * @param maxItems bounds a transaction's size; callers beyond it wait for the next one.
   */
  constructor(
    private readonly commit: (items: I[]) => Promise<R[]>,
    private readonly maxItems = 500,
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
    try {
      const results = await this.commit(batch.flatMap((w) => w.items));
      let at = 0;
      for (const w of batch) {
        w.resolve(results.slice(at, at + w.items.length));
        at += w.items.length;
      }
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
        w.resolve(await this.commit(w.items));
      } catch (err) {
        w.reject(err);
      }
    }
  }
}
