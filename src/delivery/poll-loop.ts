/**
 * A store-polling loop: runs `step` every `intervalMs`, and at once on
 * `kick()` (an in-process latency hint; the store is the signal). One step
 * at a time; a step that reports more work runs again right away.
 */
export interface PollLoop {
  kick(): void;
  /** Runs steps until one reports no more work (tests, shutdown). */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

export function startPollLoop(step: () => Promise<boolean>, options: { intervalMs?: number; onError?: (err: unknown) => void }): PollLoop {
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;

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
    });
  }

  const timer = setInterval(kick, options.intervalMs ?? 1000);
  timer.unref();
  kick();
  return {
    kick,
    async drain() {
      kick();
      while (running) await running;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      while (running) await running;
    },
  };
}
