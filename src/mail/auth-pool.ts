/**
 * SPF, DKIM and DMARC off the event loop: a small pool of worker threads
 * runs mailauth (mailauth-run.ts) on inbound messages, each message within a
 * time budget. The main thread keeps what is cheap and must be exact: the
 * From: identity logic (authenticate.ts `outcomeOf`) and the one DNS
 * resolver with its cache, which answers the workers' lookups.
 *
 * Why: the header limits bound what mailauth parses, and the bound measured
 * for the worst input they allow is tens of milliseconds of event-loop time
 * per message on a loaded machine (docs/reliability.md section 6); a flood
 * of such messages stacks that up in front of every other listener. In a
 * worker it costs a thread, not the loop, and the budget turns "bounded by
 * measurement" into "bounded by construction".
 *
 * The rules:
 * - one message per worker at a time; further messages wait in order (the
 *   end of SMTP DATA waits with them: backpressure on the sending client).
 *   The wait is bounded by the SMTP connection limits, as every session has
 *   at most one message at the end of DATA;
 * - the budget counts the time the worker thread is busy on the message
 *   (its event loop not idle), so DNS waits do not count: past it, the
 *   worker is terminated and replaced and the message gets
 *   `451 4.7.0`, a temporary failure: nothing is stored, the sender's MTA
 *   retries later and, if the message is always too slow, eventually
 *   returns it to its author;
 * - a worker that dies (an exception outside the job, out of memory) is
 *   replaced; its message gets `451 4.3.0`;
 * - the message bytes are transferred to the worker and back, not copied
 *   (one copy only for a Buffer that shares its memory with others);
 * - a worker keeps the resolver's answers for `dnsReuseMs` (auth-worker.ts),
 *   so that a message from a sender seen a moment ago needs no DNS round trip
 *   to this thread.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { ReplyError } from '../core/errors.ts';
import type { DnsResolver, RrType } from '../dns/types.ts';
import { outcomeOf, type Authenticator } from './authenticate.ts';
import type { FromWorker, ToWorker, WireError } from './auth-worker-protocol.ts';
import type { StoredForm } from './authenticate.ts';
import type { MailauthParams, MailauthSummary } from './mailauth-run.ts';

export interface AuthPoolOptions {
  resolver: DnsResolver;
  /** Worker threads (default: min(2, CPU cores)). */
  size?: number;
  /** Busy time of a worker on one message, in ms, before it is terminated (default 5000). */
  budgetMs?: number;
  /**
   * Wall time of one message in a worker, DNS waits included, before it is
   * terminated (default 5 minutes): a safety net for a job that never ends,
   * the resolver's own timeouts bound the lookups long before.
   */
  wallMs?: number;
  /** V8 old-generation heap of each worker, in MB (default 512): a message that needs more kills only its worker. */
  heapMb?: number;
  /**
   * How long a worker reuses an answer of `resolver` before asking again, in ms (default 0: never).
   * Give at most the resolver's own cache lifetime (app-start.ts: 2 s, or 0 when it does not cache).
   */
  dnsReuseMs?: number;
  /** Budget overruns, worker deaths and replacements, for the log. */
  onEvent?: (event: AuthPoolEvent) => void;
}

export type AuthPoolEvent =
  | { kind: 'over-budget'; busyMs: number; wallMs: number; bytes: number }
  | { kind: 'worker-died'; error: string; during: 'job' | 'idle' | 'start' }
  | { kind: 'respawn-delayed'; delayMs: number };

export interface AuthPoolStats {
  size: number;
  /** Workers with their modules loaded. */
  ready: number;
  busy: number;
  queued: number;
  /** Messages stopped at the budget (or the wall-time limit) since the pool started. */
  overBudget: number;
  /** Workers that died on their own since the pool started. */
  died: number;
  /** Workers started, the first ones included. */
  spawned: number;
}

export interface AuthPool {
  authenticate: Authenticator;
  /** The mailauth step alone (what `authenticate` runs in a worker), for tests and benchmarks. */
  run(raw: Buffer, params: MailauthParams, prefix?: string): Promise<RunResult>;
  stats(): AuthPoolStats;
  /**
   * Starts one worker ahead of the first message (unreferenced: it keeps no
   * process alive), so that the first message does not wait for a worker to
   * start. The MX listener calls it once it listens; a pool used on its own
   * (tests, benchmarks) starts workers only for messages.
   */
  warm(): void;
  /** Terminates the workers; waiting and running messages get `451 4.3.2`. */
  close(): Promise<void>;
}

