/**
 * Periodic sweeps (queue history, expected senders, TWM expiry and history,
 * nonces) run once per cluster, not once per process: every process ticks,
 * but only the holder of the store's `sweeps` lease (ClusterLeaseRepository)
 * runs the jobs. The holder renews the lease every `heartbeatMs`; when it
 * dies (or cannot reach the store) the lease expires after `ttlMs` and the
 * next process to tick takes it over. The sweeps are conditional updates and
 * deletes, so a run overlapping a takeover does no harm, only double work.
 */
import type { ClusterLeaseRepository } from '../store/types.ts';

export interface SweepJob {
  name: string;
  everyMs: number;
  run: () => Promise<unknown>;
}

export interface ClusterSweeps {
  /** True while this process holds the lease (tests, metrics). */
  holding(): boolean;
  stop(): Promise<void>;
}

export function startClusterSweeps(o: {
  leases: ClusterLeaseRepository;
  owner: string;
  jobs: SweepJob[];
  now: () => Date;
  log: (obj: object, msg: string) => void;
  heartbeatMs?: number;
  ttlMs?: number;
}): ClusterSweeps {
  const heartbeatMs = o.heartbeatMs ?? 30_000;
  const ttlMs = o.ttlMs ?? 3 * heartbeatMs;
  const tickMs = Math.min(heartbeatMs, ...o.jobs.map((j) => j.everyMs));
  const started = o.now().getTime();
  // A job waits its interval after start or takeover, as a per-process timer did.
  const lastRun = new Map(o.jobs.map((j) => [j.name, started]));
  const running = new Set<Promise<unknown>>();
  let holding = false;
  let lastBeat = -Infinity;

  async function beat(at: number): Promise<void> {
    if (at - lastBeat < heartbeatMs) return;
    lastBeat = at;
    const was = holding;
    try {
      holding = await o.leases.acquire('sweeps', o.owner, new Date(at), ttlMs);
    } catch (err) {
      holding = false;
      o.log({ err }, 'could not renew the sweeps lease; sweeps paused here');
    }
    if (holding && !was) {
      o.log({ owner: o.owner }, 'this process runs the cluster-wide sweeps');
      for (const j of o.jobs) lastRun.set(j.name, at);
    }
  }

  async function tick(): Promise<void> {
    const at = o.now().getTime();
    await beat(at);
    if (!holding) return;
    for (const job of o.jobs) {
      if (at - (lastRun.get(job.name) ?? at) < job.everyMs) continue;
      lastRun.set(job.name, at);
      const run = job
        .run()
        .catch((err: unknown) => o.log({ err, job: job.name }, 'sweep failed'))
        .finally(() => running.delete(run));
      running.add(run);
    }
  }

  let ticking: Promise<void> = tick();
  const timer = setInterval(() => {
    ticking = ticking.then(tick);
  }, tickMs);
  timer.unref();
  return {
    holding: () => holding,
    async stop() {
      clearInterval(timer);
      await ticking;
      await Promise.all(running);
      // A clean shutdown hands the sweeps over at once rather than after the lease.
      if (holding) await o.leases.release('sweeps', o.owner).catch(() => undefined);
      holding = false;
    },
  };
}
