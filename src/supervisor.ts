/**
 * `twoway start` with `[server] processes` > 1: the primary process is a
 * supervisor that forks worker processes with node:cluster and never runs a
 * listener itself. Every worker builds the whole application
 * (`createApp(config).start()`) and listens on the same addresses; node:cluster
 * lets the workers share the listening sockets (the primary holds them, and
 * each worker accepts from them), so a worker that dies and is forked again
 * never closes a port.
 *
 * Background work (the queue, TWM fetches, decisions, spam learning, sweeps)
 * runs in every worker: the store claims it with leases and runs the sweeps
 * once per cluster. `STORE_CLAIMS_WORK = false` would confine it to worker 0
 * (the others forwarding their hints), for a store without claims.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { createApp, createLogger, startServer } from './app.ts';
import type { Config } from './config/load.ts';

/**
 * Flip to true when the store claims background work with leases (queue
 * entries, TWM fetches, sweeps): then every worker runs the workers.
 */
export const STORE_CLAIMS_WORK = true;

/** The env var that tells a forked worker its index (stable across restarts of that slot). */
const INDEX_ENV = 'TWOWAY_WORKER_INDEX';

export type Kick = 'queue' | 'fetch' | 'decisions';

/** What a worker reports once its listeners are up. */
export interface WorkerReady {
  smtpPort: number;
  submissionPort: number | null;
  apiUrl: string;
  /** The TWM endpoint's port, null without [twm]. */
  twmPort: number | null;
}

type FromWorker = { twoway: 'ready'; ready: WorkerReady } | { twoway: 'kick'; what: Kick };
type ToWorker = { twoway: 'kick'; what: Kick };

export const isSupervisedWorker = (): boolean => cluster.isWorker && process.env[INDEX_ENV] !== undefined;

/** This worker's slot: 0 … processes-1. */
export const workerIndex = (): number => Number(process.env[INDEX_ENV] ?? 0);

/** Whether this process runs the background workers (always, outside a supervisor). */
export const runsBackgroundWork = (): boolean => !isSupervisedWorker() || STORE_CLAIMS_WORK || workerIndex() === 0;

/** In a worker: tells the supervisor the listeners are up. */
export function reportReady(ready: WorkerReady): void {
  process.send?.({ twoway: 'ready', ready } satisfies FromWorker);
}

/** In a worker without background work: a hint for the worker that has it. */
export function forwardKick(what: Kick): void {
  process.send?.({ twoway: 'kick', what } satisfies FromWorker);
}

/** In the background worker: hints forwarded by the supervisor from the others. */
export function onForwardedKick(handler: (what: Kick) => void): void {
  process.on('message', (m: unknown) => {
    const msg = m as Partial<ToWorker> | null;
    if (msg && msg.twoway === 'kick' && (msg.what === 'queue' || msg.what === 'fetch' || msg.what === 'decisions')) handler(msg.what);
  });
}

export interface Supervisor {
  /** The first ready report once every worker reported ready (they listen on the same ports). */
  ready: Promise<WorkerReady>;
  /** Resolves when every worker stopped on its own (exit code 0) without stop(). */
  gone: Promise<void>;
  /** Live worker pids by slot. */
  pids(): number[];
  /** SIGTERM to every worker, SIGKILL after `graceMs`; resolves when all are gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SupervisorOptions {
  processes: number;
  log: Logger;
}

/**
 * Each worker accepts from the shared listening socket itself (SCHED_NONE), rather than the
 * supervisor accepting every connection and passing it to a worker over IPC (node:cluster's
 * round-robin, its default on Linux): with one connection per message that hand-off cost more
 * CPU than the rest of an accept (bench/accept-cpu.ts, docs/architecture.md 3.1). Which worker
 * gets a connection is then the kernel's choice. NODE_CLUSTER_SCHED_POLICY=rr keeps round-robin.
 */
function acceptInWorkers(): void {
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
}

/** SIGTERM to every live worker, SIGKILL after `graceMs`; resolves when all are gone. */
async function stopWorkers(workers: Worker[], graceMs: number): Promise<void> {
  const live = workers.filter((w) => w.process.exitCode === null && w.process.signalCode === null);
  const exits = live.map((w) => new Promise<void>((res) => w.once('exit', () => res())));
  for (const w of live) w.process.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const w of live) w.process.kill('SIGKILL');
  }, graceMs);
  await Promise.all(exits);
  clearTimeout(timer);
}