export const DEFAULT_AUTH_BUDGET_MS = 5000;
const DEFAULT_WALL_MS = 5 * 60_000;
const DEFAULT_HEAP_MB = 512;
const MAX_RESPAWN_DELAY_MS = 30_000;

export function defaultAuthWorkers(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/** A job's answer: mailauth's summary, the bytes back, and the stored form when the job had a prefix. */
export interface RunResult {
  summary: MailauthSummary;
  raw: Buffer;
  stored?: StoredForm;
  /** The message's MIME nesting depth (mail/mime-depth.ts), measured with the stored form when the message is not large. */
  mimeDepth?: number;
}

interface Job {
  id: number;
  raw: Buffer;
  prefix: string | undefined;
  /** raw's length, kept for the log: the Buffer itself is empty while the bytes are in the worker. */
  bytes: number;
  params: MailauthParams;
  resolve: (value: RunResult) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  /** The worker's loop utilisation when the job started, and the wall clock. */
  since: { elu: EventLoopUtilization; at: number } | null;
  /** Set when the pool terminates the worker itself, so its exit is no crash. */
  ending: boolean;
}

export const authTooSlow = () => new ReplyError(451, '4.7.0', 'Authentication of this message took too long; try again later');
const workerDied = () => new ReplyError(451, '4.3.0', 'Temporary local problem while authenticating the message; try again later');
const shuttingDown = () => new ReplyError(451, '4.3.2', 'Shutting down; try again later');

export function createAuthPool(options: AuthPoolOptions): AuthPool {
  const budgetMs = options.budgetMs ?? DEFAULT_AUTH_BUDGET_MS;
  const pool: PoolContext = {
    resolver: options.resolver,
    size: Math.max(1, options.size ?? defaultAuthWorkers()),
    budgetMs,
    wallMs: options.wallMs ?? DEFAULT_WALL_MS,
    heapMb: options.heapMb ?? DEFAULT_HEAP_MB,
    dnsReuseMs: Math.max(0, options.dnsReuseMs ?? 0),
    emit: options.onEvent ?? (() => {}),
    // Check often enough to stop a job near its budget, rarely enough to cost nothing.
    checkEveryMs: Math.min(250, Math.max(5, Math.floor(budgetMs / 5))),
    slots: new Set<Slot>(),
    queue: [],
    stats: { overBudget: 0, died: 0, spawned: 0 },
    nextJob: 0,
    closed: false,
    failedStarts: 0,
    respawnTimer: null,
    watchTimer: null,
  };
  return {
    run: (raw, params, prefix) => run(pool, raw, params, prefix),
    authenticate: async (input) => {
      const params = { ip: input.ip, helo: input.helo, envelopeFrom: input.envelopeFrom, mta: input.mta };
      const { summary, raw, stored, mimeDepth } = await run(pool, input.raw, params, input.prefix);
      return { ...outcomeOf(summary, input), raw, ...(stored ? { stored } : {}), ...(mimeDepth === undefined ? {} : { mimeDepth }) };
    },
    stats: () => {
      const all = [...pool.slots];
      return {
        size: pool.size,
        ready: all.filter((s) => s.ready).length,
        busy: all.filter((s) => s.job !== null).length,
        queued: pool.queue.length,
        ...pool.stats,
      };
    },
    warm() {
      if (!pool.closed && pool.slots.size === 0 && !pool.respawnTimer) spawn(pool, true);
    },
    close: () => closePool(pool),
  };
}

/** The pool's settings and its state, shared by the functions below. */
interface PoolContext {
  resolver: DnsResolver;
  size: number;
  budgetMs: number;
  wallMs: number;
  heapMb: number;
  dnsReuseMs: number;
  emit: (event: AuthPoolEvent) => void;
  checkEveryMs: number;
  slots: Set<Slot>;
  queue: Job[];
  stats: { overBudget: number; died: number; spawned: number };
  nextJob: number;
  closed: boolean;
  /** Consecutive deaths before a worker became ready: a worker that cannot start must not be restarted in a tight loop. */
  failedStarts: number;
  /** While set, no worker is started (after failed starts), so a broken install is not retried in a tight loop. */
  respawnTimer: NodeJS.Timeout | null;
  /** The budget check of the busy workers (startWatch), while any job runs. */
  watchTimer: NodeJS.Timeout | null;
}

function run(pool: PoolContext, raw: Buffer, params: MailauthParams, prefix?: string): Promise<RunResult> {
  if (pool.closed) return Promise.reject(shuttingDown());
  return new Promise((resolve, reject) => {
    pool.queue.push({ id: ++pool.nextJob, raw, prefix, bytes: raw.byteLength, params, resolve, reject });
    pump(pool);
  });
}

function spawn(pool: PoolContext, ahead = false): void {
  pool.stats.spawned++;
  // Referenced while it starts for a waiting message or works on one, so that a pending message keeps the process alive; unreferenced when idle.
  const worker = startWorker(pool.heapMb, pool.dnsReuseMs);
  if (ahead) worker.unref();
  const slot: Slot = { worker, ready: false, job: null, since: null, ending: false };
  pool.slots.add(slot);
  worker.on('message', (message: FromWorker) => onMessage(pool, slot, message));
  let error = 'exited';
  worker.on('error', (err) => {
    error = err.message;
  });
  worker.on('exit', (code) => onExit(pool, slot, code === 0 ? error : `${error} (exit code ${code})`));
}

function onMessage(pool: PoolContext, slot: Slot, message: FromWorker): void {
  if (message.type === 'ready') {
    slot.ready = true;
    pool.failedStarts = 0;
    pump(pool);
    if (slot.job === null) slot.worker.unref();
    return;
  }
  if (message.type === 'dns') {
    lookup(pool.resolver, message.name, message.rrtype).then((answer) => {
      if (!slot.ending) slot.worker.postMessage({ id: message.id, type: 'dns-answer', ...answer } satisfies ToWorker);
    });
    return;
  }
  const job = slot.job;
  if (!job || job.id !== message.id) return;
  finish(slot);
  const raw = Buffer.from(message.raw.buffer, message.raw.byteOffset, message.raw.byteLength);
  if (message.ok) {
    const s = message.stored;
    const stored = s ? { prepend: s.prepend, raw: Buffer.from(s.raw.buffer, s.raw.byteOffset, s.raw.byteLength), sha256: s.sha256, columns: s.columns } : undefined;
    job.resolve({ summary: message.summary, raw, ...(stored ? { stored } : {}), ...(message.mimeDepth === undefined ? {} : { mimeDepth: message.mimeDepth }) });
  }
  else job.reject(new Error(`mailauth failed: ${message.error}`));
  pump(pool);
}

/** A worker's DNS question, answered by the main thread's resolver (and its cache). */
async function lookup(resolver: DnsResolver, name: string, rrtype: string): Promise<{ ok: true; value: unknown } | { ok: false; error: WireError }> {
  try {
    // The loose rrtype is node:dns's to reject, as in toResolveFunction.
    return { ok: true, value: await resolver.resolve(name, rrtype as RrType) };
  } catch (err) {
    const e = err as Partial<WireError> & { message?: unknown };
    const error: WireError = { message: typeof e.message === 'string' ? e.message : String(err) };
    for (const key of ['code', 'syscall', 'hostname'] as const) if (typeof e[key] === 'string') error[key] = e[key];
    return { ok: false, error };
  }
}

function onExit(pool: PoolContext, slot: Slot, error: string): void {
  pool.slots.delete(slot);
  const job = slot.job;
  finish(slot);
  if (!slot.ending) {
    pool.stats.died++;
    pool.emit({ kind: 'worker-died', error, during: job ? 'job' : slot.ready ? 'idle' : 'start' });
    job?.reject(workerDied());
    if (!slot.ready) pool.failedStarts++;
  }
  if (pool.closed) return;
  if (pool.failedStarts > 0 && !pool.respawnTimer) {
    // Nothing can start a worker (a broken install?): the waiting messages get their 451 now, not at their clients' timeouts.
    if (![...pool.slots].some((s) => s.ready)) for (const waiting of pool.queue.splice(0)) waiting.reject(workerDied());
    const delayMs = Math.min(MAX_RESPAWN_DELAY_MS, 500 * 2 ** (pool.failedStarts - 1));
    pool.emit({ kind: 'respawn-delayed', delayMs });
    pool.respawnTimer = setTimeout(() => {
      pool.respawnTimer = null;
      pump(pool);
    }, delayMs);
    pool.respawnTimer.unref();
  }
  pump(pool);
}

function finish(slot: Slot): void {
  slot.worker.unref();
  slot.job = null;
  slot.since = null;
}

/**
 * Hands waiting messages to idle workers, and starts workers while more
 * messages wait than workers are starting, up to the pool's size (one
 * more may have been started ahead by warm()), and a terminated or dead
 * worker is replaced when there is work for it.
 */
function pump(pool: PoolContext): void {
  if (pool.closed) return;
  for (const slot of pool.slots) {
    if (pool.queue.length === 0) return;
    if (slot.ready && !slot.ending && slot.job === null) dispatch(pool, slot, pool.queue.shift()!);
  }
  const starting = [...pool.slots].filter((s) => !s.ready && !s.ending).length;
  for (let n = starting; n < pool.queue.length && pool.slots.size < pool.size && !pool.respawnTimer; n++) spawn(pool);
}

function dispatch(pool: PoolContext, slot: Slot, job: Job): void {
  slot.job = job;
  slot.worker.ref();
  slot.since = { elu: slot.worker.performance.eventLoopUtilization(), at: performance.now() };
  pool.watchTimer ??= startWatch(pool);
  // Moved, not copied, when the Buffer owns its memory; a pooled slice is copied once (the pool stays here).
  const raw = job.raw;
  const owned = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength && raw.buffer instanceof ArrayBuffer;
  const bytes = owned ? raw : new Uint8Array(raw);
  const message: ToWorker = { type: 'job', id: job.id, raw: bytes, params: job.params, ...(job.prefix === undefined ? {} : { prefix: job.prefix }) };
  slot.worker.postMessage(message, [bytes.buffer as ArrayBuffer]);
}

/**
 * One timer checks every busy worker against the budget, running while any job is: a timer of
 * its own per job was set and cleared for every accepted message, on the event loop.
 */
function startWatch(pool: PoolContext): NodeJS.Timeout {
  const timer = setInterval(() => {
    for (const slot of pool.slots) watch(pool, slot);
    if (![...pool.slots].some((s) => s.job !== null)) {
      clearInterval(timer);
      pool.watchTimer = null;
    }
  }, pool.checkEveryMs);
  timer.unref();
  return timer;
}

function watch(pool: PoolContext, slot: Slot): void {
  const since = slot.since;
  const job = slot.job;
  if (!since || !job) return;
  const busyMs = slot.worker.performance.eventLoopUtilization(since.elu).active;
  const wall = performance.now() - since.at;
  if (busyMs <= pool.budgetMs && wall <= pool.wallMs) return;
  pool.stats.overBudget++;
  pool.emit({ kind: 'over-budget', busyMs: Math.round(busyMs), wallMs: Math.round(wall), bytes: job.bytes });
  finish(slot);
  job.reject(authTooSlow());
  // terminate() stops the thread even inside a synchronous loop; the exit handler starts its replacement.
  slot.ending = true;
  slot.ready = false;
  void slot.worker.terminate();
}

async function closePool(pool: PoolContext): Promise<void> {
  if (pool.closed) return;
  pool.closed = true;
  if (pool.respawnTimer) clearTimeout(pool.respawnTimer);
  if (pool.watchTimer) clearInterval(pool.watchTimer);
  pool.watchTimer = null;
  for (const job of pool.queue.splice(0)) job.reject(shuttingDown());
  await Promise.all(
    [...pool.slots].map((slot) => {
      const job = slot.job;
      finish(slot);
      job?.reject(shuttingDown());
      slot.ending = true;
      return slot.worker.terminate();
    }),
  );
}

/**
 * The worker's entry. Built (dist/), it is auth-worker.js. From the
 * TypeScript sources (tests, `npm run twoway`), a worker does not inherit the
 * tsx loader registered in the main thread, so a small bootstrap registers
 * it in the worker first.
 */
function startWorker(heapMb: number, dnsReuseMs: number): Worker {
  const options = { resourceLimits: { maxOldGenerationSizeMb: heapMb }, stdout: false, stderr: false, workerData: { dnsReuseMs } };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./auth-worker.js', import.meta.url), options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./auth-worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
