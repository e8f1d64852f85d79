/**
 * A store-polling loop, shared by the workers (queue, TWM fetch, decisions):
 * runs `step` every `intervalMs`, and at once on `kick()` (an in-process
 * latency hint; the store is the signal). One step at a time; a step that
 * reports more work, or a kick during a step, runs it again right away.
 *
 * A step may start work that outlives it (deliveries, fetches): `pending`
 * lists it, so `idle`, `drain` and `stop` wait for that work too.
 */
export interface PollLoop {
  kick(): void;
  /** Resolves when no step and no pending work is running (without starting a step). */
  idle(): Promise<void>;
  /** Runs steps until one reports no more work and pending work is done (tests, shutdown). */
  drain(): Promise<void>;
  /** Stops taking new work and waits for the step and the pending work in flight. */
  stop(): Promise<void>;
}

export interface PollLoopOptions {
  intervalMs?: number;
  onError?: (err: unknown) => void;
  /** Work started by steps and still running. */
  pending?: () => Iterable<Promise<unknown>>;
}

export function startPollLoop(step: () => Promise<boolean>, options: PollLoopOptions): PollLoop {
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  const pending = options.pending ?? (() => []);

  function kick(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        try {
          if (await step()) again = true;
        } catch (err) {
          options.onError?.(err);
        }
      } while (again && !stopped);
    })().finally(() => {
      running = null;
      // A kick between the last step's end and here found `running` set and only raised `again`,
      // which the loop above no longer reads: without this it waited for the next interval.
      if (again) kick();
    });
  }

  async function idle(): Promise<void> {
    for (;;) {
      const work = [...pending()];
      if (!running && work.length === 0) return;
      if (running) await running;
      await Promise.all(work);
    }
  }

  // unref: the listeners keep the process alive, a worker's timer alone should not.
  const timer = setInterval(kick, options.intervalMs ?? 1000);
  timer.unref();
  kick();
  return {
    kick,
    idle,
    async drain() {
      kick();
      await idle();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await idle();
    },
  };
}