/** In the primary: forks `processes` workers (same script, arguments and node flags) and keeps that many alive. */
export function superviseWorkers({ processes, log }: SupervisorOptions): Supervisor {
  const slots = new Map<number, Worker>();
  const started = new Map<number, number>();
  const quickDeaths = new Map<number, number>();
  let stopping = false;
  let firstReady: WorkerReady | null = null;
  const notReady = new Set<number>();
  let resolveReady!: (r: WorkerReady) => void;
  let rejectReady!: (e: Error) => void;
  let resolveGone!: () => void;
  const gone = new Promise<void>((res) => (resolveGone = res));
  const ready = new Promise<WorkerReady>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });

  acceptInWorkers();

  const fork = (index: number): void => {
    const worker = cluster.fork({ [INDEX_ENV]: String(index) });
    slots.set(index, worker);
    started.set(index, Date.now());
    worker.on('message', (m: FromWorker) => {
      if (m?.twoway === 'ready') {
        firstReady ??= m.ready;
        notReady.delete(index);
        log.info({ worker: index, workerPid: worker.process.pid }, 'worker ready');
        if (notReady.size === 0) resolveReady(firstReady);
      } else if (m?.twoway === 'kick') {
        // The background worker(s) act on it; with claims, every worker polls anyway.
        for (const [i, w] of slots) if (i !== index && (STORE_CLAIMS_WORK || i === 0) && w.isConnected()) w.send({ twoway: 'kick', what: m.what } satisfies ToWorker);
      }
    });
    worker.once('exit', (code, signal) => {
      if (slots.get(index) === worker) slots.delete(index);
      if (stopping) return;
      // Exit code 0 is a worker that was asked to stop (a signal to the process group, e.g. Ctrl-C): not a crash.
      if (code === 0) {
        log.info({ worker: index, workerPid: worker.process.pid }, 'worker stopped');
        if (slots.size === 0) resolveGone();
        return;
      }
      // A worker that dies before it was ever ready: the configuration or the store is broken; do not fork forever.
      if (notReady.has(index)) {
        rejectReady(new Error(`worker ${index} exited before it was ready (code ${code}, signal ${signal})`));
        return;
      }
      // Quick repeated deaths back off (up to 10 s) so a crash loop does not eat the machine.
      const lived = Date.now() - (started.get(index) ?? 0);
      const deaths = lived < 5_000 ? (quickDeaths.get(index) ?? 0) + 1 : 0;
      quickDeaths.set(index, deaths);
      const delay = Math.min(10_000, deaths === 0 ? 0 : 100 * 2 ** deaths);
      log.error({ worker: index, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; forking it again');
      setTimeout(() => {
        if (!stopping) fork(index);
      }, delay).unref();
    });
  };

  for (let i = 0; i < processes; i++) {
    notReady.add(i);
    fork(i);
  }
  void ready.catch(() => undefined);

  return {
    ready,
    gone,
    pids: () => [...slots.entries()].sort(([a], [b]) => a - b).map(([, w]) => w.process.pid ?? 0),
    stop(graceMs = 10_000) {
      stopping = true;
      return stopWorkers([...slots.values()], graceMs);
    },
  };
}

/** Resolves on the first SIGINT or SIGTERM. */
const signalled = () =>
  new Promise<void>((res) => {
    process.once('SIGINT', () => res());
    process.once('SIGTERM', () => res());
  });

/**
 * `twoway start` in the supervisor: prepares what every worker would
 * otherwise race for (key material, the store's migrations) once, forks the
 * workers, calls `onReady` when all listen, and runs until SIGINT/SIGTERM.
 */
export async function runSupervisor(config: Config, onReady: (r: WorkerReady, pids: number[]) => void): Promise<void> {
  const log = createLogger(config.log.level);
  await (await createApp(config, { logger: log })).close();
  const supervisor = superviseWorkers({ processes: config.server.processes, log });
  const stop = signalled();
  let first: WorkerReady | null;
  try {
    first = await Promise.race([supervisor.ready, stop.then(() => null)]);
  } catch (err) {
    await supervisor.stop(2_000);
    throw err;
  }
  if (first) {
    onReady(first, supervisor.pids());
    await Promise.race([stop, supervisor.gone]);
  }
  await supervisor.stop();
}

/** `twoway start` in a supervised worker: the whole application, its ready report, a clean close on SIGTERM. */
export async function runWorker(config: Config): Promise<never> {
  // The store claims background work (leases, cluster-wide sweeps): every worker runs it, and hints reach the others through the store's signals.
  const server = await startServer(config, { workerIndex: workerIndex() });
  reportReady({ smtpPort: server.smtp.port, submissionPort: server.submission?.port ?? null, apiUrl: server.http.url, twmPort: server.twm?.port ?? null });
  await signalled();
  await server.close();
  // The IPC channel to the supervisor keeps the event loop alive: leave explicitly.
  process.exit(0);
}
